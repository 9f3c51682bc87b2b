"""Per-song check columns computed from a shard's list columns, vectorised over the flat arrays.

The validation suite (validate.py) states its expectations over these scalar columns, so great
expectations sees one small row per song instead of one row per token. Checks that pair two
list columns (bar with track, type with ids) are only computed for songs whose lists have equal
lengths; for the others they are null and the length expectation reports the song.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from meloformer.data.shards import LIST_FIELDS
from meloformer.hid import Family, Vocab, track_sort_key

SCALAR_COLUMNS = ("hash", "split", "n_tokens", "n_bars", "n_tracks", "n_notes")
PAIRED_CHECKS = ("type_mismatches", "bar_backsteps", "track_jumps", "program_switches",
                 "order_inversions")  # fmt: skip


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [n+1] starting at 0, values) of a list column."""
    arr = column.combine_chunks()
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    values = np.asarray(arr.values)[offsets[0] : offsets[-1]].astype(np.int64)
    return offsets - offsets[0], values


def _segment(ufunc: np.ufunc, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """ufunc.reduce over each song's slice; -1 for empty songs."""
    lengths = np.diff(offsets)
    out = np.full(len(lengths), -1, dtype=np.int64)
    full = lengths > 0
    if full.any():
        out[full] = ufunc.reduceat(values, offsets[:-1][full])
    return out


def _count(flags: np.ndarray, song: np.ndarray, n: int) -> np.ndarray:
    """Per-song count of True flags; `song` gives each flag's song."""
    return np.bincount(song[flags], minlength=n)


def _ends(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) value of each song; -1 for empty songs."""
    lengths = np.diff(offsets)
    first, last = np.full(len(lengths), -1), np.full(len(lengths), -1)
    full = lengths > 0
    first[full], last[full] = values[offsets[:-1][full]], values[offsets[1:][full] - 1]
    return first, last


def single_checks(table: pa.Table) -> dict[str, np.ndarray]:
    """Checks that read one list column each: lengths, id range, ends, counts, maxima."""
    flat = {name: _flat(table.column(name)) for name in LIST_FIELDS}
    out = {f"len_{name}": np.diff(offsets) for name, (offsets, _) in flat.items()}
    offsets, ids = flat["ids"]
    out["ids_min"] = _segment(np.minimum, ids, offsets)
    out["ids_max"] = _segment(np.maximum, ids, offsets)
    out["first_id"], out["last_id"] = _ends(ids, offsets)
    offsets, types = flat["type"]
    song = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    out["pitch_count"] = _count(types == Family.PITCH, song, len(offsets) - 1)
    offsets, track = flat["track"]
    out["max_track"] = _segment(np.maximum, track, offsets)
    offsets, bar = flat["bar"]
    out["bars_seen"] = _segment(np.maximum, bar, offsets) + 1
    return out


def paired_checks(table: pa.Table, vocab: Vocab) -> dict[str, np.ndarray]:
    """Checks across list columns; every song's lists must have equal lengths.

    Returns:
        Per-song counts of: tokens whose type is not their id's family; bar decreases inside
        a track; track steps other than 0 or +1 (or a first token off track 0); program
        changes inside a track; consecutive tracks out of canonical (rank, program) order.
    """
    offsets, ids = _flat(table.column("ids"))
    _, typ = _flat(table.column("type"))
    _, track = _flat(table.column("track"))
    _, bar = _flat(table.column("bar"))
    _, program = _flat(table.column("program"))
    n = len(offsets) - 1
    song = np.repeat(np.arange(n), np.diff(offsets))
    family = vocab.family_of[np.clip(ids, 0, len(vocab) - 1)]
    starts = np.zeros(len(ids), dtype=bool)
    starts[offsets[:-1][np.diff(offsets) > 0]] = True
    inner = ~starts[1:]  # token i+1 continues the song of token i
    same_track = inner & (track[1:] == track[:-1])
    step = track[1:] - track[:-1]
    keys = np.array([rank * 256 + p for rank, p in map(track_sort_key, range(130))])
    key = keys[np.clip(program, 0, 129)]
    new_instrument = inner & (step == 1) & (track[:-1] >= 1)
    nxt = song[1:]
    return {
        "type_mismatches": _count(family != typ, song, n),
        "bar_backsteps": _count(same_track & (bar[1:] < bar[:-1]), nxt, n),
        "track_jumps": _count(inner & (step != 0) & (step != 1), nxt, n)
        + _count(starts & (track != 0), song, n),
        "program_switches": _count(same_track & (program[1:] != program[:-1]), nxt, n),
        "order_inversions": _count(new_instrument & (key[1:] < key[:-1]), nxt, n),
    }


def song_checks(table: pa.Table, vocab: Vocab) -> pd.DataFrame:
    """One row per song: its scalar columns plus every check column.

    Args:
        table: rows of a songs file (all LIST_FIELDS and SCALAR_COLUMNS present).
        vocab: the vocabulary the shard claims to use.
    Returns:
        DataFrame with SCALAR_COLUMNS, len_<field>, ids_min/max, first/last_id, pitch_count,
        max_track, bars_seen, and PAIRED_CHECKS (null where a song's lists differ in length).
    """
    df = table.select(list(SCALAR_COLUMNS)).to_pandas()
    for name, values in single_checks(table).items():
        df[name] = values
    lengths = df[[f"len_{f}" for f in LIST_FIELDS]].to_numpy()
    aligned = (lengths == lengths[:, :1]).all(axis=1)
    paired = paired_checks(table.filter(pa.array(aligned)), vocab)
    for name, values in paired.items():
        col = np.full(len(df), np.nan)
        col[aligned] = values
        df[name] = col
    return df
