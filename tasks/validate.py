"""Stage validate: run the great_expectations suite over the shards; fail on any violation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect import task

from meloformer.data.config import ValidateConfig
from meloformer.data.validate import ValidationFailed, ValidationReport
from meloformer.data.validate import validate as run_validate
from tasks.params import PARAMS_FILE, load_params


@task
def validate(
    processed: Path, cfg: ValidateConfig, fractions: dict[str, float]
) -> ValidationReport:
    """Validate shards and corpus; writes validation.json, raises ValidationFailed."""
    return run_validate(processed, cfg, fractions)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.validate --processed data/processed; exit 1 on failure."""
    ap = argparse.ArgumentParser(prog="python -m tasks.validate")
    ap.add_argument("--processed", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    try:
        report = run_validate(args.processed, params.validate, params.discover.split_fractions)
    except ValidationFailed as e:
        sys.exit(str(e))
    print(report.summary())


if __name__ == "__main__":
    main()
