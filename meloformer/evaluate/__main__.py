"""CLI: python -m meloformer.evaluate --checkpoint C --processed D --samples S --out metrics
[settings]: the settings flags are EvaluateConfig's fields (params.yaml `evaluate:`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from meloformer.cli import run_cli
from meloformer.errors import ConfigError
from meloformer.evaluate.evaluate import EvaluateConfig, evaluate, summary_line
from meloformer.flags import add_flags, as_flag, values


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m meloformer.evaluate", description=__doc__)
    for name in ("checkpoint", "processed", "samples", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    flags = add_flags(ap.add_argument_group("settings (EvaluateConfig)"), EvaluateConfig)
    args = ap.parse_args(argv)
    try:
        cfg = EvaluateConfig(**values(args, flags))
    except ConfigError as e:  # a usage error naming the flag typed: exit 2, as argparse's
        ap.error(str(as_flag(e, flags)))
    metrics = run_cli(lambda: evaluate(args.checkpoint, args.processed, args.samples,
                                       args.out, cfg))
    loss = metrics["loss"]
    print(summary_line(loss["loss"], loss["perplexity"], loss["bits_per_note"],
                       metrics["music"]["similarity_error"]))


if __name__ == "__main__":
    main()
