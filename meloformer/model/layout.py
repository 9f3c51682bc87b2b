"""Layout: a Batch's summary slots, execution order and the per-token lookup tables that
the attention mask reads.

Vocabulary (per batch row):
- cell: the tokens of one (document, track, bar) (see cells.py).
- summary slot: one extra token per summarised cell, kept in a separate stream placed after
  the regular tokens in the attention call.
- kind: BODY (a token of a cell), HEADER, SUMMARY, PAD.
- fill: 1 for the tokens of a fill section (infilling, cells.fill_section) and the summaries
  of its cells, else 0; a fill's tokens read their cell's neighbours both ways (masks.py).
- clock: a doubled sequence position that makes every rule plainly causal: regular token at
  HID position i -> 2i; the summary of a cell whose last token is at i -> 2i + 1 (complete
  right after its last token, visible strictly later).
- execution order: where each query/key row sits in the attention call: regular tokens (HID
  order, or bar-major when `perm` is set), then the summary slots ((bar, track) or
  (track, bar) order), then padding slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from meloformer.hid.vocab import Family
from meloformer.model.batch import Batch
from meloformer.model.cells import MAX_BARS, MAX_TRACKS, Cells

BODY, HEADER, SUMMARY, PAD = 0, 1, 2, 3
SUMMARY_FAMILY = len(Family)  # `family` of summary and padding slots (neutral for the type rule)


@dataclass(frozen=True)
class Layout:
    """Per-row tables in execution order, each (B, L) int32 unless noted; L = T + S.

    Attributes:
        kind, doc, track, bar, cell, clock, family, fill: see the module docstring; `track` and
            `bar` have the document folded in (doc * MAX_TRACKS + track, doc * MAX_BARS + bar).
        coords: RoPE coordinates (bar, onset position, index in cell), (B, L, 3) int64.
        summary_cell: cell of each summary slot, (B, S) int64 (0 at padding slots).
        summary_valid: (B, S) bool.
        summary_track, summary_program: raw track index and program of each slot's cell,
            (B, S) int64 (0 at padding slots), for the summary embeddings.
        perm: HID position of each regular row of the execution order, (B, T) int64;
            None = HID order.
        n_regular: T.
    """

    kind: torch.Tensor
    doc: torch.Tensor
    track: torch.Tensor
    bar: torch.Tensor
    cell: torch.Tensor
    clock: torch.Tensor
    family: torch.Tensor
    fill: torch.Tensor
    coords: torch.Tensor
    summary_cell: torch.Tensor
    summary_valid: torch.Tensor
    summary_track: torch.Tensor
    summary_program: torch.Tensor
    perm: torch.Tensor | None
    n_regular: int

    @property
    def length(self) -> int:
        """L, the query/key length of the attention call."""
        return self.kind.shape[1]

    @property
    def n_summary(self) -> int:
        """S, summary slots (padding included)."""
        return self.length - self.n_regular


def summary_slots(cells: Cells, order: str = "bar") -> tuple[torch.Tensor, torch.Tensor]:
    """The summarised cells in (document, bar, track) or (document, track, bar) order.

    Args:
        cells: find_cells(batch).
        order: "bar" or "track". A token of track t in bar b reads the summaries of every
            earlier track and of its own track's bars < b (minus the cells it sees note by
            note): in track order that is a prefix of the slots, so small query blocks (one
            or two tracks) read few summary blocks; a block holding every track reads them
            all in either order, and bar order keeps SR (a block of summaries reads its
            cells) local to a few bar-major slices.

    Returns:
        cell (B, S) int64 and valid (B, S) bool; S = the most summarised cells in a row.
    """
    if order not in ("bar", "track"):
        raise ValueError(f"summary order {order!r}: expected 'bar' or 'track'")
    if order == "bar":
        key = (cells.doc * MAX_BARS + cells.bar) * MAX_TRACKS + cells.track
    else:
        key = (cells.doc * MAX_TRACKS + cells.track) * MAX_BARS + cells.bar
    key = torch.where(cells.summarised, key, torch.iinfo(torch.int64).max)
    order = key.argsort(dim=1, stable=True)
    S = max(int(cells.summarised.sum(1).max()), 1)
    slot_cell = order[:, :S]
    valid = cells.summarised.gather(1, slot_cell)
    return torch.where(valid, slot_cell, 0), valid


def bar_major_perm(batch: Batch, cells: Cells, conductor_first: bool = False) -> torch.Tensor:
    """HID positions of the regular tokens in bar-major order, (B, T).

    Per document: its header tokens (and the whole conductor if `conductor_first`), then
    bar 0 of every track (conductor first), bar 1, ...; padding last. Within a cell the HID
    order is kept.
    """
    B, T = batch.shape
    idx = torch.arange(T, device=batch.device).expand(B, T)
    front = cells.header | (conductor_first & (batch.track == 0) & (batch.doc >= 0))
    bar_key = torch.where(front, 0, batch.bar + 1)
    doc = torch.where(batch.doc >= 0, batch.doc, MAX_TRACKS)  # padding sorts last
    key = ((doc * (MAX_BARS + 1) + bar_key) * MAX_TRACKS + batch.track) * T + idx
    return key.argsort(dim=1)


def build_layout(
    batch: Batch,
    cells: Cells,
    bar_major: bool = False,
    multiple: int = 1,
    conductor_first: bool = False,
    summary_order: str = "bar",
    min_length: int = 0,
) -> Layout:
    """The per-row lookup tables of one batch, in execution order.

    Args:
        batch: the Batch.
        cells: find_cells(batch).
        bar_major: put the regular tokens in bar-major order (`perm`) instead of HID order.
        multiple: pad L = T + S up to a multiple of this (static shapes for compiled flex).
        conductor_first: bar-major order starts with the whole conductor (conductor_full).
        summary_order: "bar" or "track" order of the summary slots (see summary_slots).
        min_length: L is at least this (a multiple of `multiple`): room for the summaries
            most batches of a length bucket have, so they all share one shape.

    Returns:
        The Layout, on the batch's device.
    """
    B, T = batch.shape
    slot_cell, slot_valid = summary_slots(cells, summary_order)
    S = slot_cell.shape[1]
    L = max(-(-(T + S) // multiple) * multiple, min_length)
    pad_slots = L - T - S
    regular, coords = _regular_tables(batch, cells)
    summary, summary_coords = _summary_tables(cells, coords, slot_cell, slot_valid)
    perm = bar_major_perm(batch, cells, conductor_first) if bar_major else None
    if perm is not None:
        regular = {name: value.gather(1, perm) for name, value in regular.items()}
        coords = coords.gather(1, perm[..., None].expand(B, T, 3))
    tables = {}
    for name, value in regular.items():
        extra = _pad(summary[name], pad_slots, _PAD_VALUE.get(name, 0))
        tables[name] = torch.cat([value, extra], dim=1)
    # Padding slots keep distinct clocks past every real token (they only see themselves).
    tables["clock"][:, T + S :] = 2 * torch.arange(T + S, L, device=batch.device)
    tables["track"] = _fold(tables["doc"], tables["track"], MAX_TRACKS)
    tables["bar"] = _fold(tables["doc"], tables["bar"], MAX_BARS)
    return Layout(
        **{name: value.to(torch.int32) for name, value in tables.items()},
        coords=torch.cat([coords, _pad(summary_coords, pad_slots, 0)], dim=1),
        summary_cell=_pad(slot_cell, pad_slots, 0),
        summary_valid=_pad(slot_valid, pad_slots, False),
        summary_track=_pad(cells.track.gather(1, slot_cell).clamp(min=0), pad_slots, 0),
        summary_program=_pad(cells.program.gather(1, slot_cell).clamp(min=0), pad_slots, 0),
        perm=perm,
        n_regular=T,
    )


def _regular_tables(batch: Batch, cells: Cells) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tables of the regular tokens in HID order, (B, T) each, and their coords (B, T, 3)."""
    B, T = batch.shape
    idx = torch.arange(T, device=batch.device).expand(B, T)
    cell = cells.token_cell
    kind = torch.where(cell >= 0, BODY, torch.where(cell == -1, HEADER, PAD))
    # Index of a token inside its cell (headers: distance from the document's first token),
    # the third RoPE coordinate.
    first = torch.where(cell >= 0, cells.first.gather(1, cell.clamp(min=0)), _doc_start(batch))
    coords = torch.stack([batch.bar, batch.pos, idx - first], dim=-1)
    tables = {
        "kind": kind,
        "doc": batch.doc,
        "track": batch.track,
        "bar": batch.bar,
        "cell": cell,
        "clock": 2 * idx,
        "family": torch.where(kind == PAD, SUMMARY_FAMILY, batch.type),
        "fill": cells.token_fill.long(),
    }
    return tables, coords


def _summary_tables(
    cells: Cells, coords: torch.Tensor, slot_cell: torch.Tensor, slot_valid: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tables of the summary slots, (B, S) each, and their coords (B, S, 3): a summary sits
    at its cell's last token (same RoPE coordinates, clock just after it)."""
    B, S = slot_cell.shape
    last = cells.last.gather(1, slot_cell).clamp(min=0)  # (B, S): HID position of the cell end
    tables = {
        "kind": torch.where(slot_valid, SUMMARY, PAD),
        "doc": torch.where(slot_valid, cells.doc.gather(1, slot_cell), -1),
        "track": cells.track.gather(1, slot_cell),
        "bar": cells.bar.gather(1, slot_cell),
        "cell": torch.where(slot_valid, slot_cell, -2),
        "clock": 2 * last + 1,
        "family": torch.full_like(slot_cell, SUMMARY_FAMILY),
        "fill": (cells.fill.gather(1, slot_cell) & slot_valid).long(),
    }
    return tables, coords.gather(1, last[..., None].expand(B, S, 3))


_PAD_VALUE = {"kind": PAD, "doc": -1, "cell": -2, "family": SUMMARY_FAMILY}


def _doc_start(batch: Batch) -> torch.Tensor:
    """HID position of the first token of each token's document, (B, T)."""
    B, T = batch.shape
    idx = torch.arange(T, device=batch.device).expand(B, T)
    new_doc = torch.ones_like(batch.doc, dtype=torch.bool)
    new_doc[:, 1:] = batch.doc[:, 1:] != batch.doc[:, :-1]
    return torch.where(new_doc, idx, 0).cummax(dim=1).values


def _fold(doc: torch.Tensor, value: torch.Tensor, size: int) -> torch.Tensor:
    """doc * size + value (padding, doc -1, lands below every real value)."""
    return doc * size + value


def _pad(x: torch.Tensor, n: int, value) -> torch.Tensor:
    """Append n entries of `value` along dim 1."""
    if n == 0:
        return x
    return torch.cat([x, x.new_full((x.shape[0], n, *x.shape[2:]), value)], dim=1)
