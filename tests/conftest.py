"""Shared test fixtures: corpus location (skip cleanly when absent), Prefect isolation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
# The dev corpus lives beside the checkout (../shared/data/midi-dev); CI has it, a user may not.
CORPUS = Path(os.environ.get("MELOFORMER_CORPUS", REPO.parent / "shared" / "data" / "midi-dev"))

# Prefect 3 starts a throwaway local server per process: keep it out of ~/.prefect, give it time.
_prefect_home = tempfile.mkdtemp(prefix="prefect-home-")
os.environ.setdefault("PREFECT_HOME", _prefect_home)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def corpus_index() -> list[dict[str, str]]:
    """Rows of the corpus INDEX.tsv (path, source, origin, kind, bytes, sha256)."""
    lines = (CORPUS / "INDEX.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The dev corpus root; skips the test when ../shared is not there."""
    if not (CORPUS / "INDEX.tsv").exists():
        pytest.skip(f"dev corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def fixture_midis() -> list[Path]:
    """The few real MIDI files shipped in tests/fixtures (licenses beside them)."""
    return sorted(FIXTURES.glob("*.mid"))
