"""DecodeCache: preallocated per-layer keys/values of regular tokens and summary slots, and the
per-slot tables that the model's own mask rules (meloformer.model.masks) read.

Slot layout of one batch row (N = 1 + max_summaries + max_tokens):

    0                       scratch: unused summary rows write here; never attended
    1 .. S                  summaries, filled downward (the j-th at S + 1 - j)
    S + 1 .. S + T          regular tokens (HID position i at S + 1 + i)

so the keys in use are always one contiguous range [S + 1 - n_summaries, S + 1 + length),
and attention reads a view of it, never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from meloformer.model.config import ModelConfig
from meloformer.model.layout import PAD, SUMMARY_FAMILY
from meloformer.model.masks import MaskMod, meloformer_mask

_NEVER = 2**30  # clock of an empty slot: after every query


@dataclass(frozen=True)
class SlotTables:
    """(B, N) int32 tables with the field names of meloformer.model.layout.Layout, so the
    model's mask_mods run on them unchanged. The document is always 0 (one song per row)."""

    kind: torch.Tensor
    doc: torch.Tensor
    track: torch.Tensor
    bar: torch.Tensor
    cell: torch.Tensor
    clock: torch.Tensor
    family: torch.Tensor
    fill: torch.Tensor


class DecodeCache(nn.Module):
    """Keys/values (n_layer, B, KV, N, D) plus SlotTables, for B rows of one generation.

    A module only so that its tensors are buffers, as gpt-fast's KVCache; it has no
    parameters. The compiled decode step (CUDA graphs) writes these buffers in place, and
    CUDA graph trees replay a graph that mutates an input only if that input is static: so
    every buffer is allocated once, never reassigned, and marked a static address below.

    Args:
        cfg: the model's config (heads, layers, mask rules).
        batch: rows B.
        max_tokens: regular slots T.
        max_summaries: summary slots S.
        device, dtype: of the key/value buffers (the model's).
    """

    def __init__(self, cfg: ModelConfig, batch: int, max_tokens: int, max_summaries: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        self.cfg, self.batch = cfg, batch
        self.max_tokens, self.max_summaries = max_tokens, max_summaries
        self.dense = cfg.attention == "dense"
        N = 1 + max_summaries + max_tokens
        shape = (cfg.n_layer, batch, cfg.n_kv_head, N, cfg.head_dim)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype))
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype))
        init = dict(kind=PAD, doc=-1, track=0, bar=0, cell=-2, clock=_NEVER, family=SUMMARY_FAMILY,
                    fill=0)
        for name, value in init.items():
            full = torch.full((batch, N), value, dtype=torch.int32, device=device)
            self.register_buffer(f"table_{name}", full)
        self.tables = SlotTables(**{name: getattr(self, f"table_{name}") for name in init})
        for buffer in self.buffers():
            torch._dynamo.mark_static_address(buffer)
        # Built once: the closures read the tables, which are only ever updated in place.
        self.mask_mod: MaskMod = meloformer_mask(self.tables, cfg)  # type: ignore[arg-type]
        self.length = 0
        self.n_summaries = 0  # most summaries of any row

    @property
    def geometry(self) -> tuple[int, int]:
        return self.max_tokens, self.max_summaries

    @property
    def n_slots(self) -> int:
        """N = 1 + max_summaries + max_tokens."""
        return self.k.shape[3]

    def write_tables(self, cols: dict[str, torch.Tensor]) -> None:
        """Record the query rows' table entries at their slots (cols: (B, Q) int64 tensors)."""
        b = torch.arange(self.batch, device=cols["slot"].device)[:, None]
        slot = cols["slot"]
        t = self.tables
        t.kind[b, slot] = cols["kind"].int()
        t.doc[b, slot] = torch.where(cols["kind"] == PAD, -1, 0).int()
        t.track[b, slot] = cols["track"].int()
        t.bar[b, slot] = cols["bar"].int()
        t.cell[b, slot] = cols["cell"].int()
        t.clock[b, slot] = torch.where(cols["kind"] == PAD, _NEVER, cols["clock"]).int()
        t.family[b, slot] = cols["family"].int()
        t.fill[b, slot] = cols["fill"].int()

    def advance(self, n_regular: int, n_summaries: int) -> tuple[int, int]:
        """Account for a step; return the slot range [lo, hi) that its queries attend over."""
        self.length += n_regular
        self.n_summaries = max(self.n_summaries, n_summaries)
        S = self.max_summaries
        return S + 1 - self.n_summaries, S + 1 + self.length

    def mask(self, slot: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Who each query row (slot (B, Q)) sees among slots [lo, hi): (B, 1, Q, hi - lo) bool."""
        b = torch.arange(self.batch, device=slot.device)[:, None, None]
        kv = torch.arange(lo, hi, device=slot.device)[None, None, :]
        q = slot[:, :, None]
        if self.dense:  # plain causal over regular tokens
            clock = self.tables.clock
            visible = clock[b, kv] <= clock[b, q]
        else:
            h = torch.zeros((), dtype=torch.long, device=slot.device)
            visible = self.mask_mod(b, h, q, kv)
        # Unused summary rows see nothing in range: let them see everything instead (their
        # output is discarded) so that no row of the softmax is empty (NaN).
        visible = visible | ~visible.any(dim=-1, keepdim=True)
        return visible[:, None]

    def write_kv(self, layer: int, slot: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (B, KV, Q, D) of the query rows at their slots (B, Q)."""
        b = torch.arange(self.batch, device=slot.device)[:, None]
        self.k[layer][b, :, slot] = k.transpose(1, 2)
        self.v[layer][b, :, slot] = v.transpose(1, 2)

    def kv(self, layer: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of the keys and values of slots [lo, hi), (B, KV, hi - lo, D) each."""
        return self.k[layer][:, :, lo:hi], self.v[layer][:, :, lo:hi]
