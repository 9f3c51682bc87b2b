"""No host syncs in the hot path: a training step (forward, backward, optimizer) over a
loader-built MaskPlan, and one cached decode step, issue no aten::_local_scalar_dense /
aten::item (what .item(), int(t), .tolist() and tensor-valued Python branches call), counted
on CPU with a TorchDispatchMode. The optimizer is the fused AdamW that CUDA training uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generate_cache import fixture_song, metas
from test_layout import synthetic_song
from torch.utils._python_dispatch import TorchDispatchMode

from meloformer.generate.generate import Cached
from meloformer.model import Batch, MeloFormer, ModelConfig
from meloformer.model.plan import Planner
from meloformer.train.loader import MicroBatch
from meloformer.train.optim import param_groups
from meloformer.train.step import LossModule, train_step

SYNCS = {"aten::_local_scalar_dense", "aten::item"}
TINY = dict(n_layer=2, n_embd=64, n_head=4, n_kv_head=2)


class CountSyncs(TorchDispatchMode):
    """Counts the ATen calls that copy a device value to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name in SYNCS:
            self.calls.append(func._schema.name)
        return func(*args, **(kwargs or {}))


def _micro(cfg: ModelConfig, seed: int) -> MicroBatch:
    rows = [[synthetic_song(seed, 3, 4), synthetic_song(seed + 1, 2, 3)],
            [synthetic_song(seed + 2)]]
    batch = Batch.from_encodings(rows, length=256)
    return MicroBatch(batch, Planner(cfg)(batch))


def _fused_adamw(model: MeloFormer) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, fused=True)


@pytest.mark.parametrize("attention", ["sdpa", "dense"])
def test_training_step_has_no_host_sync(attention):
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY, attention=attention)
    model = MeloFormer(cfg)
    module, opt = LossModule(model), _fused_adamw(model)
    micro = [_micro(cfg, 0), _micro(cfg, 5)]
    train_step(module, opt, micro, 1e-3, 1.0, torch.device("cpu"))  # warm-up (optimizer state)
    with CountSyncs() as counter:
        res = train_step(module, opt, micro, 1e-3, 1.0, torch.device("cpu"))
    assert counter.calls == []
    assert res.applied and np.isfinite(res.loss) and res.tokens == sum(
        m.plan.n_targets for m in micro)


def test_the_counter_sees_syncs():
    """The counter is not blind: the convenience path (plan built inside forward) syncs."""
    cfg = ModelConfig(**TINY, attention="sdpa")
    model = MeloFormer(cfg)
    batch = _micro(cfg, 0).batch
    with CountSyncs() as counter:
        model.loss(batch)
    assert len(counter.calls) > 0


def test_non_finite_step_is_skipped_on_the_device():
    """The fused AdamW's found_inf flag: a NaN loss leaves weights and step counts unchanged,
    with no host read of the loss."""
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY, attention="sdpa")
    model = MeloFormer(cfg)
    module, opt = LossModule(model), _fused_adamw(model)
    micro = [_micro(cfg, 0)]
    train_step(module, opt, micro, 1e-3, 1.0, torch.device("cpu"))
    steps = [s["step"].clone() for s in opt.state.values()]
    model.tok_emb.weight.data[0, 0] = float("nan")  # PAD's row (tied head): NaN reaches the loss
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    res = train_step(module, opt, micro, 1e-3, 1.0, torch.device("cpu"))
    assert not res.applied
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, before[name], rtol=0, atol=0, equal_nan=True)
    assert [s["step"] for s in opt.state.values()] == steps


def test_decode_step_has_no_host_sync():
    song = fixture_song("miditok_multitrack_drums", 3)
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(**TINY)).eval()
    ids, meta = song.ids[None].astype(np.int64), metas(song)[None].astype(np.int64)
    L = len(song.ids)
    source = Cached(model, 1, L, L // 2 + 1, static=True)
    source.prefill(ids[:, : L - 2], meta[:, : L - 2])
    source.decode_one_token(ids[:, L - 2 : L - 1], meta[:, L - 2 : L - 1])
    with CountSyncs() as counter:
        source.decode_one_token(ids[:, L - 1 :], meta[:, L - 1 :])
    assert counter.calls == []
