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

The clock, kind and RoPE-coordinate rules are written once here, used by build_layout over a
whole batch and by CellTracker, the incremental layout of one row that generation's decoder
keeps token by token (meloformer/generate/rows.py); the cell rules come from cells.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from meloformer.hid import Family
from meloformer.model.batch import Batch
from meloformer.model.cells import (
    MAX_BARS,
    MAX_TRACKS,
    Cells,
    cell_key,
    gets_summary,
    is_header,
    opens_fill,
)

BODY, HEADER, SUMMARY, PAD = 0, 1, 2, 3
SUMMARY_FAMILY = len(Family)  # `family` of summary and padding slots (neutral for the type rule)


def token_clock(i):
    """Clock of the regular token at HID position i (tensor, array or int)."""
    return 2 * i


def summary_clock(last):
    """Clock of the summary of a cell whose last token is at HID position `last`: complete
    right after that token, visible strictly later."""
    return 2 * last + 1


@dataclass(frozen=True)
class MaskTables:
    """The per-slot tables the attention rules (masks.py) read, each (B, L) int32: kind, doc,
    track, bar, cell, clock, family, fill (see the module docstring). The one definition of
    these fields: Layout extends it, and generation's decode cache keeps one as its slot
    tables."""

    kind: torch.Tensor
    doc: torch.Tensor
    track: torch.Tensor
    bar: torch.Tensor
    cell: torch.Tensor
    clock: torch.Tensor
    family: torch.Tensor
    fill: torch.Tensor


MASK_TABLES = tuple(f.name for f in fields(MaskTables))  # the field names, in order


# Table values of a padding slot (0 for the other tables).
PAD_VALUE = {"kind": PAD, "doc": -1, "cell": -2, "family": SUMMARY_FAMILY}


@dataclass(frozen=True)
class Layout(MaskTables):
    """Per-row tables in execution order, each (B, L) int32 unless noted; L = T + S.

    Attributes:
        kind, doc, track, bar, cell, clock, family, fill: the MaskTables; `track` and `bar`
            have the document folded in (doc * MAX_TRACKS + track, doc * MAX_BARS + bar).
        coords: RoPE coordinates (bar, onset position, index in cell), (B, L, 3) int64.
        summary_cell: cell of each summary slot, (B, S) int64 (0 at padding slots).
        summary_valid: (B, S) bool.
        summary_track, summary_program: raw track index and program of each slot's cell,
            (B, S) int64 (0 at padding slots), for the summary embeddings.
        perm: HID position of each regular row of the execution order, (B, T) int64;
            None = HID order.
        n_regular: T.
    """

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
        extra = _pad(summary[name], pad_slots, PAD_VALUE.get(name, 0))
        tables[name] = torch.cat([value, extra], dim=1)
    # Padding slots keep distinct clocks past every real token (they only see themselves).
    tables["clock"][:, T + S :] = token_clock(torch.arange(T + S, L, device=batch.device))
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


@dataclass
class CellTracker:
    """The incremental layout of one batch row (one song: document 0) for cached decoding:
    fed the row's tokens in HID order, step by step, it gives each token's entries and the
    summary entry of each cell a token closes, by the rules build_layout applies to a whole
    batch (is_header, cell_key, gets_summary, token_clock, summary_clock, the coordinates), so
    the cache holds what the full forward pass would (tests/test_generate_cache.py).

    An entry is a dict of the MaskTables values (but doc), the RoPE coordinates c_bar, c_pos,
    c_idx and the embedding inputs id, program. A cell closes when a token outside it arrives
    (a header, or a body token of another cell); no earlier token may see its summary.
    Plain Python ints: no tensors, no host syncs.
    """

    n_cells: int = 0
    n_summaries: int = 0
    open: bool = False
    fill: int = 0  # 1 from the row's first FILL_MARK token on (its fill section)
    key: int = 0
    track_bar: tuple[int, int] = (0, 0)
    first: int = 0
    program: int = 0
    last_coords: tuple[int, int, int] = (0, 0, 0)

    def closes(self, tok: int, meta) -> bool:
        """Does token `tok` with metadata `meta` (track, bar, type, pos, program) fall outside
        the open cell?"""
        track, bar, typ = int(meta[0]), int(meta[1]), int(meta[2])
        key = cell_key(0, track, bar, self._fill_after(typ))
        return self.open and bool(is_header(tok, typ) or key != self.key)

    def _fill_after(self, typ: int) -> int:
        """The fill flag once a token of family `typ` is read (cells.fill_section's rule)."""
        return int(self.fill or bool(opens_fill(typ)))

    def close(self, last: int, summarize_empty: bool) -> dict | None:
        """Close the open cell, whose last token is at HID position `last`; return its summary
        entry (with "summary": its 1-based number in the row), or None if it gets none."""
        self.open = False
        if not gets_summary(self.first, last, summarize_empty):
            return None
        track, bar = self.track_bar
        self.n_summaries += 1
        # A summary sits at its cell's last token: same RoPE coordinates, clock just after.
        return dict(kind=SUMMARY, track=track, bar=bar, cell=self.n_cells - 1,
                    clock=summary_clock(last), family=SUMMARY_FAMILY, fill=self.key % 2,
                    c_bar=self.last_coords[0], c_pos=self.last_coords[1],
                    c_idx=self.last_coords[2], id=0, program=self.program,
                    summary=self.n_summaries)

    def regular(self, i: int, tok: int, meta) -> dict:
        """The entry of token `tok` at HID position i (opening a cell if none is open); call
        `closes`/`close` first."""
        track, bar, typ, pos, program = (int(m) for m in meta)
        self.fill = self._fill_after(typ)
        if is_header(tok, typ):
            # Index from the document's first token (position 0 of the row).
            coords, kind, cell = (bar, pos, i), HEADER, -1
        else:
            if not self.open:
                self.open, self.key, self.first = True, cell_key(0, track, bar, self.fill), i
                self.track_bar, self.program = (track, bar), program
                self.n_cells += 1
            kind, cell = BODY, self.n_cells - 1
            coords = self.last_coords = (bar, pos, i - self.first)
        return dict(kind=kind, track=track, bar=bar, cell=cell, clock=token_clock(i),
                    family=typ, fill=self.fill, c_bar=coords[0], c_pos=coords[1],
                    c_idx=coords[2], id=tok, program=program)


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
        "clock": token_clock(idx),
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
        "clock": summary_clock(last),
        "family": torch.full_like(slot_cell, SUMMARY_FAMILY),
        "fill": (cells.fill.gather(1, slot_cell) & slot_valid).long(),
    }
    return tables, coords.gather(1, last[..., None].expand(B, S, 3))



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
