"""Stage validate: run the great_expectations suite over the shards; fail on any violation."""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.data import ValidateConfig
from meloformer.data.discover import DiscoverSummary, read_summary
from meloformer.data.validate import ValidationReport
from meloformer.data.validate import validate as run_validate
from tasks.params import PARAMS_FILE, load_params

__all__ = ["ValidationReport", "main", "validate"]  # the report is this task's result type


@task
def validate(
    processed: Path, cfg: ValidateConfig, discovered: DiscoverSummary
) -> ValidationReport:
    """Validate shards and corpus against what discover recorded; writes validation.json,
    raises ValidationFailed."""
    return run_validate(processed, cfg, discovered)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.validate --processed data/processed
    --discover data/interim/discover.json; exit 1 on failure."""
    ap = argparse.ArgumentParser(prog="python -m tasks.validate")
    ap.add_argument("--processed", type=Path, required=True)
    ap.add_argument(
        "--discover", type=Path, required=True, help="discover.json of the manifest's run"
    )
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)

    def run() -> None:
        discovered = read_summary(args.discover)
        report = run_validate(args.processed, load_params(args.params).validate, discovered)
        print(report.summary())

    run_cli(run)


if __name__ == "__main__":
    main()
