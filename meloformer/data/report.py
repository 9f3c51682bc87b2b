"""Validation outcomes in plain Python: what validation.json holds and what a failure says."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from meloformer.errors import UserError
from meloformer.io import json_ready

MAX_EXAMPLES = 5  # offending rows kept per failed expectation


@dataclass(frozen=True)
class Outcome:
    """One expectation evaluated on one batch.

    Attributes:
        batch: "shard-00042" or "corpus/<table>".
        expectation: great_expectations type, e.g. "expect_column_values_to_be_between".
        description: what it checks, in words.
        columns: the columns it reads, comma-separated.
        success: whether it held.
        unexpected: rows that broke it (None for table-level expectations).
        examples: up to MAX_EXAMPLES offending rows ({column: value}, named by hash) or
            values; for table-level expectations, the observed value.
        error: the exception text when the expectation could not be evaluated.
    """

    batch: str
    expectation: str
    description: str
    columns: str
    success: bool
    unexpected: int | None = None
    examples: tuple[dict[str, Any], ...] = ()
    error: str = ""

    def line(self) -> str:
        """'shard-00003: expect_…(ids_max) [ids in vocab] FAILED: 1 rows, e.g. {…}'."""
        head = f"{self.batch}: {self.expectation}({self.columns}) [{self.description}]"
        if self.success:
            return f"{head} ok"
        parts = [f"{self.unexpected} rows"] if self.unexpected is not None else []
        parts += [f"e.g. {self.examples[0]}"] if self.examples else []
        parts += [self.error] if self.error else []
        return f"{head} FAILED: {', '.join(parts)}"


def _columns(kwargs: dict) -> str:
    names = kwargs.get("column_list") or [
        kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)
    ]
    return ",".join(names) if names else "<table>"


def _error(info: dict | None) -> str:
    """The exception message(s) of a result's exception_info (flat, or keyed by metric)."""
    info = info or {}
    parts = [info] if "raised_exception" in info else list(info.values())
    return "; ".join(
        str(p.get("exception_message", ""))
        for p in parts
        if isinstance(p, dict) and p.get("raised_exception")
    )


def outcomes(batch: str, validation) -> list[Outcome]:
    """Outcomes of a great_expectations ExpectationSuiteValidationResult."""
    out = []
    for r in validation.results:
        config, result = r.expectation_config, r.result or {}
        named = [
            x for x in result.get("partial_unexpected_index_list") or [] if isinstance(x, dict)
        ]
        examples = (
            named
            or [{"value": x} for x in result.get("partial_unexpected_list") or []]
            or ([{"observed": result["observed_value"]}] if "observed_value" in result else [])
        )
        out.append(
            Outcome(
                batch=batch,
                expectation=config.type,
                description=config.description or "",
                columns=_columns(config.kwargs),
                success=bool(r.success),
                unexpected=result.get("unexpected_count"),
                examples=tuple(json_ready(examples[:MAX_EXAMPLES])),
                error=_error(r.exception_info),
            )
        )
    return out


@dataclass(frozen=True)
class ValidationReport:
    """Every outcome of a validation run."""

    outcomes: tuple[Outcome, ...]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> str:
        """One line when all passed; else one line per failure."""
        batches = len({o.batch for o in self.outcomes})
        head = f"validate: {len(self.outcomes)} expectations over {batches} batches"
        if self.success:
            return f"{head}, all passed"
        lines = [f"{head}, {len(self.failures)} FAILED"] + [o.line() for o in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The validation.json body."""
        return {
            "success": self.success,
            "evaluated": len(self.outcomes),
            "failed": len(self.failures),
            "outcomes": [asdict(o) for o in self.outcomes],
        }


class ValidationFailed(UserError):
    """The suite failed; the message names every failing batch and expectation."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report
