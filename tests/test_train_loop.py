"""The training loop on CPU: phases, logging and DVC outputs, checkpoint contents, the
non-finite guard, out-of-memory back-off, optimizer groups and the LR schedule."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from train_helpers import make_dataset, tiny_model, tiny_train

from meloformer.data.shards import build_index
from meloformer.model.transformer import MeloFormer
from meloformer.train import TooManyBadSteps, load_checkpoint, model_config_from, train
from meloformer.train import loader as loader_module
from meloformer.train import loop as loop_module
from meloformer.train.config import PRESETS, TrainConfig, resolve
from meloformer.train.dist import DistInfo
from meloformer.train.optim import lr_at, param_groups
from meloformer.train.stream import Phase, epoch_steps, phase_at


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("loop-data"), copies=2)


def test_phases_switch_when_due_and_outputs_are_written(data_dir, tmp_path, capsys):
    cfg = tiny_train(max_steps=6, phase2_step=2, phase3_step=4, save_every=100, log_every=4)
    summary = train(cfg, tiny_model(), data_dir, tmp_path, device="cpu")
    log = (tmp_path / "train.log").read_text()
    # every step in train.log; on the terminal only every log_every steps, without timestamps
    assert all(f"Step {s}: loss" in log for s in range(1, 7))
    shown = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in shown if ": loss" in line] == ["Step 4"]
    assert shown[-1].startswith("done: 6 steps, ") and "nan" not in shown[-1]
    assert "Step 0: Phase 1 start: batch_size 1" in log
    assert "Step 2: Phase 1 → Phase 2" in log
    assert "Step 4: Phase 2 → Phase 3: batch_size 1 → 2" in log
    assert summary["steps"] == 6
    assert json.loads((tmp_path / "metrics" / "train.json").read_text()) == summary
    curve = (tmp_path / "metrics" / "plots" / "train_loss.tsv").read_text().splitlines()
    assert curve[0] == "step\tloss\tlr\tgrad_norm" and len(curve) == 7
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["step"] == 6 and model_config_from(ckpt) == tiny_model()
    model = MeloFormer(model_config_from(ckpt))
    model.load_state_dict(ckpt["model"])  # generation needs nothing but the file


@pytest.mark.parametrize("accum", [1, 2])
def test_an_epoch_sees_every_song_once_whatever_the_phases(data_dir, tmp_path, monkeypatch, accum):
    """Phases 1-2 run batch 1, phase 3 batch 3: the horizon replays that (the old one assumed
    batch 3 from step 0 and stopped with songs unseen), and epochs_done counts the epochs."""
    seen: list[tuple[int, tuple[int, ...]]] = []
    get = loader_module.PlanDataset.__getitem__

    def recording(self, i):
        plan = self.plans[i]
        seen.append((plan.epoch, tuple(plan.songs)))
        return get(self, i)

    monkeypatch.setattr(loader_module.PlanDataset, "__getitem__", recording)
    cfg = tiny_train(max_steps=0, epochs=2, phase2_step=2, phase3_step=3, batch_size=3,
                     gradient_accumulation_steps=accum, save_every=100, max_seq_len=128)
    index = build_index(data_dir)
    horizon = epoch_steps(index, cfg)
    summary = train(cfg, tiny_model(), data_dir, tmp_path, device="cpu")
    assert summary["steps"] == horizon and summary["epochs_done"] == 2
    assert f"{horizon} steps (2 epochs = {horizon} steps)" in (tmp_path / "train.log").read_text()
    songs = sorted(range(len(index.n_tokens)))
    for epoch in (0, 1):
        got = sorted(s for e, batch in seen if e == epoch for s in batch)
        if accum == 1:  # nothing read is dropped: exactly every song once
            assert got == songs, epoch
        else:  # the last < accum micro-batches of an epoch are read, then dropped
            assert len(set(got)) == len(got) and len(songs) - len(got) <= 2 * 3, epoch


def test_loss_goes_down(tmp_path):
    data = make_dataset(tmp_path, copies=1)
    cfg = tiny_train(max_steps=25, epochs=100, learning_rate=3e-3, max_seq_len=256,
                     save_every=100)
    train(cfg, tiny_model(), data, tmp_path / "out", device="cpu")
    hist = load_checkpoint(tmp_path / "out" / "checkpoints" / "last.pt")["history"]
    assert hist[-5:, 1].mean() < hist[:5, 1].mean() - 0.5


def test_non_finite_losses_are_skipped_then_abort(data_dir, tmp_path, monkeypatch):
    def nan_loss(self, batch, plan=None):
        return self.tok_emb.weight.sum() * float("nan")

    monkeypatch.setattr(MeloFormer, "loss", nan_loss)
    with pytest.raises(TooManyBadSteps):
        train(tiny_train(max_steps=10, max_bad_steps=2), tiny_model(), data_dir, tmp_path,
              device="cpu")
    log = (tmp_path / "train.log").read_text()
    assert log.count("non-finite loss") == 3


def test_out_of_memory_halves_the_micro_batch(data_dir, tmp_path, monkeypatch):
    real, calls = loop_module.train_step, []

    def flaky(module, optimizer, micro, *args, **kwargs):
        calls.append(len(micro[0].batch.ids))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("fake")
        return real(module, optimizer, micro, *args, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", flaky)
    summary = train(tiny_train(max_steps=3), tiny_model(), data_dir, tmp_path, device="cpu")
    assert summary["steps"] == 3 and calls[:2] == [2, 1]
    log = (tmp_path / "train.log").read_text()
    assert "CUDA out of memory: batch_size 2 → 1, gradient_accumulation_steps 1 → 2" in log


def test_out_of_memory_under_ddp_stops_with_a_clear_error():
    # One rank cannot re-plan while the others wait in the step's all-reduce: it must stop
    # (torchrun then stops the job) rather than halve alone and hang.
    run = SimpleNamespace(info=DistInfo(rank=1, world=2), step=7)
    phase = Phase(index=2, batch_size=4, accum=2, num_workers=0)
    with pytest.raises(torch.OutOfMemoryError, match="rank 1 at step 7 .batch_size 4. under DDP"):
        loop_module._Run._on_oom(run, phase)


def test_no_weight_decay_on_norms_and_embeddings():
    model = MeloFormer(tiny_model())
    decay, rest = (g["params"] for g in param_groups(model, 0.1))
    ids = lambda ps: {id(p) for p in ps}
    assert id(model.tok_emb.weight) in ids(rest) and id(model.norm.weight) in ids(rest)
    assert all(p.dim() >= 2 for p in decay) and decay
    n = sum(p.numel() for p in decay) + sum(p.numel() for p in rest)
    assert n == model.num_params()  # the tied head is counted once


def test_schedule_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 1.0, 10, 100, 0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[100] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)


def test_phases_and_presets():
    cfg = TrainConfig(batch_size=8, gradient_accumulation_steps=6, num_workers=4,
                      phase2_step=5, phase3_step=10)
    assert phase_at(0, cfg).batch_size == 1 and phase_at(0, cfg).num_workers == 0
    assert phase_at(5, cfg).num_workers == 4 and phase_at(5, cfg).batch_size == 1
    p3 = phase_at(10, cfg, oom_halvings=2)
    assert (p3.index, p3.batch_size, p3.accum) == (3, 2, 24)
    assert set(PRESETS) == {"cpu", "rtx6000ada", "h800", "h100", "h200"}
    assert resolve("cpu").max_seq_len == 1024
    with pytest.raises(ValueError, match="unknown preset"):
        resolve("tpu")
    with pytest.raises(ValueError, match="phase2_step"):
        TrainConfig(phase2_step=5, phase3_step=2)


def test_packed_rows_train_end_to_end(data_dir, tmp_path):
    cfg = tiny_train(max_steps=3, pack=True, max_seq_len=512, save_every=100)
    summary = train(cfg, tiny_model(), data_dir, tmp_path, device="cpu")
    assert summary["steps"] == 3
    # Packed rows carry more real tokens per step than one song per row could (<= 2 x 512).
    hist = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert hist["tokens"] > 0 and hist["data"]["batch_size"] == 2


def test_kept_checkpoints_make_a_curve_and_transposed_rows_train(data_dir, tmp_path):
    cfg = tiny_train(max_steps=5, keep_every=2, save_every=100, transpose=5)
    train(cfg, tiny_model(), data_dir, tmp_path, device="cpu")
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert names == ["last.pt", "step-0000002.pt", "step-0000004.pt"]
    kept = load_checkpoint(tmp_path / "checkpoints" / "step-0000004.pt")
    assert kept["step"] == 4 and kept["train_config"]["transpose"] == 5
