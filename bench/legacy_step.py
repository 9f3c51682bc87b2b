"""The cached step as it was before the decode path went through Block.forward (frozen copy of
meloformer/generate/step.py's run_rows/embed_rows at fdfe692), kept only as the "before" column
of bench/generate.py --compare-legacy. Only the key/value buffer access changed: they now live in
the cache's model-side KVCache (cache.kv.k / cache.kv.v); the arithmetic is as it was."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from meloformer.model.layout import SUMMARY


def embed_rows(model, cols: dict[str, torch.Tensor]) -> torch.Tensor:
    """Input vectors (B, Q, C) of query rows (the old copy of MeloFormer.embed)."""
    x = model.program_emb(cols["program"]) + model.track_emb(cols["track"])
    if model.summary_emb is None:
        return x + model.tok_emb(cols["id"])
    summary = (cols["kind"] == SUMMARY)[..., None]
    return x + torch.where(summary, model.summary_emb, model.tok_emb(cols["id"]))


def run_rows(model, cache, cols: dict[str, torch.Tensor], lo: int, hi: int) -> torch.Tensor:
    """The old tensor part of a step (the old copy of Block.forward): logits (B, Q, V)."""
    cache.write_tables(cols)
    mask = cache.mask(cols["slot"], lo, hi)  # (B, 1, Q, K), shared by every layer
    coords = torch.stack([cols["c_bar"], cols["c_pos"], cols["c_idx"]], dim=-1)  # (B, Q, 3)
    rope = model.rope(coords)
    x = embed_rows(model, cols)  # (B, Q, C)
    b = torch.arange(cache.batch, device=cols["slot"].device)[:, None]
    slot = cols["slot"]
    for layer, block in enumerate(model.blocks):
        q, k, v = block.attn.project(block.attn_norm(x), rope)  # (B, H|KV, Q, D)
        cache.kv.k[layer][b, :, slot] = k.transpose(1, 2)
        cache.kv.v[layer][b, :, slot] = v.transpose(1, 2)
        keys, values = cache.kv.k[layer][:, :, lo:hi], cache.kv.v[layer][:, :, lo:hi]
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
        x = x + block.attn.output(y)
        x = x + block.ffn(block.ffn_norm(x))
    return model.lm_head(model.norm(x))
