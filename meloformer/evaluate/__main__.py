"""CLI: python -m meloformer.evaluate --checkpoint C --processed D --samples S --out metrics."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from meloformer.cli import run_cli
from meloformer.evaluate.evaluate import EvaluateConfig, evaluate, summary_line


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m meloformer.evaluate", description=__doc__)
    for name in ("checkpoint", "processed", "samples", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    defaults = EvaluateConfig()
    for f in fields(EvaluateConfig):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)),
                        default=getattr(defaults, f.name))
    args = vars(ap.parse_args(argv))
    cfg = EvaluateConfig(**{f.name: args[f.name] for f in fields(EvaluateConfig)})
    metrics = run_cli(lambda: evaluate(args["checkpoint"], args["processed"], args["samples"],
                                       args["out"], cfg), ValueError)
    loss = metrics["loss"]
    print(summary_line(loss["loss"], loss["perplexity"], loss["bits_per_note"],
                       metrics["music"]["similarity_error"]))


if __name__ == "__main__":
    main()
