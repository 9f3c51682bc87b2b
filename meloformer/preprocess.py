"""CLI: `python -m meloformer.preprocess --input LIST|DIR --output DIR --workers N --shard-size N`.

The seed project's command line over the discover and preprocess stages: writes
manifest.parquet, discover.json, shards/, rejects.parquet and meta.json into one output
directory, draws a progress bar (files/s) and ends with a summary line. Rerunning with the same
settings skips finished shards. Long songs are kept whole: there is no --max-seq-len.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meloformer.cli import NothingDone, run_cli
from meloformer.data import DiscoverConfig, PreprocessConfig
from meloformer.data.discover import MANIFEST_FILE, discover
from meloformer.data.preprocess import preprocess


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; defaults are those of the config dataclasses."""
    d, p = DiscoverConfig(), PreprocessConfig()
    ap = argparse.ArgumentParser(prog="python -m meloformer.preprocess", description=__doc__)
    ap.add_argument(
        "--input",
        nargs="+",
        type=Path,
        required=True,
        help="MIDI directories, list files (one path per line) or MIDI files",
    )
    ap.add_argument("--output", type=Path, required=True, help="output directory")
    ap.add_argument("--workers", type=int, default=p.workers, help="worker processes")
    ap.add_argument("--shard-size", type=int, default=p.shard_size, help="files per shard")
    ap.add_argument("--timeout", type=float, default=p.timeout_s, help="per-file limit (s)")
    ap.add_argument("--val-fraction", type=float, default=d.val_fraction)
    ap.add_argument("--test-fraction", type=float, default=d.test_fraction)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run discover then preprocess; 0 on success, 1 when the run cannot finish or keeps no
    song (no MIDI found, or every file rejected: rejects.parquet says why)."""
    args = parse_args(argv)
    dcfg = DiscoverConfig(val_fraction=args.val_fraction, test_fraction=args.test_fraction)
    pcfg = PreprocessConfig(
        workers=args.workers, shard_size=args.shard_size, timeout_s=args.timeout
    )

    def run() -> int:
        found = discover(args.input, args.output, dcfg, base=Path.cwd())
        print(found.line(), file=sys.stderr)
        if found.unique == 0:
            raise NothingDone(f"no readable MIDI file in {' '.join(map(str, args.input))} "
                              f"({found.found} found, {len(found.unreadable)} unreadable)")
        done = preprocess(
            args.output / MANIFEST_FILE, args.output, pcfg, Path.cwd(), progress=not args.quiet
        )
        print(done.line())
        if done.ok == 0:
            raise NothingDone(f"all {done.rejected} files were rejected "
                              f"({done.rejected_by_error}); see {args.output}/rejects.parquet")
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
