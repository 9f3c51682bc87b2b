"""Every command line ends a user error in one `error: ...` line on stderr and a non-zero exit
(a traceback only for bugs); a run with nothing usable exits non-zero too."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from tasks.params import ParamsError, load_params


def run(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def one_error_line(done: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(w in errors[0] for w in words), done.stderr


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("train", {"learning_rate": -1e-3}, "train.learning_rate: must be > 0, got -0.001"),
        ("train", {"num_workers": -1}, "train.num_workers: must be >= 0, got -1"),
        ("train", {"batch_size": 0}, "train.batch_size: must be >= 1, got 0"),
        ("train", {"phase2_step": 50, "phase3_step": 10},
         "train.phase3_step: must be >= phase2_step (50), got 10"),
        (None, {"model_size": "huge"}, "model_size: must be one of"),
        (None, {"preset": "nonsense"}, "preset: must be null or one of"),
    ],
)
def test_a_bad_param_names_key_rule_and_value(tmp_path, section, values, message):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (params[section] if section else params).update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_params(tmp_path / "params.yaml")


def test_yaml_exponent_without_a_dot_reads_as_a_float(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {learning_rate: 1e-3}\n")  # YAML 1.1: a str
    assert load_params(tmp_path / "params.yaml").train_config().learning_rate == 1e-3


def test_params_stage_fails_in_one_line_and_writes_no_marker(tmp_path):
    (tmp_path / "params.yaml").write_text("train: {learning_rate: -1.0e-3}\n")
    ok = tmp_path / "params.ok"
    done = run("tasks.params", "--params", str(tmp_path / "params.yaml"), "--ok", str(ok))
    one_error_line(done, 1, "train.learning_rate: must be > 0, got -0.001")
    assert not ok.exists()
    fine = run("tasks.params", "--ok", str(ok))
    assert fine.returncode == 0 and ok.exists(), fine.stderr


def test_hid_check_of_a_missing_folder(tmp_path):
    one_error_line(run("meloformer.hid", "check", str(tmp_path / "nope")), 2, "nope")


def test_train_with_a_missing_data_dir_or_a_truncated_checkpoint(tmp_path):
    one_error_line(run("meloformer.train", "--data_dir", str(tmp_path / "nope"), "--output_dir",
                       str(tmp_path / "out")), 1, "nope")
    ckpt = tmp_path / "out" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    one_error_line(run("meloformer.train", "--data_dir", str(tmp_path / "nope"), "--output_dir",
                       str(tmp_path / "out"), "--resume"), 1, "last.pt")


def test_preprocess_with_nothing_usable_exits_non_zero(tmp_path):
    (tmp_path / "empty").mkdir()
    one_error_line(run("meloformer.preprocess", "--input", str(tmp_path / "empty"), "--output",
                       str(tmp_path / "a"), "--quiet"), 1, "no readable MIDI")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mid").write_bytes(b"MThd not really")
    one_error_line(run("meloformer.preprocess", "--input", str(tmp_path / "bad"), "--output",
                       str(tmp_path / "b"), "--quiet", "--workers", "1"), 1, "rejected")
