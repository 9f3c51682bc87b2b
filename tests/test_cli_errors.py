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


# Exceptions of the library that are not user errors, each with its reason.
NOT_USER_ERRORS = {
    "FileTimeout": "a worker's alarm aborting one file; the pool records it as a reject",
    "ParentGone": "a worker stopping because its parent died; nobody is left to read it",
    "CacheFull": "a decode cache sized too small: a bug in the budget, so a traceback",
    "Stopped": "a signal stopping a run after it saved: exit 128 + the signal, not an error",
    "Interrupted": "the training loop's Stopped",
}


def library_modules() -> list:
    import importlib
    import pkgutil

    import meloformer

    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(
        meloformer.__path__, "meloformer.")]


def test_every_typed_error_of_the_library_is_a_user_error():
    from meloformer.errors import UserError

    found = {name: obj for module in library_modules() for name, obj in vars(module).items()
             if isinstance(obj, type) and issubclass(obj, BaseException)
             and obj.__module__ == module.__name__}
    assert {"ConfigError", "VocabError", "ControlError", "SummaryError", "HIDError",
            "CheckpointError", "TooManyBadSteps"} <= set(found)
    strays = sorted(n for n, c in found.items()
                    if not issubclass(c, UserError) and n not in NOT_USER_ERRORS)
    assert strays == [], "subclass meloformer.errors.UserError, or list it with a reason"


def raising(error: BaseException):
    def fn():
        raise error
    return fn


def test_run_cli_ends_user_errors_in_one_line_and_keeps_a_bugs_traceback(tmp_path, capsys):
    from meloformer.cli import run_cli
    from meloformer.errors import ConfigError
    from meloformer.hid import HIDError

    with pytest.raises(SystemExit, match="^error: n_bars: must be >= 1, got 0$"):
        run_cli(raising(ConfigError("n_bars", "must be >= 1", 0)))
    with pytest.raises(SystemExit) as done:
        run_cli(raising(HIDError("x.mid: bad")), code=2)
    assert done.value.code == 2 and capsys.readouterr().err == "error: x.mid: bad\n"
    with pytest.raises(SystemExit, match="nope: No such file"):
        run_cli((tmp_path / "nope").read_text)
    with pytest.raises(ValueError, match="a bug"):  # not a user error: the traceback stays
        run_cli(raising(ValueError("a bug")))


def test_the_library_never_imports_the_command_layer():
    """meloformer.cli and meloformer.flags serve command lines; the library raises
    meloformer.errors types and imports neither (tasks.params no longer imports tasks.cli)."""
    import ast

    lib = REPO / "meloformer"
    # The command layer, and the seed's `python -m meloformer.preprocess`. train/export.py is a
    # library module with a main(): it imports run_cli inside main only (not at the top).
    commands = {lib / "cli.py", lib / "flags.py", lib / "preprocess.py"}
    for path in sorted(lib.rglob("*.py")) + [REPO / "tasks" / "params.py"]:
        if path in commands or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.ImportFrom | ast.Import)]
        names = {a.name for n in top for a in n.names} | {
            n.module for n in top if isinstance(n, ast.ImportFrom)}
        assert not names & {"meloformer.cli", "meloformer.flags"}, path


@pytest.mark.parametrize(("module", "flag", "value", "reason"), [
    ("generate", "--bars", "0", "must be in 1..4096, got 0"),
    ("generate", "--top-p", "0", "must be in (0, 1], got 0.0"),
    ("evaluate", "--max-songs", "0", "must be >= 1, got 0"),
])
def test_a_bad_flag_is_named_as_typed(module, flag, value, reason, capsys, tmp_path):
    """`--bars 0` used to answer "n_bars 0 outside 1..4096", naming no flag."""
    import importlib

    main = importlib.import_module(f"meloformer.{module}.__main__").main
    paths = ["--checkpoint", "c.pt", "--out", "o"]
    if module == "evaluate":
        paths += ["--processed", "p", "--samples", "s"]
    with pytest.raises(SystemExit) as done:
        main([*paths, flag, value])
    assert done.value.code == 2  # a usage error, as argparse's own
    assert capsys.readouterr().err.strip().endswith(f"error: {flag}: {reason}")


def test_train_flags_and_model_overrides_are_named_as_typed(tmp_path):
    done = run("meloformer.train", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path),
               "--batch_size", "0", "--model", "cross_window=-1")
    one_error_line(done, 1, "--batch_size: must be >= 1, got 0")
    done = run("meloformer.train", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path),
               "--model", "cross_window=-1")
    one_error_line(done, 1, "--model cross_window: must be >= 0, got -1")


def test_an_empty_checkpoint_gives_a_reason(tmp_path):
    from meloformer.generate.__main__ import main

    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"empty\.pt: cannot load checkpoint: empty file \(0 "
                       r"bytes\)$"):
        main(["--checkpoint", str(tmp_path / "empty.pt"), "--out", str(tmp_path / "o")])


def test_the_codec_command_loads_no_training_code():
    """`python -m meloformer.hid` used to import the training loop (and torch) through
    meloformer.cli just to catch errors."""
    done = subprocess.run([sys.executable, "-c", "import sys, meloformer.hid.__main__; "
                           "print(sorted(m for m in sys.modules if m == 'torch' or "
                           "m.startswith(('meloformer.train', 'meloformer.generate'))))"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
