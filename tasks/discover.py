"""Stage discover: find the MIDI files under the inputs and write the split manifest."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.data import DiscoverConfig
from meloformer.data.discover import MANIFEST_FILE, DiscoverSummary
from meloformer.data.discover import discover as run_discover
from tasks.params import PARAMS_FILE, load_params


@dataclass(frozen=True)
class Discovered:
    """What the discover task hands on: the manifest it wrote and its summary (counts, and the
    split fractions it used, which validate checks the shards against)."""

    manifest: Path
    summary: DiscoverSummary


@task
def discover(inputs: list[Path], out_dir: Path, cfg: DiscoverConfig) -> Discovered:
    """Walk the inputs, deduplicate by content, write manifest.parquet and discover.json."""
    summary = run_discover(inputs, out_dir, cfg, base=Path.cwd())
    return Discovered(Path(out_dir) / MANIFEST_FILE, summary)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.discover --input data/raw --out data/interim."""
    ap = argparse.ArgumentParser(prog="python -m tasks.discover")
    ap.add_argument("--input", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)

    def run() -> None:
        cfg = load_params(args.params).discover
        print(run_discover(args.input, args.out, cfg, base=Path.cwd()).line())

    run_cli(run)


if __name__ == "__main__":
    main()
