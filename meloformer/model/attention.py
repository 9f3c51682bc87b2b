"""Attention: the per-batch plan on the device (mask + rotary tables, wrapped once from a
MaskPlan, shared by all layers) and its three executors.

- flex: compiled FlexAttention + BlockMask over the bar-major execution order (GPU; CPU
  forward only, since flex has no CPU backward).
- sdpa: the dense boolean mask of the same mask_mod, over the rows in clock order (CPU
  training, and the oracle in the tests). In that order the mask lies on or below the
  diagonal, so on CPU it runs torch's causal flash kernel with the mask added on top: the
  kernel skips the upper triangle, as plain causal attention does (with a boolean mask and
  no causal flag it computes every block: 1.9x the attention time at 1024 tokens).
  Elsewhere, scaled_dot_product_attention with the boolean mask.
- dense: plain causal SDPA over the regular tokens, no summaries (baseline).

With a KVCache (generation's prefill and decode), the plan is a decode plan
(MeloFormer.decode_plan): the query rows' rotary tables, the cache slot each row writes, the
slot range [lo, hi) to attend over and the (B, 1, Q, hi - lo) mask; the executor is sdpa.

Recompile policy of compiled flex attention (and of the compiled blocks). Shapes are static by
construction: the loader pads every row to a length bucket and every flex call to a multiple
of lcm(block, length_bucket), so one graph serves each (micro-batch size, bucket) pair.
Dynamo's default limit of 8 graphs per code object is below what one run legitimately meets
(3 length buckets x up to 4 micro-batch sizes across the phases and OOM halvings x
train/eval), and past the limit flex does not fail: it silently runs the O(L^2) eager path. So
the library, not each caller, sets a limit that holds every bucket, and makes hitting it an
error instead of a silent slowdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch._dynamo
import torch.nn.functional as F
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, flex_attention

from meloformer.model.cache import LayerKV
from meloformer.model.config import ModelConfig
from meloformer.model.layout import Layout
from meloformer.model.plan import flex_block_size, resolve_executor, summary_order
from meloformer.model.rope import apply_rope

__all__ = ["Attention", "AttentionPlan", "additive_mask", "attend", "attend_gathered",
           "causal_masked", "flex_block_size", "resolve_executor", "summary_order"]

# 3 buckets x 4 micro-batch sizes x 2 grad modes x 2 dtypes = 48 graphs, with room to spare.
RECOMPILE_LIMIT = 64


def allow_recompiles(limit: int = RECOMPILE_LIMIT) -> None:
    """Raise dynamo's per-code-object recompile limit to at least `limit` (never lower it)
    and make hitting it an error rather than a silent fall back to eager."""
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, limit)
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 4 * limit)
    cfg.fail_on_recompile_limit_hit = True


def graphs_needed(buckets: int, batch_sizes: int, modes: int = 2) -> int:
    """Graphs one run of flex may compile: one per (bucket, micro-batch size, grad mode)."""
    return buckets * batch_sizes * modes


# Compiled once per process; static shapes (length buckets) keep it to one graph per bucket,
# and the recompile policy above leaves room for every bucket.
allow_recompiles()
flex_compiled = torch.compile(flex_attention, dynamic=False)


@dataclass(frozen=True)
class AttentionPlan:
    """Everything the layers need for one batch (or one cached step), on the model's device,
    built once and shared by all layers: by MeloFormer.attention_plan from a MaskPlan, or by
    MeloFormer.decode_plan for query rows against a KVCache.

    Attributes:
        executor: "flex", "sdpa" or "dense".
        layout: the Layout (execution order, summaries); None in a decode plan.
        rope: cos/sin tables (B, 1, L, D/2) of the query rows (dense: L = T).
        block_mask: flex only.
        mask: sdpa only, (B, 1, L, K) bool; K = L, or hi - lo in a decode plan.
        order: sdpa only (not in a decode plan): the layout row at each row of the call,
            (B, L) int64 (plan.clock_order); rope and mask are in this order.
        bias: with `order`, on CPU: the mask in the causal flash kernel's additive form
            (0 / -inf; `additive_mask`), (B, 1, L, L) bf16 under CPU autocast, else fp32.
        slot: decode plan only: the cache slot each query row writes, (B, L) int64.
        span: decode plan only: the slot range [lo, hi) the rows attend over.
        index: decode plan only, optional: the rows in G groups of R, each attending over
            its own n cache slots, (B, G, n) int64; mask is then (B, G, R, n).
    """

    executor: str
    layout: Layout | None
    rope: tuple[torch.Tensor, torch.Tensor]
    block_mask: BlockMask | None = None
    mask: torch.Tensor | None = None
    slot: torch.Tensor | None = None
    span: tuple[int, int] | None = None
    index: torch.Tensor | None = None
    order: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Rows of the attention call: T (dense) or T + S."""
        return self.rope[0].shape[2]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: AttentionPlan) -> torch.Tensor:
    """Attention of q (B, H, L, D) over k, v (B, KV, L, D) under the plan -> (B, H, L, D)."""
    if plan.executor == "flex":
        if q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad:
            raise RuntimeError("flex attention has no backward on CPU: use attention='sdpa'")
        return flex_compiled(q, k, v, block_mask=plan.block_mask, enable_gqa=True)
    if plan.bias is not None:
        return causal_masked(q, k, v, plan.bias)
    if plan.executor == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=plan.mask, enable_gqa=True)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


def causal_masked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
                  ) -> torch.Tensor:
    """Causal attention of q (B, H, L, D) over k, v (B, KV, L, D) with the additive mask
    `bias` (B, 1, L, L) on top -> (B, H, L, D); CPU only.

    torch's CPU flash kernel takes both the causal flag and a mask (the public
    scaled_dot_product_attention refuses the pair) and then skips every key block above the
    diagonal; its backward is the same op's. It reads the KV heads of a query head group
    itself (GQA; repeating them first cost 10 % more). The mask's dtype is q's or fp32 (the
    kernel takes no other; see `additive_mask`). A mask entry above the diagonal is ignored."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, k, v, 0.0, True, attn_mask=bias)[0]


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """The bool mask (True = attend) as causal_masked's additive form: 0 where kept, -inf
    where not, in the CPU autocast dtype when autocast is on (then q's dtype: half the bytes
    the kernel reads per key block, 3-6 % off the call at 1-2k rows), else fp32. Both values
    are exact in bf16."""
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, -math.inf)


def attend_gathered(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention of q (B, H, Q, D) in G groups of R rows, each over its own n slots of
    keys/values (B, KV, N, D): index (B, G, n), mask (B, G, R, n) -> (B, H, Q, D).

    The same softmax as attending over every slot under the full mask, since a slot left
    out is one that no row of the group sees; the work is Q x n instead of Q x N."""
    B, H, Q, D = q.shape
    _, G, R, n = mask.shape
    KV = keys.shape[1]
    flat = index.reshape(B, 1, G * n, 1).expand(B, KV, G * n, D)

    def take(t: torch.Tensor) -> torch.Tensor:  # (B, KV, N, D) -> (B * G, KV, n, D)
        return t.gather(2, flat).view(B, KV, G, n, D).transpose(1, 2).reshape(B * G, KV, n, D)

    rows = F.pad(q, (0, 0, 0, G * R - Q))  # (B, H, G * R, D): the last group padded
    rows = rows.view(B, H, G, R, D).transpose(1, 2).reshape(B * G, H, R, D)
    y = F.scaled_dot_product_attention(rows, take(keys), take(values),
                                       attn_mask=mask.reshape(B * G, 1, R, n), enable_gqa=True)
    return y.view(B, G, H, R, D).transpose(1, 2).reshape(B, H, G * R, D)[:, :, :Q]


class Attention(nn.Module):
    """Multi-head attention with GQA and rotary positions; no biases.

    Split into project / attend / output so a KV cache can sit between them.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        kv_dim = cfg.n_kv_head * cfg.head_dim
        self.wq = nn.Linear(cfg.n_embd, cfg.n_head * cfg.head_dim, bias=False)
        self.wk = nn.Linear(cfg.n_embd, kv_dim, bias=False)
        self.wv = nn.Linear(cfg.n_embd, kv_dim, bias=False)
        self.wo = nn.Linear(cfg.n_head * cfg.head_dim, cfg.n_embd, bias=False)

    def project(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, C) -> rotated q (B, H, L, D), rotated k and v (B, KV, L, D)."""
        B, L, _ = x.shape
        q = self.wq(x).view(B, L, self.n_head, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(B, L, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(B, L, self.n_kv_head, self.head_dim).transpose(1, 2)
        return apply_rope(q, *rope), apply_rope(k, *rope), v

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, H, L, D) -> (B, L, C)."""
        B, _, L, _ = y.shape
        return self.wo(y.transpose(1, 2).reshape(B, L, -1))

    def forward(self, x: torch.Tensor, plan: AttentionPlan, cache: LayerKV | None = None
                ) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C). Without a cache the rows attend over each other under
        the plan; with one, they first write their keys/values at plan.slot, then attend over
        the cache's slots plan.span under plan.mask (so a summary closed in this step reads
        its cell's keys of this layer, and the closing token reads that summary, as in the
        full forward pass)."""
        q, k, v = self.project(x, plan.rope)
        if cache is not None:
            lo, hi = plan.span
            keys, values = cache.update(plan.slot, k, v)  # (B, KV, N, D)
            if plan.index is not None:
                return self.output(attend_gathered(q, keys, values, plan.index, plan.mask))
            k, v = keys[:, :, lo:hi], values[:, :, lo:hi]  # views, no copy
        return self.output(attend(q, k, v, plan))
