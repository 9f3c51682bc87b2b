"""Query rows of one cached step: the new regular tokens plus the summaries of the cells they
close, with every per-row value the model needs (embedding inputs, RoPE coordinates, the mask
tables of meloformer.model.layout) and the cache slot each row writes.

The values come from meloformer.model.layout.CellTracker, the incremental form of the layout
rules (which cell a token opens or closes, clocks, coordinates); this module only places the
rows in slots and packs them. A cell's summary is computed in the step of the token that closes
it: no earlier token may see it, and that token is the first that may.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meloformer.model import PAD_VALUE, CellTracker

__all__ = ["COLUMNS", "CacheFull", "CellTracker", "QueryRows", "build_rows"]

# Columns of a row record: the Layout tables (kind, track, bar, cell, clock, family, fill), RoPE
# coordinates (bar, pos, index in cell), embedding inputs (id, program, track) and the slot.
COLUMNS = ("kind", "track", "bar", "cell", "clock", "family", "fill", "c_bar", "c_pos", "c_idx",
           "id", "program", "slot")
# A summary row left unused: padding-slot table values, writing to the scratch slot 0.
_INACTIVE = {name: PAD_VALUE.get(name, 0) for name in COLUMNS}


class CacheFull(RuntimeError):
    """More tokens or summaries than the cache was allocated for (the message says which)."""


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
