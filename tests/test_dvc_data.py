"""params.yaml and dvc.yaml: the params reader, and `dvc repro validate` in a fresh git copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks.params import Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def test_params_yaml_loads_and_every_dvc_param_key_exists():
    params = load_params(REPO / "params.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in ("discover", "preprocess", "validate"):
        assert name in stages, name  # one name per step: stage = section = tasks module
        for key in stages[name]["params"]:
            section, _, field = key.partition(".")
            value = getattr(params, section)
            assert not field or hasattr(value, field), key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("preprocess: {shard_sise: 3}", "unknown keys ['shard_sise']"),
        ("preprocess: {hid: {resolution: twelve}}", "preprocess.hid.resolution: expected int"),
        ("discover: {val_fraction: 0.7, test_fraction: 0.5}", "room for train"),
        ("preproces: {}", "unknown keys ['preproces']"),
    ],
)
def test_params_errors_name_the_key(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_params(tmp_path / "params.yaml")


def test_missing_sections_take_the_defaults(tmp_path):
    (tmp_path / "params.yaml").write_text("validate: {max_reject_rate: 0.5}\n")
    params = load_params(tmp_path / "params.yaml")
    assert params.discover == Params().discover and params.validate.max_reject_rate == 0.5


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def clone(tmp_path) -> tuple[Path, dict[str, str]]:
    """A git repo holding what a fresh clone would: tracked and not-ignored files."""
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
        _run(cmd, repo, env)
    return repo, env


def test_dvc_repro_validate_from_a_fresh_clone(clone):
    repo, env = clone
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "repro", "validate"], repo, env)
    report = json.loads((repo / "data/processed/validation.json").read_text())
    meta = json.loads((repo / "data/processed/meta.json").read_text())
    assert report["success"] and report["failed"] == 0
    assert meta["totals"]["discovered"] == len(list((REPO / "data/raw").rglob("*.mid")))
    assert "up to date" in _run([*dvc, "status"], repo, env)  # no .pyc noise in code deps
    again = _run([*dvc, "repro", "validate"], repo, env)
    assert "didn't change, skipping" in again and "Running stage" not in again
    assert not list((repo / "data/raw").rglob("*.parquet"))  # code never writes under raw
