"""Shared test fixtures: corpus location (skip cleanly when absent), Prefect isolation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def run_cmd(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; fail the test with its output when it exits non-zero."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def clone(tmp_path) -> tuple[Path, dict[str, str]]:
    """A git repo holding what a fresh clone would (tracked and not-ignored files), committed.

    Returns (root, env) with env pointing PATH at this interpreter's venv.
    """
    return make_clone(tmp_path)


def make_clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The `clone` fixture's work, for fixtures of a wider scope."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    repo = tmp_path / "repo"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1",
    }  # fmt: skip
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        run_cmd(cmd, repo, env)
    return repo, env


@pytest.fixture
def one_thread():
    """Decoding runs tiny ops: one torch thread avoids oversubscribing a shared CPU.

    Restores the thread count afterwards (the generate CLI sets it too, via --threads).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A one-layer untrained model's checkpoint (default vocabulary), for the generate CLI."""
    import torch

    from meloformer.model import MeloFormer, ModelConfig
    from meloformer.train.checkpoint import model_config_dict, save_checkpoint

    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2))
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, {"model": model.state_dict(),
                           "model_config": model_config_dict(model.cfg), "step": 0})
    return path
