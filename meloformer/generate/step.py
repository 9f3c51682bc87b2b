"""One cached step of the model: run new query rows (regular tokens and the summaries of the
cells they close) through every layer against a DecodeCache, reusing the model's own modules
(embeddings, RMSNorms, projections, RoPE, SwiGLU, head). Prefill and decode-one-token are both
this step, with P tokens or one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from meloformer.generate.cache import DecodeCache
from meloformer.generate.rows import QueryRows
from meloformer.model.layout import SUMMARY
from meloformer.model.transformer import MeloFormer

StepFn = Callable[[MeloFormer, DecodeCache, dict, int, int], torch.Tensor]


def embed_rows(model: MeloFormer, cols: dict[str, torch.Tensor]) -> torch.Tensor:
    """Input vectors (B, Q, C) of query rows, as MeloFormer.embed builds them: token +
    program + track for regular rows; summary vector + program + track for summary rows."""
    x = model.program_emb(cols["program"]) + model.track_emb(cols["track"])
    if model.summary_emb is None:
        return x + model.tok_emb(cols["id"])
    summary = (cols["kind"] == SUMMARY)[..., None]
    return x + torch.where(summary, model.summary_emb, model.tok_emb(cols["id"]))


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
        step: the tensor part (`run_rows`, or a compiled copy of it).
        full_range: attend over every slot (static shapes for a compiled step) instead of the
            slots in use; the mask hides the others, so the logits are the same.
    """
    if rows.start != cache.length:
        raise ValueError(f"extend: rows start at {rows.start}, cache holds {cache.length}")
    cols = to_tensors(rows, cache.k.device)
    lo, hi = cache.advance(rows.n_regular, int(rows.summaries.max(initial=0)))
    if full_range:
        lo, hi = 0, cache.n_slots
    return (step or run_rows)(model, cache, cols, lo, hi)[:, : rows.n_regular]


def run_rows(model: MeloFormer, cache: DecodeCache, cols: dict[str, torch.Tensor], lo: int,
             hi: int) -> torch.Tensor:
    """The tensor part of a step (no host sync; compilable): logits (B, Q, V) of every row.

    Each layer first writes the keys/values of every new row, then lets every new row attend
    over slots [lo, hi) under the model's mask rules; so a summary closed in this step reads
    its cell's keys of this layer, and the closing token reads that summary, as in the full
    forward pass.
    """
    cache.write_tables(cols)
    mask = cache.mask(cols["slot"], lo, hi)  # (B, 1, Q, K), shared by every layer
    coords = torch.stack([cols["c_bar"], cols["c_pos"], cols["c_idx"]], dim=-1)  # (B, Q, 3)
    rope = model.rope(coords)
    x = embed_rows(model, cols)  # (B, Q, C)
    for layer, block in enumerate(model.blocks):
        q, k, v = block.attn.project(block.attn_norm(x), rope)  # (B, H|KV, Q, D)
        cache.write_kv(layer, cols["slot"], k, v)
        keys, values = cache.kv(layer, lo, hi)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
        x = x + block.attn.output(y)
        x = x + block.ffn(block.ffn_norm(x))
    return model.lm_head(model.norm(x))
