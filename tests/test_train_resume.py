"""Exact resume: a run SIGKILLed half-way and resumed with --resume repeats, step for step,
the losses of an uninterrupted run (CPU, fp32), across a phase switch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import make_dataset

from meloformer.train import load_checkpoint
from meloformer.train.__main__ import main

STEPS = 40
MODEL = ["--model", "n_layer=1", "--model", "n_embd=64", "--model", "n_head=2",
         "--model", "n_kv_head=1", "--model", "attention=sdpa"]


def _args(data, out):
    return ["--data_dir", str(data), "--output_dir", str(out), "--preset", "cpu",
            "--max_seq_len", "256", "--batch_size", "2", "--max_steps", str(STEPS),
            "--phase2_step", "3", "--phase3_step", "5", "--save_every", "1",
            "--warmup_steps", "3", "--chunk_songs", "3", "--epochs", "20", "--device", "cpu",
            "--precision", "fp32", "--no-compile", *MODEL]


def _step_of(path):
    """Step of the last checkpoint (from the summary written beside it: cheap to poll)."""
    try:
        return json.loads(path.read_text())["steps"]
    except (OSError, ValueError):
        return -1


def test_sigkill_at_half_then_resume_matches_straight_run(tmp_path):
    data = make_dataset(tmp_path, copies=2)
    straight = main(_args(data, tmp_path / "straight"))
    assert straight["steps"] == STEPS
    want = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["history"]

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "meloformer.train", *_args(data, out)]
    err = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    summary, deadline = out / "metrics" / "train.json", time.monotonic() + 120
    while _step_of(summary) < STEPS // 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    if proc.poll() is not None:
        tail = (tmp_path / "stderr.txt").read_text()[-2000:]
        pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed\n{tail}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    err.close()
    ckpt = out / "checkpoints" / "last.pt"
    killed_at = load_checkpoint(ckpt)["step"]
    if not STEPS // 2 <= killed_at < STEPS:
        pytest.fail(f"the run was not killed mid-way (checkpoint step {killed_at})")

    resumed = main([*_args(data, out), "--resume"])
    got = load_checkpoint(ckpt)["history"]
    assert resumed["steps"] == STEPS and got.shape == want.shape
    assert (got[:, 1] - want[:, 1]).abs().max() <= 1e-6
    assert "resume at" in (out / "train.log").read_text()


def test_auto_resume_continues_only_the_same_unfinished_run(tmp_path, monkeypatch):
    """resume="auto" (what dvc repro uses): an unfinished run of the same config and data
    continues; a finished one, or another config, starts fresh and says why."""
    from train_helpers import tiny_model, tiny_train

    from meloformer.train import loop as loop_module
    from meloformer.train import train

    data, out = make_dataset(tmp_path, copies=1), tmp_path / "out"
    cfg = tiny_train(max_steps=4, epochs=3, save_every=100, save_every_s=1e-9)  # save each step
    saves = []
    save = loop_module.save_checkpoint
    monkeypatch.setattr(loop_module, "save_checkpoint",
                        lambda path, state: (saves.append(state["step"]), save(path, state)))
    train(cfg, tiny_model(), data, out, device="cpu", resume="auto")
    assert saves == [1, 2, 3, 4, 4]  # the wall-clock saves, then the final one
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["complete"]

    def log_of(run_cfg) -> str:
        """What this run adds to train.log (the logger appends)."""
        before = len((out / "train.log").read_text())
        train(run_cfg, tiny_model(), data, out, device="cpu", resume="auto")
        return (out / "train.log").read_text()[before:]

    assert "is a finished run" in log_of(cfg)
    ckpt["complete"] = False  # as a SIGINT leaves it
    ckpt["step"], ckpt["history"] = 2, ckpt["history"][:2]
    loop_module.save_checkpoint(out / "checkpoints" / "last.pt", ckpt)
    resumed = log_of(cfg)
    assert "continuing the interrupted run" in resumed and "resume at 2" in resumed
    assert "another config or data" in log_of(
        tiny_train(max_steps=4, epochs=3, learning_rate=5e-4))
