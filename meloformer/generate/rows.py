"""Query rows of one cached step: the new regular tokens plus the summaries of the cells they
close, with every per-row value the model needs (embedding inputs, RoPE coordinates, the mask
tables of meloformer.model.layout) and the cache slot each row writes.

A (track, bar) cell closes when a token outside it arrives (a header, or a body token of
another cell; with infilling, a fill is a cell apart from its placeholder: cells.fill_section).
Its summary is computed in that same step: no earlier token may see it (its
clock is 2 * last + 1), and the token that closes it is the first that may.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meloformer.hid.vocab import BOS, Family
from meloformer.model.layout import BODY, HEADER, PAD, SUMMARY, SUMMARY_FAMILY

# Columns of a row record: the Layout tables (kind, track, bar, cell, clock, family, fill), RoPE
# coordinates (bar, pos, index in cell), embedding inputs (id, program, track) and the slot.
COLUMNS = ("kind", "track", "bar", "cell", "clock", "family", "fill", "c_bar", "c_pos", "c_idx",
           "id", "program", "slot")
_INACTIVE = dict(kind=PAD, track=0, bar=0, cell=-2, clock=0, family=SUMMARY_FAMILY, fill=0,
                 c_bar=0, c_pos=0, c_idx=0, id=0, program=0, slot=0)  # a summary row left unused


class CacheFull(RuntimeError):
    """More tokens or summaries than the cache was allocated for (the message says which)."""


@dataclass
class CellTracker:
    """Cell bookkeeping of one batch row across steps (plain Python ints)."""

    n_cells: int = 0
    n_summaries: int = 0
    open: bool = False
    fill: int = 0  # 1 from the first FILL_MARK token on (the fill section)
    key: tuple[int, int, int] = (0, 0, 0)
    first: int = 0
    program: int = 0
    last_coords: tuple[int, int, int] = (0, 0, 0)

    def close(self, last: int, summarize_empty: bool) -> dict | None:
        """Close the open cell whose last token is at `last`; its summary row, if it gets one."""
        self.open = False
        if last == self.first and not summarize_empty:
            return None  # a lone BAR: no summary (Layout.summarised)
        track, bar, fill = self.key
        self.n_summaries += 1
        return dict(kind=SUMMARY, track=track, bar=bar, cell=self.n_cells - 1,
                    clock=2 * last + 1, family=SUMMARY_FAMILY, fill=fill,
                    c_bar=self.last_coords[0], c_pos=self.last_coords[1],
                    c_idx=self.last_coords[2], id=0, program=self.program,
                    summary=self.n_summaries)

    def regular(self, i: int, tok: int, meta: tuple[int, ...]) -> dict:
        """The row of regular token `tok` at HID position i (opens a cell if needed)."""
        track, bar, typ, pos, program = (int(m) for m in meta)
        self.fill = self._fill_after(typ)
        if tok == BOS or typ == Family.TRACK:
            coords, kind, cell = (bar, pos, i), HEADER, -1
        else:
            if not self.open:
                self.open, self.first, self.program = True, i, program
                self.key = (track, bar, self.fill)
                self.n_cells += 1
            kind, cell = BODY, self.n_cells - 1
            coords = self.last_coords = (bar, pos, i - self.first)
        return dict(kind=kind, track=track, bar=bar, cell=cell, clock=2 * i, family=typ,
                    fill=self.fill, c_bar=coords[0], c_pos=coords[1], c_idx=coords[2], id=tok,
                    program=program)

    def closes(self, tok: int, meta: tuple[int, ...]) -> bool:
        """Does token `tok` with metadata `meta` fall outside the open cell?"""
        header = tok == BOS or int(meta[2]) == Family.TRACK
        key = (int(meta[0]), int(meta[1]), self._fill_after(int(meta[2])))
        return self.open and (header or key != self.key)

    def _fill_after(self, typ: int) -> int:
        """The fill flag once a token of family `typ` is read."""
        return int(self.fill or typ == Family.FILL_MARK)


@dataclass
class QueryRows:
    """(B, Q) int64 arrays, one per COLUMNS name; the first `n_regular` rows of each batch row
    are its new regular tokens in order, the rest summary rows (inactive ones write slot 0)."""

    cols: dict[str, np.ndarray]
    n_regular: int
    start: int
    """HID position of the first regular row."""
    summaries: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Summaries per batch row after this step, (B,)."""


def build_rows(
    trackers: list[CellTracker],
    tokens: np.ndarray,
    metas: np.ndarray,
    start: int,
    geometry: tuple[int, int],
    summaries: bool = True,
    summarize_empty: bool = False,
    summary_rows: int = 0,
) -> QueryRows:
    """The query rows of a step that appends tokens[b] (P tokens) to every batch row b.

    Args:
        trackers: one CellTracker per batch row (updated in place).
        tokens: (B, P) token ids; metas: (B, P, 5) their (track, bar, type, pos, program).
        start: HID position of tokens[:, 0].
        geometry: (max_tokens, max_summaries) of the cache.
        summaries: False for a dense model (no summary rows at all).
        summarize_empty: the model config's flag (summaries for one-token cells).
        summary_rows: at least this many summary rows per batch row (unused ones inactive):
            1 gives every decode step the same shape (for a compiled step).

    Raises:
        CacheFull: the step would exceed max_tokens or max_summaries.
    """
    max_tokens, max_summaries = geometry
    B, P = tokens.shape
    if start + P > max_tokens:
        raise CacheFull(f"{start + P} tokens > the cache's max_tokens {max_tokens}")
    regular, extra = [], []
    for b, tr in enumerate(trackers):
        reg, summ = [], []
        for j in range(P):
            tok, meta = int(tokens[b, j]), metas[b, j]
            if tr.closes(tok, meta):
                row = tr.close(start + j - 1, summarize_empty)
                if row is not None and summaries:
                    # The j-th summary (1-based) of a row sits at slot max_summaries + 1 - j.
                    summ.append({**row, "slot": max_summaries + 1 - row.pop("summary")})
            reg.append({**tr.regular(start + j, tok, meta), "slot": max_summaries + 1 + start + j})
        regular.append(reg)
        extra.append(summ)
    n_sum = np.array([tr.n_summaries if summaries else 0 for tr in trackers], np.int64)
    if n_sum.max(initial=0) > max_summaries:
        raise CacheFull(f"{int(n_sum.max())} summaries > the cache's max_summaries")
    width = max(max((len(s) for s in extra), default=0), summary_rows)
    cols = {name: np.zeros((B, P + width), np.int64) for name in COLUMNS}
    for b in range(B):
        padded = extra[b] + [_INACTIVE] * (width - len(extra[b]))
        for q, row in enumerate(regular[b] + padded):
            for name in COLUMNS:
                cols[name][b, q] = row[name]
    return QueryRows(cols=cols, n_regular=P, start=start, summaries=n_sum)
