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

from meloformer.model import (
    MASK_TABLES,
    PAD,
    PAD_VALUE,
    KVCache,
    MaskMod,
    MaskTables,
    ModelConfig,
    mask_features,
    meloformer_mask,
    rule_mask,
)

_NEVER = 2**30  # clock of an empty slot: after every query

# Query rows from which a step's mask is built per distinct (query, key) features rather than
# per (row, slot) pair: a 1,024-row prefill chunk over 32k slots evaluated the rules' ~60
# integer ops on 33 M pairs each (half of add-track's time under a 227-bar song).
BY_FEATURES_ROWS = 64

# Query rows per group of a gathered step (DecodeCache.gathered): each group attends only
# over the keys some row of it sees. A note sees ~5 % of a long song's slots (1,800 of 26k
# under a 227-bar song), and 128 consecutive rows together ~10-20 %.
GATHER_ROWS = 128
# Gathered only where the slots read are at most this share of the range (the gather copies
# them once per layer; over a short song the whole range is cheaper).
GATHER_SHARE = 0.5

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
        sparse: build prefill masks per distinct features and attend over the gathered slots
            (False: every step over the whole range, its mask per (row, slot) pair: the step
            before them, which `python -m bench.generate --long-baseline` times).
    """

    def __init__(self, cfg: ModelConfig, batch: int, max_tokens: int, max_summaries: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 sparse: bool = True):
        super().__init__()
        self.sparse = sparse
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
        self.rule_mod: MaskMod = rule_mask(self.tables, cfg)  # type: ignore[arg-type]
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

    def attention(self, slot: torch.Tensor, lo: int, hi: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A step's attention over slots [lo, hi) for query rows slot (B, Q): (mask, index).

        index None: mask (B, 1, Q, hi - lo) over the whole range (`mask`). Otherwise the
        gathered form (`gathered`): index (B, G, n) of the slots each group of rows reads,
        mask (B, G, R, n). Gathered only where it reads at most GATHER_SHARE of the range, never
        in the static-shape or a compiled step (its n is data-dependent: a host sync)."""
        visible = self.visible(slot, lo, hi)
        # lo == 0 only in the static-shape step (extend's full_range: slot 0 is the scratch
        # slot, never in use), which must stay free of host syncs to be captured.
        static = lo == 0 and hi == self.n_slots
        if self.sparse and not (self.dense or static or torch.compiler.is_compiling()):
            gathered = self.gathered(visible, lo)
            if gathered[1].shape[-1] <= GATHER_SHARE * (hi - lo):
                return gathered
        return _never_empty(visible)[:, None], None

    def gathered(self, visible: torch.Tensor, lo: int) -> tuple[torch.Tensor, torch.Tensor]:
        """visible (B, Q, K) bool over slots [lo, lo + K) -> (mask (B, G, R, n), index
        (B, G, n)): the Q rows in G groups of R = min(Q, GATHER_ROWS) (the last padded with
        rows that see nothing), each group with the n slots its rows see (n = the most of any
        group; shorter lists are padded with slots no row of the group sees)."""
        B, Q, K = visible.shape
        R = min(Q, GATHER_ROWS)
        G = -(-Q // R)
        rows = torch.zeros(B, G * R, K, dtype=torch.bool, device=visible.device)
        rows[:, :Q] = visible
        rows = rows.view(B, G, R, K)
        read = rows.any(dim=2)  # (B, G, K)
        n = max(int(read.sum(-1).max()), 1)
        # Read slots first, in slot order (a stable sort of the 0/1 flags, descending).
        order = torch.sort(read.to(torch.uint8), dim=-1, descending=True, stable=True).indices
        order = order[..., :n]  # (B, G, n)
        mask = rows.gather(3, order[:, :, None, :].expand(B, G, R, n))
        return _never_empty(mask), order + lo

    def mask(self, slot: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Who each query row (slot (B, Q)) sees among slots [lo, hi): (B, 1, Q, hi - lo) bool."""
        return _never_empty(self.visible(slot, lo, hi))[:, None]

    def visible(self, slot: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """The mask rules for query rows slot (B, Q) over slots [lo, hi): (B, Q, hi - lo)
        bool (unused summary rows may see nothing)."""
        b = torch.arange(self.batch, device=slot.device)[:, None, None]
        kv = torch.arange(lo, hi, device=slot.device)[None, None, :]
        q = slot[:, :, None]
        if self.dense:  # plain causal over regular tokens
            clock = self.tables.clock
            visible = clock[b, kv] <= clock[b, q]
        elif self.sparse and slot.shape[1] >= BY_FEATURES_ROWS:
            visible = self.mask_by_features(slot, lo, hi)
        else:
            h = torch.zeros((), dtype=torch.long, device=slot.device)
            visible = self.mask_mod(b, h, q, kv)
        return visible

    def mask_by_features(self, slot: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """mask_mod(b, h, slot, [lo, hi)) as (B, Q, hi - lo) bool, built from the distinct
        feature rows (masks.mask_features) of the queries and of the keys: the rule is
        evaluated on (distinct queries x distinct keys) and expanded by two gathers, then
        self | (causal & rule) as in meloformer_mask. Host syncs (torch.unique): for eager
        prefill steps, not the compiled decode step."""
        feats = torch.stack(mask_features(self.tables, self.cfg), dim=-1)  # (B, N, F)
        h = torch.zeros((), dtype=torch.long, device=slot.device)
        rules = []
        for b in range(self.batch):
            q_rep, q_inv = _distinct(feats[b, slot[b]])  # (Uq,), (Q,)
            kv_rep, kv_inv = _distinct(feats[b, lo:hi])  # (Uk,), (K,)
            row = torch.full((), b, dtype=torch.long, device=slot.device)
            rule = self.rule_mod(row, h, slot[b, q_rep][:, None], (kv_rep + lo)[None, :])
            rules.append(rule[q_inv][:, kv_inv])  # (Uq, Uk) -> (Q, K)
        bi = torch.arange(self.batch, device=slot.device)[:, None, None]
        kv = torch.arange(lo, hi, device=slot.device)[None, None, :]
        q = slot[:, :, None]
        clock = self.tables.clock
        return (torch.stack(rules) & (clock[bi, kv] <= clock[bi, q])) | (q == kv)


def _never_empty(mask: torch.Tensor) -> torch.Tensor:
    """Rows that see nothing (unused summary rows, padding) see everything instead (their
    output is discarded), so that no row of the softmax is empty (NaN)."""
    return mask | ~mask.any(dim=-1, keepdim=True)


def _distinct(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rows (R, F) -> (one row index per distinct row (U,), each row's distinct id (R,))."""
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    rep = torch.empty(int(inverse.max()) + 1, dtype=torch.long, device=rows.device)
    rep.scatter_(0, inverse, torch.arange(len(rows), device=rows.device))
    return rep, inverse
