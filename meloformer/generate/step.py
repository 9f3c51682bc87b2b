"""One cached step: new query rows (regular tokens and the summaries of the cells they close)
through the model's own forward pass with its KVCache (MeloFormer.decode: the same embed_rows
and Block.forward as training). Prefill and decode-one-token are both this step, with P tokens
or one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from meloformer.generate.cache import DecodeCache
from meloformer.generate.rows import QueryRows
from meloformer.model import SUMMARY, DecodeRows, MeloFormer

StepFn = Callable[[MeloFormer, DecodeCache, dict, int, int], torch.Tensor]


def to_tensors(rows: QueryRows, device: torch.device) -> dict[str, torch.Tensor]:
    """The rows' (B, Q) arrays as int64 tensors on `device` (one host-to-device copy)."""
    names = list(rows.cols)
    packed = torch.from_numpy(np.stack([rows.cols[n] for n in names])).to(device)
    return dict(zip(names, packed.unbind(0), strict=True))


@torch.no_grad()
def extend(model: MeloFormer, cache: DecodeCache, rows: QueryRows,
           step: StepFn | None = None, full_range: bool = False) -> torch.Tensor:
    """Append query rows to the cache and return the regular rows' logits (B, P, V).

    Args:
        step: the tensor part (`forward_rows`, or a compiled copy of it).
        full_range: attend over every slot (static shapes for a compiled step) instead of the
            slots in use; the mask hides the others, so the logits are the same.
    """
    if rows.start != cache.length:
        raise ValueError(f"extend: rows start at {rows.start}, cache holds {cache.length}")
    cols = to_tensors(rows, cache.kv.k.device)
    lo, hi = cache.advance(rows.n_regular, int(rows.summaries.max(initial=0)))
    if full_range:
        lo, hi = 0, cache.n_slots
    return (step or forward_rows)(model, cache, cols, lo, hi)[:, : rows.n_regular]


def forward_rows(model: MeloFormer, cache: DecodeCache, cols: dict[str, torch.Tensor], lo: int,
                 hi: int) -> torch.Tensor:
    """The tensor part of a step (no host sync; compilable): record the rows' slot tables,
    build their decode plan (mask over slots [lo, hi), rotary tables) and run the model's
    forward with the cache. Logits (B, Q, V) of every row."""
    cache.write_tables(cols)
    rows = DecodeRows(
        ids=cols["id"], program=cols["program"], track=cols["track"],
        summary=cols["kind"] == SUMMARY,
        coords=torch.stack([cols["c_bar"], cols["c_pos"], cols["c_idx"]], dim=-1),  # (B, Q, 3)
        slot=cols["slot"],
    )
    mask, index = cache.attention(rows.slot, lo, hi)
    plan = model.decode_plan(rows, mask, (lo, hi), index)
    return model.decode(rows, plan, cache.kv)
