"""Turn a mask_mod into what the kernels take: a BlockMask (flex) or a dense boolean mask
(SDPA). Both evaluate the same mask_mod, on segments rather than on every (q, kv) pair.

The BlockMask is built from *segments*, not from the (L, L) grid: a segment is a run of rows
in execution order, inside one block, over which every table the mask reads is constant
except the clock (one cell, one summary...). For such masks, with R the segment-level rule,

    mask(q, kv) = (q == kv) | (R(seg q, seg kv) & clock[kv] <= clock[q]),

so a segment pair has a visible entry iff the mask holds at (its latest query, its earliest
key), and is all visible iff the mask holds at (its earliest query, its latest key). That
needs the mask_mod at O(segments^2) points instead of O(L^2). tests/test_masks.py checks
both against the mask_mod evaluated at every (q, kv) pair and against a rule-by-rule oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.attention.flex_attention import BlockMask

from meloformer.model.masks import MaskMod

# The mask_mod is evaluated on the (S, S) segment pairs in this many slices whatever S: a
# fixed op count (kernel launches on a GPU), and a quarter of the pairs' intermediates alive
# at a time (B=8, T=8192 at 128-blocks: S ~ 1,500, so ~5M pairs per slice).
SEGMENT_CHUNKS = 4


def segment_block_mask(
    mask_mod: MaskMod,
    features: Sequence[torch.Tensor],
    clock: torch.Tensor,
    block: int | tuple[int, int],
    rows: int | None = None,
) -> BlockMask:
    """A BlockMask from segment representatives (see the module docstring).

    Args:
        mask_mod: a mask of the form self | (rule(segment pair) & causal on `clock`).
        features: every (B, L) table the rule reads; a segment ends where one changes.
        clock: the (B, L) causal clock.
        block: block size, or (query block, key block); one must divide the other.
        rows: query segments per mask_mod call (default: SEGMENT_CHUNKS calls in all).
    """
    B, L = clock.shape
    q_block, kv_block = _pair(block)
    nq, nk = _n_blocks(L, q_block), _n_blocks(L, kv_block)
    reps = _representatives(features, clock, min(q_block, kv_block))
    some, every = _segment_pairs(mask_mod, reps, rows=rows)
    q_of = torch.where(reps.used, reps.first // q_block, nq)  # unused segments -> spare block
    kv_of = torch.where(reps.used, reps.first // kv_block, nk)
    pair = (q_of[:, :, None] * (nk + 1) + kv_of[:, None, :]).reshape(B, -1)
    nonempty = _reduce(some, pair, (nq, nk), "amax")
    # Every row sees itself: the blocks on the diagonal are never empty.
    diag = torch.arange(L, device=clock.device)
    nonempty[:, diag // q_block, diag // kv_block] = True
    full = _reduce(every, pair, (nq, nk), "amin") & nonempty
    return from_block_maps(nonempty, full, (q_block, kv_block), mask_mod)


def segment_dense_mask(
    mask_mod: MaskMod, features: Sequence[torch.Tensor], clock: torch.Tensor
) -> torch.Tensor:
    """The mask as a (B, 1, L, L) bool tensor (SDPA's attn_mask; True = attend), expanded
    from segment pairs.

    Same contract as segment_block_mask: exact for self | (segment rule & causal) masks,
    and far cheaper than evaluating the mask_mod L^2 times (segments are contiguous runs,
    so the (S, S) rule expands by two gathers, every row at once).
    """
    B, L = clock.shape
    reps = _representatives(features, clock, L)
    some, _ = _segment_pairs(mask_mod, reps, every=False)  # the segment rule where causal
    S, seg = some.shape[1], reps.seg
    # (B, S, S) -> (B, S, L) -> (B, L, L); the expanded indices are views, never materialised.
    rule = some.gather(2, seg[:, None, :].expand(B, S, L))
    rule = rule.gather(1, seg[:, :, None].expand(B, L, L))
    causal = clock[:, None, :] <= clock[:, :, None]
    diagonal = torch.eye(L, dtype=torch.bool, device=clock.device)
    return ((rule & causal) | diagonal)[:, None]


@dataclass(frozen=True)
class _Segments:
    seg: torch.Tensor  # (B, L) segment of each row
    first: torch.Tensor  # (B, S) row of the segment's earliest clock
    last: torch.Tensor  # (B, S) row of its latest clock
    used: torch.Tensor  # (B, S) bool: rows have different segment counts


def _representatives(features: Sequence[torch.Tensor], clock: torch.Tensor, block: int):
    """Segments (split at block boundaries) and their earliest/latest rows."""
    B, L = clock.shape
    seg, n_seg = _segments(features, block)
    S = int(n_seg.max())
    idx = torch.arange(L, device=clock.device).expand(B, L)
    key = clock.long() * L + idx  # orders rows by clock; `% L` gives the row back
    big = torch.iinfo(torch.int64).max
    first = key.new_full((B, S), big).scatter_reduce(1, seg, key, "amin")
    last = key.new_full((B, S), -1).scatter_reduce(1, seg, key, "amax")
    used = torch.arange(S, device=clock.device) < n_seg[:, None]
    first, last = torch.where(used, first % L, 0), torch.where(used, last % L, 0)
    return _Segments(seg=seg, first=first, last=last, used=used)


def _segment_pairs(
    mask_mod: MaskMod, reps: _Segments, every: bool = True, chunks: int = SEGMENT_CHUNKS,
    rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, S, S): some entry of the pair visible / every entry visible (optional).

    Evaluated over `chunks` slices of the query segments, so the op count is fixed whatever
    B and S (and hence T); `rows` (segments per slice) overrides it, for the benchmark's
    before/after (the op count then grows with S).
    """
    B, S = reps.first.shape
    step = rows if rows is not None else -(-S // chunks)
    b = torch.arange(B, device=reps.first.device)[:, None, None]
    h = torch.zeros((), dtype=torch.long, device=reps.first.device)
    some, all_ = [], []
    for s0 in range(0, S, step):
        q_last, q_first = reps.last[:, s0 : s0 + step, None], reps.first[:, s0 : s0 + step, None]
        some.append(mask_mod(b, h, q_last, reps.first[:, None, :]))
        if every:
            all_.append(mask_mod(b, h, q_first, reps.last[:, None, :]))
    return torch.cat(some, 1), torch.cat(all_, 1) if every else None


def _segments(features: Sequence[torch.Tensor], block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Segment id of each row (B, L) and segments per row (B,)."""
    B, L = features[0].shape
    start = torch.zeros(B, L, dtype=torch.bool, device=features[0].device)
    start[:, ::block] = True
    for table in features:
        start[:, 1:] |= table[:, 1:] != table[:, :-1]
    seg = start.long().cumsum(1) - 1
    return seg, seg[:, -1] + 1


def _reduce(
    values: torch.Tensor, pair: torch.Tensor, blocks: tuple[int, int], how: str
) -> torch.Tensor:
    """Reduce (B, S, S) bools into (B, nq, nk) blocks by the flat block index `pair`."""
    B, (nq, nk) = values.shape[0], blocks
    init = 0 if how == "amax" else 1
    out = torch.full((B, (nq + 1) * (nk + 1)), init, dtype=torch.int32, device=values.device)
    out = out.scatter_reduce(1, pair, values.reshape(B, -1).to(torch.int32), how)
    return out.view(B, nq + 1, nk + 1)[:, :nq, :nk].bool()


def _pair(block: int | tuple[int, int]) -> tuple[int, int]:
    q_block, kv_block = (block, block) if isinstance(block, int) else block
    if max(q_block, kv_block) % min(q_block, kv_block):
        raise ValueError(f"block sizes {block}: one must divide the other")
    return q_block, kv_block


def _n_blocks(L: int, block: int) -> int:
    if L % block:
        raise ValueError(f"length {L} is not a multiple of the block size {block}")
    return L // block


def from_block_maps(
    nonempty: torch.Tensor, full: torch.Tensor, block: tuple[int, int], mask_mod: MaskMod
) -> BlockMask:
    """BlockMask (shared by all heads) from (B, nq, nk) non-empty and full block maps
    (full implies non-empty; the rest of the non-empty blocks are partial)."""
    L = nonempty.shape[-1] * block[1]
    kv_num, kv_idx = _to_indices(nonempty & ~full)
    full_num, full_idx = _to_indices(full)
    return BlockMask.from_kv_blocks(
        kv_num,
        kv_idx,
        full_num,
        full_idx,
        BLOCK_SIZE=block,
        mask_mod=mask_mod,
        seq_lengths=(L, L),
    )


def _to_indices(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, nq, nk) bool -> counts (B, 1, nq) and kv block indices (B, 1, nq, nk), set first."""
    counts = blocks.sum(-1, dtype=torch.int32)
    order = blocks.to(torch.int8).argsort(dim=-1, descending=True, stable=True)
    return counts[:, None], order.to(torch.int32)[:, None]
