"""DecodeCache: the model's KVCache (meloformer/model/cache.py: per-layer keys/values of regular
tokens and summary slots) plus the per-slot MaskTables that the model's own mask rules
(meloformer.model.masks) read, for B rows of one generation.

Slot layout of one batch row (N = 1 + max_summaries + max_tokens):

    0                       scratch: unused summary rows write here; never attended
    1 .. S                  summaries, filled downward (the j-th at S + 1 - j)
    S + 1 .. S + T          regular tokens (HID position i at S + 1 + i)

so the keys in use are always one contiguous range [S + 1 - n_summaries, S + 1 + length),
and attention reads a view of it, never a copy.

Static addresses: the compiled decode step (CUDA graphs) writes every buffer here in place,
and CUDA graph trees replay a graph that mutates an input only if that input is static: so
every buffer is allocated once, never reassigned, and marked a static address.
"""

from __future__ import annotations

import torch
from torch import nn

from meloformer.model.cache import KVCache
from meloformer.model.config import ModelConfig
from meloformer.model.layout import MASK_TABLES, PAD, PAD_VALUE, MaskTables
from meloformer.model.masks import MaskMod, meloformer_mask

_NEVER = 2**30  # clock of an empty slot: after every query

# The slot tables are the Layout's mask tables (one definition of the field names), one song
# per batch row: the document is always 0.
SlotTables = MaskTables


class DecodeCache(nn.Module):
    """KVCache `kv` (n_layer, B, KV, N, D) plus SlotTables, for B rows of one generation.

    A module only so that its tensors are buffers, as gpt-fast's KVCache; it has no
    parameters.

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
        self.kv = KVCache(cfg, batch, N, device, dtype)
        init = {name: PAD_VALUE.get(name, 0) for name in MASK_TABLES} | {"clock": _NEVER}
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
        return self.kv.n_slots

    def write_tables(self, cols: dict[str, torch.Tensor]) -> None:
        """Record the query rows' table entries at their slots (cols: (B, Q) int64 tensors)."""
        b = torch.arange(self.batch, device=cols["slot"].device)[:, None]
        slot, pad = cols["slot"], cols["kind"] == PAD
        for name in MASK_TABLES:
            if name == "doc":
                value = torch.where(pad, PAD_VALUE["doc"], 0)
            elif name == "clock":
                value = torch.where(pad, _NEVER, cols["clock"])
            else:
                value = cols[name]
            getattr(self.tables, name)[b, slot] = value.int()

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
