"""Stage discover: find the MIDI files under the inputs and write the split manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import task

from meloformer.data.config import DiscoverConfig
from meloformer.data.discover import DiscoverSummary
from meloformer.data.discover import discover as run_discover
from tasks.params import PARAMS_FILE, load_params


@task
def discover(inputs: list[Path], out_dir: Path, cfg: DiscoverConfig) -> DiscoverSummary:
    """Walk the inputs, deduplicate by content, write manifest.parquet and discover.json."""
    return run_discover(inputs, out_dir, cfg, base=Path.cwd())


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.discover --input data/raw --out data/interim."""
    ap = argparse.ArgumentParser(prog="python -m tasks.discover")
    ap.add_argument("--input", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)
    cfg = load_params(args.params).discover
    print(run_discover(args.input, args.out, cfg, base=Path.cwd()).line())


if __name__ == "__main__":
    main()
