"""Stage generate: write sample MIDIs, piano rolls and token JSONs from the trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.generate import GenerateConfig, run_generate
from tasks.params import PARAMS_FILE, load_params


@task
def generate(checkpoint: Path, out_dir: Path, cfg: GenerateConfig) -> list:
    """cfg.n_samples songs from scratch into out_dir (sample-NNN.mid/.png/.json), in the
    checkpoint's vocabulary."""
    return run_generate(checkpoint, out_dir, cfg)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.generate --checkpoint C --out data/samples."""
    ap = argparse.ArgumentParser(prog="python -m tasks.generate")
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)

    def run() -> None:
        params = load_params(args.params)
        written = run_generate(args.checkpoint, args.out, params.generate, report=print)
        print(f"generate: {len(written)} samples in {args.out}")

    run_cli(run)


if __name__ == "__main__":
    main()
