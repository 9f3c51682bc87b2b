"""Cells: the (document, track, bar) groups of a Batch's tokens, found per row on device.

A cell is the run of tokens of one (document, track, bar) in HID order. The header tokens of
a document (BOS and the track-opening DRUMS/PROGRAM tokens) belong to no cell. With infilling
(docs/hid.md "Infilling") a document's tokens from its first FILL_MARK (FILL_START) on are its
fill section: a fill is a cell of its own, apart from its in-place placeholder of the same
(track, bar).

The cell rules (`is_header`, `opens_fill`, `cell_key`, `gets_summary`) are written once, for
tensors, numpy arrays and Python ints alike: find_cells applies them to a whole batch, and the
incremental decoder (layout.CellTracker) to one token at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from meloformer.hid import BOS, Family
from meloformer.model.batch import Batch

# Folding the document into track and bar ids lets the rules compare them without a separate
# same-document test: bars of different documents are >= 2 * MAX_BARS apart.
MAX_BARS, MAX_TRACKS = 8192, 256


def is_header(ids, family):
    """Header tokens (no cell): BOS and the track openers (family TRACK)."""
    return (ids == BOS) | (family == int(Family.TRACK))


def opens_fill(family):
    """A FILL_MARK token (the first is a FILL_START): from the first one on, a document's
    tokens are its fill section."""
    return family == int(Family.FILL_MARK)


def cell_key(doc, track, bar, fill=0):
    """One integer per (document, track, bar, fill section or not): a body token starts a new
    cell where its key differs from the previous body token's (a header between them neither
    breaks nor starts one)."""
    return ((doc * MAX_TRACKS + track) * MAX_BARS + bar) * 2 + fill


def gets_summary(first, last, summarize_empty: bool):
    """Does the cell of HID positions first..last get a summary slot? Every cell of >= 2
    tokens; a one-token cell (an empty bar: its BAR alone) only if summarize_empty."""
    return summarize_empty | (last > first)


@dataclass(frozen=True)
class Cells:
    """The cells of a batch: attributes (B, C) int64 and the token -> cell map.

    Attributes:
        doc, track, bar, program: of each cell (-1 where `valid` is False).
        first, last: HID positions of the cell's first and last token.
        valid: real cells (rows have different numbers of cells).
        summarised: cells that get a summary slot (not empty bars unless asked for).
        token_cell: cell of each regular token (B, T); -1 header, -2 padding.
        header: header tokens (B, T) bool.
        fill: cells of a fill section (B, C) bool; token_fill: its tokens (B, T) bool.
    """

    doc: torch.Tensor
    track: torch.Tensor
    bar: torch.Tensor
    program: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor
    valid: torch.Tensor
    summarised: torch.Tensor
    token_cell: torch.Tensor
    header: torch.Tensor
    fill: torch.Tensor
    token_fill: torch.Tensor

    @property
    def n_cells(self) -> int:
        return self.doc.shape[1]


def find_cells(batch: Batch, summarize_empty: bool = False) -> Cells:
    """Group each row's tokens into (document, track, bar) cells.

    Args:
        batch: the Batch (HID order within each document).
        summarize_empty: give a summary slot to one-token cells too (an empty bar is only
            its BAR token); by default they get none, which saves keys in sparse tracks.

    Returns:
        The Cells, on the batch's device.
    """
    B, T = batch.shape
    real = batch.doc >= 0
    header = real & is_header(batch.ids, batch.type)
    body = real & ~header
    idx = torch.arange(T, device=batch.device).expand(B, T)
    fill = fill_section(batch)
    # A cell starts where (doc, track, bar, fill) differs from the previous *body* token: the
    # header token between two tracks neither breaks nor starts a cell.
    key = cell_key(batch.doc, batch.track, batch.bar, fill)
    last_body = torch.where(body, idx, -1).cummax(dim=1).values
    prev = torch.cat([idx.new_full((B, 1), -1), last_body[:, :-1]], dim=1)
    start = body & ((prev < 0) | (key.gather(1, prev.clamp(min=0)) != key))
    cell = start.long().cumsum(1) - 1
    n_cells = max(int(start.sum(1).max()), 1)
    attrs = _cell_attributes(batch, cell, body, n_cells)
    cell_fill = fill.new_zeros(B, n_cells + 1).scatter_reduce(
        1, torch.where(body, cell, n_cells), fill.long(), "amax"
    )[:, :n_cells]
    return Cells(
        **attrs,
        summarised=attrs["valid"] & gets_summary(attrs["first"], attrs["last"], summarize_empty),
        token_cell=torch.where(body, cell, torch.where(header, -1, -2)),
        header=header,
        fill=cell_fill.bool(),
        token_fill=fill.bool(),
    )


def fill_section(batch: Batch) -> torch.Tensor:
    """(B, T) int64: 1 for the tokens of a document's fill section, else 0.

    The fill section runs from the document's first FILL_MARK token (its first FILL_START:
    docs/hid.md "Infilling") to its end; documents are contiguous runs of a row.
    """
    B, T = batch.shape
    idx = torch.arange(T, device=batch.device).expand(B, T)
    mark = opens_fill(batch.type) & (batch.doc >= 0)
    last_mark = torch.where(mark, idx, -1).cummax(dim=1).values  # latest mark at or before
    doc_of_mark = batch.doc.gather(1, last_mark.clamp(min=0))
    return ((last_mark >= 0) & (doc_of_mark == batch.doc) & (batch.doc >= 0)).long()


def _cell_attributes(
    batch: Batch, cell: torch.Tensor, body: torch.Tensor, n_cells: int
) -> dict[str, torch.Tensor]:
    """doc/track/bar/program/first/last/valid of each cell, by scatter over body tokens."""
    B, T = batch.shape
    target = torch.where(body, cell, n_cells)  # non-body tokens land in a spare column
    idx = torch.arange(T, device=batch.device).expand(B, T)
    out = {}
    for name, value in (
        ("doc", batch.doc),
        ("track", batch.track),
        ("bar", batch.bar),
        ("program", batch.program),
        ("last", idx),
    ):
        column = value.new_full((B, n_cells + 1), -1)
        out[name] = column.scatter_reduce(1, target, value, "amax")[:, :n_cells]
    first = idx.new_full((B, n_cells + 1), T).scatter_reduce(1, target, idx, "amin")
    out["first"] = first[:, :n_cells]
    out["valid"] = out["last"] >= 0
    return out
