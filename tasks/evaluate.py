"""Stage evaluate: val loss/perplexity per family and music metrics (real vs generated)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import task

from meloformer.evaluate.evaluate import EvaluateConfig
from meloformer.evaluate.evaluate import evaluate as run_evaluate
from tasks.params import PARAMS_FILE, load_params


@task
def evaluate(checkpoint: Path, processed: Path, samples: Path, out: Path,
             cfg: EvaluateConfig) -> dict:
    """Write out/eval.json and out/plots/*.json; return the metrics (the vocabulary is the
    checkpoint's; shards of another one are refused)."""
    return run_evaluate(checkpoint, processed, samples, out, cfg)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.evaluate --checkpoint C --processed D --samples S --out M."""
    ap = argparse.ArgumentParser(prog="python -m tasks.evaluate")
    for name in ("checkpoint", "processed", "samples", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    metrics = run_evaluate(args.checkpoint, args.processed, args.samples, args.out,
                           params.evaluate)
    print(f"evaluate: loss {metrics['loss']['loss']:.4f}, "
          f"similarity error {metrics['music']['similarity_error']}")


if __name__ == "__main__":
    main()
