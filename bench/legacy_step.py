"""The cached step as it was before the decode path went through Block.forward (frozen copies of
meloformer/generate/step.py's run_rows/embed_rows and rows.py's CellTracker at fdfe692), kept
only as the "before" column of bench/generate.py --compare-legacy. Only the key/value buffer
access changed: they now live in the cache's model-side KVCache (cache.kv.k / cache.kv.v); the
arithmetic is as it was."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from meloformer.hid.vocab import BOS, Family
from meloformer.model.layout import BODY, HEADER, SUMMARY, SUMMARY_FAMILY


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
    slot = cols["slot"]
    for layer, block in enumerate(model.blocks):
        q, k, v = block.attn.project(block.attn_norm(x), rope)  # (B, H|KV, Q, D)
        b = torch.arange(cache.batch, device=slot.device)[:, None]  # (the old write_kv)
        cache.kv.k[layer][b, :, slot] = k.transpose(1, 2)
        cache.kv.v[layer][b, :, slot] = v.transpose(1, 2)
        keys, values = cache.kv.k[layer][:, :, lo:hi], cache.kv.v[layer][:, :, lo:hi]
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
        x = x + block.attn.output(y)
        x = x + block.ffn(block.ffn_norm(x))
    return model.lm_head(model.norm(x))


@dataclass
class CellTracker:
    """Cell bookkeeping of one batch row across steps (plain Python ints)."""

    n_cells: int = 0
    n_summaries: int = 0
    open: bool = False
    key: tuple[int, int] = (0, 0)
    first: int = 0
    program: int = 0
    last_coords: tuple[int, int, int] = (0, 0, 0)

    def close(self, last: int, summarize_empty: bool) -> dict | None:
        """Close the open cell whose last token is at `last`; its summary row, if it gets one."""
        self.open = False
        if last == self.first and not summarize_empty:
            return None  # a lone BAR: no summary (Layout.summarised)
        track, bar = self.key
        self.n_summaries += 1
        return dict(kind=SUMMARY, track=track, bar=bar, cell=self.n_cells - 1,
                    clock=2 * last + 1, family=SUMMARY_FAMILY, c_bar=self.last_coords[0],
                    c_pos=self.last_coords[1], c_idx=self.last_coords[2], id=0,
                    program=self.program, summary=self.n_summaries)

    def regular(self, i: int, tok: int, meta: tuple[int, ...]) -> dict:
        """The row of regular token `tok` at HID position i (opens a cell if needed)."""
        track, bar, typ, pos, program = (int(m) for m in meta)
        if tok == BOS or typ == Family.TRACK:
            coords, kind, cell = (bar, pos, i), HEADER, -1
        else:
            if not self.open:
                self.open, self.key, self.first, self.program = True, (track, bar), i, program
                self.n_cells += 1
            kind, cell = BODY, self.n_cells - 1
            coords = self.last_coords = (bar, pos, i - self.first)
        return dict(kind=kind, track=track, bar=bar, cell=cell, clock=2 * i, family=typ,
                    c_bar=coords[0], c_pos=coords[1], c_idx=coords[2], id=tok,
                    program=program)

    def closes(self, tok: int, meta: tuple[int, ...]) -> bool:
        """Does token `tok` with metadata `meta` fall outside the open cell?"""
        header = tok == BOS or int(meta[2]) == Family.TRACK
        return self.open and (header or (int(meta[0]), int(meta[1])) != self.key)
