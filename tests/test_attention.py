"""The executors of one mask: compiled flex (bar-major, BlockMask) equals SDPA with the dense
mask, which equals a hand-written softmax; GQA; executor choice."""

from __future__ import annotations

import math

import pytest
import torch
from test_layout import synthetic_song

from meloformer.model.attention import attend, resolve_executor
from meloformer.model.batch import Batch
from meloformer.model.config import ModelConfig
from meloformer.model.transformer import MeloFormer

CFG = ModelConfig.from_name("small", n_layer=2, block_size=64, length_bucket=128)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    songs = [synthetic_song(s, n_tracks=4, n_bars=6) for s in range(3)]
    batch = Batch.from_encodings([[songs[0], songs[1]], [songs[2]]])
    return MeloFormer(CFG).eval(), batch


def qkv(model: MeloFormer, batch: Batch, plan):
    """Layer 0's rotated q, k, v for the plan's execution order."""
    with torch.no_grad():
        x = model.blocks[0].attn_norm(model.embed(batch, plan))
        return model.blocks[0].attn.project(x, plan.rope)


def to_hid(y: torch.Tensor, plan) -> torch.Tensor:
    """(B, H, L, D) rows of the flex execution order -> HID order (summaries kept in place)."""
    T = plan.layout.n_regular
    regular = torch.empty_like(y[:, :, :T])
    index = plan.layout.perm[:, None, :, None].expand_as(regular)
    return regular.scatter(2, index, y[:, :, :T])


def test_flex_equals_sdpa(setup):
    model, batch = setup
    flex, sdpa = model.plan(batch, "flex"), model.plan(batch, "sdpa")
    T = batch.shape[1]
    with torch.no_grad():
        y_flex = attend(*qkv(model, batch, flex), flex)
        y_sdpa = attend(*qkv(model, batch, sdpa), sdpa)
    torch.testing.assert_close(to_hid(y_flex, flex), y_sdpa[:, :, :T], atol=1e-5, rtol=1e-5)
    S = int(sdpa.layout.summary_valid.sum(1).max())  # the real summary rows agree too
    torch.testing.assert_close(
        y_flex[:, :, T : T + S], y_sdpa[:, :, T : T + S], atol=1e-5, rtol=1e-5
    )
    with torch.no_grad():
        torch.testing.assert_close(model(batch, flex), model(batch, sdpa), atol=1e-4, rtol=1e-4)


def test_sdpa_equals_manual_softmax_with_gqa(setup):
    model, batch = setup
    plan = model.plan(batch, "sdpa")
    q, k, v = qkv(model, batch, plan)
    groups = CFG.n_head // CFG.n_kv_head
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(CFG.head_dim)
    scores = scores.masked_fill(~plan.mask, float("-inf"))
    want = scores.softmax(-1) @ v
    torch.testing.assert_close(attend(*qkv(model, batch, plan), plan), want, atol=1e-5, rtol=1e-5)


def test_flex_has_no_cpu_backward_and_says_so(setup):
    model, batch = setup
    plan = model.plan(batch, "flex")
    q, k, v = (t.requires_grad_() for t in qkv(model, batch, plan))
    with pytest.raises(RuntimeError, match="sdpa"):
        attend(q, k, v, plan)


def test_executor_choice():
    assert resolve_executor("auto", torch.device("cpu")) == "sdpa"
    assert resolve_executor("auto", torch.device("cuda")) == "flex"
    assert resolve_executor("dense", torch.device("cuda")) == "dense"


def test_flex_block_mask_is_static_per_bucket(setup):
    """Lengths are bucketed: a shorter batch gets the same (B, L) and so no recompile."""
    model, batch = setup
    short = Batch.from_encodings(
        [[synthetic_song(7, 2, 3)], [synthetic_song(8, 2, 2)]], length=batch.shape[1]
    )
    a, b = model.plan(batch, "flex"), model.plan(short, "flex")
    assert a.length == b.length and a.length % CFG.length_bucket == 0
    assert a.block_mask.shape == b.block_mask.shape


def test_new_batches_do_not_recompile(setup):
    """One compiled graph serves every batch of a bucket (the seed recompiled per shape)."""
    from torch._dynamo.utils import counters

    model, batch = setup
    with torch.no_grad():
        model(batch, model.plan(batch, "flex"))
        graphs = counters["stats"]["unique_graphs"]
        for seed in (20, 21):
            rows = [[synthetic_song(seed, 2, 5)], [synthetic_song(seed + 1, 5, 2)]]
            other = Batch.from_encodings(rows, length=batch.shape[1])
            model(other, model.plan(other, "flex"))
    assert counters["stats"]["unique_graphs"] == graphs
