"""The executors of one mask: compiled flex (bar-major, BlockMask) equals SDPA with the dense
mask, which equals a hand-written softmax; the CPU causal kernel over the clock order equals
plain SDPA over the layout order, forward and backward; GQA; executor choice."""

from __future__ import annotations

import math

import pytest
import torch
from test_layout import synthetic_song

from meloformer.model.attention import (
    additive_mask,
    attend,
    causal_masked,
    flex_block_size,
    resolve_executor,
    summary_order,
)
from meloformer.model.batch import Batch
from meloformer.model.cells import find_cells
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


def to_layout(y: torch.Tensor, plan) -> torch.Tensor:
    """(B, H, L, D) rows of the sdpa call (clock order) -> the layout's order."""
    index = plan.order[:, None, :, None].expand_as(y)
    return torch.empty_like(y).scatter(2, index, y)


def summary_rows(y: torch.Tensor, lay, r: int) -> dict[int, torch.Tensor]:
    """Row r's real summary outputs (H, D) of y (H, L, D), keyed by their cell."""
    T = lay.n_regular
    valid, cell = lay.summary_valid[r], lay.summary_cell[r]
    return {int(cell[s]): y[:, T + s] for s in range(len(cell)) if valid[s]}


def test_flex_equals_sdpa(setup):
    model, batch = setup
    flex, sdpa = model.plan(batch, "flex"), model.plan(batch, "sdpa")
    T = batch.shape[1]
    with torch.no_grad():
        y_flex = attend(*qkv(model, batch, flex), flex)
        y_sdpa = to_layout(attend(*qkv(model, batch, sdpa), sdpa), sdpa)
    torch.testing.assert_close(to_hid(y_flex, flex), y_sdpa[:, :, :T], atol=1e-5, rtol=1e-5)
    # The real summary rows agree too, matched by cell (the two executors may order the
    # slots differently: flex on CPU uses small blocks, hence (track, bar) order).
    S = int(sdpa.layout.summary_valid.sum(1).max())
    assert not torch.equal(flex.layout.summary_cell[:, :S], sdpa.layout.summary_cell[:, :S])
    for r in range(batch.shape[0]):
        flex_rows = summary_rows(y_flex[r], flex.layout, r)
        sdpa_rows = summary_rows(y_sdpa[r], sdpa.layout, r)
        assert flex_rows.keys() == sdpa_rows.keys()
        for cell, row in flex_rows.items():
            torch.testing.assert_close(row, sdpa_rows[cell], atol=1e-5, rtol=1e-5)
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_kernel_in_clock_order_equals_plain_sdpa(setup, dtype):
    """The CPU path (rows sorted by clock, causal flash kernel + additive mask) against the
    plain one (layout order, boolean mask, no causal flag): outputs and all three gradients."""
    model, batch = setup
    plan = model.plan(batch, "sdpa")
    assert plan.bias is not None and plan.order is not None
    above = torch.ones(plan.length, plan.length, dtype=torch.bool).triu(1)
    assert not (plan.mask & above).any()  # the whole mask on or below the diagonal
    q, k, v = (t.to(dtype).requires_grad_() for t in qkv(model, batch, plan))
    back = plan.order.argsort(dim=1)  # layout row -> call row
    mask = plan.mask[:, 0].gather(1, back[:, :, None].expand(-1, -1, plan.length))
    mask = mask.gather(2, back[:, None, :].expand_as(mask))[:, None]  # layout order

    def layout(t):
        return t.gather(2, back[:, None, :, None].expand_as(t))

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        bias = additive_mask(plan.mask)  # what the model builds under the step's autocast
    assert bias.dtype == dtype
    got = causal_masked(q, k, v, bias)
    want = torch.nn.functional.scaled_dot_product_attention(
        layout(q), layout(k), layout(v), attn_mask=mask, enable_gqa=True)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(layout(got), want, **tol)
    grad = torch.randn_like(got)
    grads = torch.autograd.grad(got, (q, k, v), grad)
    ref = torch.autograd.grad(want, (q, k, v), layout(grad))
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, **tol)


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


def test_flex_block_size_and_summary_order(setup):
    """CUDA uses block_size, CPU cpu_block_size; auto summary order follows the block."""
    cfg = ModelConfig(block_size=128, cpu_block_size=16)
    assert flex_block_size(cfg, "cuda") == 128 and flex_block_size(cfg, "cpu") == 16
    assert summary_order(cfg, 16) == "track" and summary_order(cfg, 128) == "bar"
    assert summary_order(cfg.replace(summary_order="bar"), 16) == "bar"
    model, batch = setup
    plan = model.plan(batch, "flex")  # on CPU
    size = CFG.cpu_block_size
    assert (size, size) == plan.block_mask.BLOCK_SIZE
    lay, cells = plan.layout, find_cells(batch)
    for r in range(batch.shape[0]):  # (track, bar) order of the summary slots
        slots = lay.summary_cell[r][lay.summary_valid[r]]
        key = cells.track[r, slots] * 1000 + cells.bar[r, slots] + cells.doc[r, slots] * 10**6
        assert (key.diff() > 0).all()


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


def test_one_compile_per_length_bucket():
    """The recompile policy: batches of every loader bucket (real crops, different songs per
    batch) compile flex once per bucket, and the library's limit holds them all."""
    import numpy as np
    import torch._dynamo
    from torch._dynamo.utils import counters
    from train_helpers import ALL_FIXTURES, FIXTURES

    from meloformer.data.crop import crop
    from meloformer.hid.encode import encode_file
    from meloformer.model.attention import RECOMPILE_LIMIT, graphs_needed
    from meloformer.train.config import TrainConfig

    assert torch._dynamo.config.recompile_limit >= RECOMPILE_LIMIT
    assert torch._dynamo.config.fail_on_recompile_limit_hit  # never a silent eager fallback
    buckets = TrainConfig(max_seq_len=512).bucket_lengths()
    assert graphs_needed(len(buckets), batch_sizes=4) <= RECOMPILE_LIMIT
    songs = [encode_file(FIXTURES / name) for name in ALL_FIXTURES]
    model = MeloFormer(CFG).eval()
    graphs, lengths = counters["stats"]["unique_graphs"], set()
    with torch.no_grad():
        for T in buckets:
            for k in range(3):  # B=3: a shape no other test compiles
                rng = np.random.default_rng(k)
                rows = [[crop(songs[(k + r) % len(songs)], T, rng)] for r in range(3)]
                batch = Batch.from_encodings(rows, length=T)
                plan = model.plan(batch, "flex")
                lengths.add(plan.length)
                model(batch, plan)
    assert len(lengths) == len(buckets)
    assert counters["stats"]["unique_graphs"] - graphs == len(buckets)
