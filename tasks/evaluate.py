"""Stage evaluate: val loss/perplexity per family and music metrics (real vs generated)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.evaluate import EvaluateConfig, summary_line
from meloformer.evaluate import evaluate as run_evaluate
from tasks.params import PARAMS_FILE, load_params


@dataclass(frozen=True)
class EvalSummary:
    """The headline of an evaluation (every metric is in eval.json)."""

    loss: float
    perplexity: float
    bits_per_note: float
    similarity_error: float | None

    @classmethod
    def of(cls, metrics: dict) -> EvalSummary:
        error = metrics["music"]["similarity_error"]
        loss = metrics["loss"]
        return cls(float(loss["loss"]), float(loss["perplexity"]), float(loss["bits_per_note"]),
                   None if error is None else float(error))

    def line(self) -> str:
        return "evaluate: " + summary_line(self.loss, self.perplexity, self.bits_per_note,
                                           self.similarity_error)


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

    def run() -> None:
        params = load_params(args.params)
        kinds = [k for k in ("density", "polyphony") if getattr(params.generate, k)]
        metrics = run_evaluate(args.checkpoint, args.processed, args.samples, args.out,
                               params.evaluate, steering=kinds)
        print(EvalSummary.of(metrics).line())

    run_cli(run)


if __name__ == "__main__":
    main()
