"""The attention rules as small mask_mods over a Layout's per-token tables.

Each rule is a named mask_mod; `meloformer_mask` composes them with `or_masks`/`and_masks`:

    mask = self | (causal & (rr | rs | sr | ss) [& token_type])

Every mask_mod only indexes the Layout's (B, L) tables with (b, q_idx) / (b, kv_idx) and
compares integers: no torch.where/clamp on indices (inductor's CPU codegen rejects them), and
all of it vectorises, since the key-side loads are contiguous.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.nn.attention.flex_attention import and_masks, or_masks

from meloformer.hid import Family
from meloformer.model.config import ModelConfig
from meloformer.model.layout import BODY, HEADER, MAX_TRACKS, SUMMARY, SUMMARY_FAMILY, Layout

MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _named(fn: MaskMod, name: str) -> MaskMod:
    fn.__name__ = name
    return fn


def self_mod(b, h, q_idx, kv_idx):
    """Every row sees itself: a summary reads itself, and no row (padding) is empty."""
    return q_idx == kv_idx


def causal_mod(lay: Layout) -> MaskMod:
    """Causal in sequence position: the key's clock is not after the query's."""
    clock = lay.clock
    return _named(lambda b, h, q, kv: clock[b, kv] <= clock[b, q], "causal")


def near_mod(lay: Layout, cfg: ModelConfig) -> MaskMod:
    """The cell rule of RR: is cell(kv) seen note by note from cell(q)?

    True for the query's own track at bar offsets {0} + fine_offsets, and for bars within
    cross_window of the query's bar in tracks already written (track index lower); with
    cfg.conductor_full, for every bar of the conductor (track 0). The document is folded
    into track and bar, so cells of other documents are never near.

    A query in a fill (lay.fill; infilling, docs/model.md "Infilling") is written after the
    whole song, so the same rules apply both ways: its own track at offsets -o as well as +o,
    and the bars within cross_window in every other track, later tracks too.
    """
    track, bar, doc, fill, w = lay.track, lay.bar, lay.doc, lay.fill, cfg.cross_window
    offsets = (0, *cfg.fine_offsets)

    def near(b, h, q, kv):
        dtrack = track[b, q] - track[b, kv]
        dbar = bar[b, q] - bar[b, kv]
        in_fill = fill[b, q] != 0
        own = dbar == offsets[0]
        for offset in offsets[1:]:
            own = own | (dbar == offset) | (in_fill & (dbar == -offset))
        other = (dtrack > 0) | (in_fill & (dtrack < 0))
        written = other & (dbar <= w) & (dbar >= -w)
        return ((dtrack == 0) & own) | written

    def near_or_conductor(b, h, q, kv):
        # The conductor is track 0: its folded track id is doc * MAX_TRACKS.
        conductor = track[b, kv] == doc[b, kv] * MAX_TRACKS
        later = (track[b, q] > track[b, kv]) & (doc[b, q] == doc[b, kv])
        return near(b, h, q, kv) | (conductor & later)

    return near_or_conductor if cfg.conductor_full else near


def rr_mod(lay: Layout, cfg: ModelConfig) -> MaskMod:
    """RR: a regular token sees its document's header tokens and, if it is a note-cell
    token itself, the tokens of the near cells (causality is applied on top)."""
    kind, doc, near = lay.kind, lay.doc, near_mod(lay, cfg)

    def rr(b, h, q, kv):
        q_kind, kv_kind = kind[b, q], kind[b, kv]
        header = (kv_kind == HEADER) & (q_kind <= HEADER) & (doc[b, q] == doc[b, kv])
        notes = (q_kind == BODY) & (kv_kind == BODY) & near(b, h, q, kv)
        return header | notes

    return rr


def rs_mod(lay: Layout, cfg: ModelConfig) -> MaskMod:
    """RS: a regular token reads the summary of every cell of its document that it does not
    see note by note (the clock makes it wait until that cell is complete)."""
    kind, doc, near = lay.kind, lay.doc, near_mod(lay, cfg)

    def rs(b, h, q, kv):
        q_kind = kind[b, q]
        seen = (q_kind == BODY) & near(b, h, q, kv)
        same_doc = doc[b, q] == doc[b, kv]
        return (q_kind <= HEADER) & (kind[b, kv] == SUMMARY) & same_doc & ~seen

    return rs


def sr_mod(lay: Layout) -> MaskMod:
    """SR: the summary of cell c reads the tokens of c."""
    kind, cell = lay.kind, lay.cell

    def sr(b, h, q, kv):
        return (kind[b, q] == SUMMARY) & (kind[b, kv] == BODY) & (cell[b, q] == cell[b, kv])

    return sr


def ss_mod(lay: Layout) -> MaskMod:
    """SS history option: a summary reads the summaries of earlier bars of its own track."""
    kind, track, bar = lay.kind, lay.track, lay.bar

    def ss(b, h, q, kv):
        both = (kind[b, q] == SUMMARY) & (kind[b, kv] == SUMMARY)
        return both & (track[b, q] == track[b, kv]) & (bar[b, kv] < bar[b, q])

    return ss


def type_table() -> torch.Tensor:
    """The seed's token-type rule as a (F + 1, F + 1) bool table (rows query, cols key).

    Over POSITION (T), PITCH (P), DURATION (L), VELOCITY (V): T -> {T, P}, P -> {T, P},
    L -> {}, V -> {V}. Every other family, summaries and padding are unrestricted.
    """
    table = torch.ones(SUMMARY_FAMILY + 1, SUMMARY_FAMILY + 1, dtype=torch.bool)
    T, P, L, V = Family.POSITION, Family.PITCH, Family.DURATION, Family.VELOCITY
    allowed = {T: {T, P}, P: {T, P}, L: set(), V: {V}}
    for q_family, keys in allowed.items():
        for kv_family in allowed:
            table[q_family, kv_family] = kv_family in keys
    return table


@functools.cache
def _type_table_on(device: torch.device) -> torch.Tensor:
    """type_table() on `device`, copied once per process (not at every plan)."""
    return type_table().to(device)


def type_mod(lay: Layout) -> MaskMod:
    """The type rule between different cells (a token sees its own cell fully)."""
    family, cell, table = lay.family, lay.cell, _type_table_on(lay.family.device)

    def token_type(b, h, q, kv):
        return (cell[b, q] == cell[b, kv]) | table[family[b, q], family[b, kv]]

    return token_type


def rule_mask(lay: Layout, cfg: ModelConfig) -> MaskMod:
    """The clock-free part of the mask: (rr | rs | sr | ss) [& token_type]. It reads only the
    tables `mask_features` lists, so two rows with equal features get equal mask rows."""
    rules = [rr_mod(lay, cfg), rs_mod(lay, cfg), sr_mod(lay)]
    if cfg.summary_track_history:
        rules.append(ss_mod(lay))
    rule = or_masks(*rules)
    return and_masks(rule, type_mod(lay)) if cfg.type_rule else rule


def meloformer_mask(lay: Layout, cfg: ModelConfig) -> MaskMod:
    """The full mask_mod over a Layout's execution order: self | (causal & rule_mask)."""
    return or_masks(self_mod, and_masks(causal_mod(lay), rule_mask(lay, cfg)))


def mask_features(lay: Layout, cfg: ModelConfig) -> list[torch.Tensor]:
    """Every table the rules read besides the clock (the segment builders split on them)."""
    features = [lay.kind, lay.doc, lay.track, lay.bar, lay.cell, lay.fill]
    return features + [lay.family] if cfg.type_rule else features
