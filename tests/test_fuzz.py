"""Fuzzing the codec: a bounded coverage-guided run (atheris) in CI, and every saved finding
replayed (docs/fuzzing.md). Any input ends as tokens that decode or as a typed MidiError."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

FUZZ = REPO / "fuzz"
FINDINGS = REPO / "tests" / "data" / "fuzz"
SECONDS = int(os.environ.get("MELOFORMER_FUZZ_SECONDS", "30"))  # CI budget; docs give longer runs
# Per-input wall-clock limit. 2 s is the contract; raise it only on a machine where this process
# is starved of CPU (libFuzzer measures wall time), and say so.
TIMEOUT = int(os.environ.get("MELOFORMER_FUZZ_TIMEOUT", "2"))


def fuzz_target():
    """fuzz/target.py as a module (fuzz/ is a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location("fuzz_target", FUZZ / "target.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_codec_for_a_bounded_time(tmp_path):
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (pip install -e '.[dev]')")
    flags = [f"-dict={FUZZ / 'midi.dict'}", f"-timeout={TIMEOUT}", "-rss_limit_mb=512",
             "-max_len=65536", f"-max_total_time={SECONDS}", "-seed=1",
             f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}
    # Through a shell that forks: libFuzzer's RSS limit reads the peak RSS, which Linux carries
    # across exec, so a child forked straight from this (large) pytest process would start
    # "out of memory".
    cmd = [sys.executable, str(FUZZ / "fuzz_codec.py"), str(tmp_path / "corpus"), *flags]
    proc = subprocess.Popen(["sh", "-c", '"$@"; exit $?', "sh", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=SECONDS + 120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the shell and the fuzzer under it
        proc.communicate()
        pytest.fail(f"the fuzzer ran past {SECONDS + 120} s (loading the seeds takes ~10 s)")
    found = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert proc.returncode == 0 and not found, f"{found}\n{stderr[-4000:]}"
    assert "stat::number_of_executed_units" in stderr


@pytest.mark.parametrize("path", sorted(FINDINGS.glob("*")), ids=lambda p: p.name)
def test_saved_fuzz_finding_ends_as_tokens_or_a_midi_error_fast(path):
    check = fuzz_target().check
    start = time.process_time()  # CPU time: a loaded machine must not fail the test
    check(path.read_bytes())
    assert time.process_time() - start < 2.0
