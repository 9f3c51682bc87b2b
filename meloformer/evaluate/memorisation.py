"""Memorisation: the share of a model's 4-bar spans that copy the training data verbatim.

A span is one track's notes over SPAN_BARS consecutive bars, as (bar within the span,
onset position, pitch): rhythm and pitches, not velocities or durations. A generated span
that holds a note and equals some training span is "memorised". The training spans are
hashed bar by bar, then window by window, so the whole train split fits in a set of ints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from meloformer.data import ShardReader, build_index
from meloformer.hid import Encoding, Family, Score, Vocab

SPAN_BARS = 4


def encoding_notes(enc: Encoding, vocab: Vocab) -> tuple[np.ndarray, ...]:
    """(track, bar, pos, pitch) of every instrument note of an Encoding (0-based tracks)."""
    sel = (enc.type == Family.PITCH) & (enc.track > 0)
    pitch = enc.ids[sel].astype(np.int64) - vocab.base(Family.PITCH)
    return (enc.track[sel].astype(np.int64) - 1, enc.bar[sel].astype(np.int64),
            enc.pos[sel].astype(np.int64), pitch)


def score_notes(score: Score) -> tuple[np.ndarray, ...]:
    """(track, bar, pos, pitch) of every note of a Score."""
    return tuple(np.asarray(a, dtype=np.int64)
                 for a in (score.track, score.bar, score.pos, score.pitch))


def span_keys(notes: tuple[np.ndarray, ...], n_bars: int, bars: int = SPAN_BARS
              ) -> dict[tuple[int, int], int]:
    """Hash of each (track, first bar) window of `bars` bars inside the song that holds a
    note; equal content, equal hash."""
    track, bar, pos, pitch = notes
    if len(track) == 0:
        return {}
    order = np.lexsort((pitch, pos, bar, track))
    cell = (track * (1 << 20) + bar)[order]
    value = (pos * 128 + pitch)[order]
    cuts = np.flatnonzero(np.diff(cell)) + 1
    bar_hash = {int(c): hash(v.tobytes()) for c, v in
                zip(cell[np.r_[0, cuts]], np.split(value, cuts), strict=True)}
    keys = {}
    for c in bar_hash:
        t, b = divmod(c, 1 << 20)
        for first in range(max(0, b - bars + 1), min(b, n_bars - bars) + 1):
            if (t, first) not in keys:
                keys[(t, first)] = hash(tuple(bar_hash.get(t * (1 << 20) + first + i, 0)
                                              for i in range(bars)))
    return keys


def train_span_keys(processed: Path, vocab: Vocab) -> set[int]:
    """Every 4-bar span hash of the train split's songs."""
    index = build_index(processed, split="train")
    reader, out = ShardReader(index), set()
    for i in range(len(index)):
        song = reader.song(i)
        out.update(span_keys(encoding_notes(song, vocab), int(song.bar.max()) + 1).values())
    return out


def memorised_share(generated: Sequence[Score], train_keys: set[int],
                    prompts: Sequence[int | None] | None = None) -> dict:
    """{"share": memorised spans / spans, "spans": count} over the generated songs.

    `prompts`: per song, the bars it was given (a continuation's prompt; None or 0: none);
    only spans whose every bar the model wrote count, since a prompt's own bars, taken from
    a held-out song, say nothing of what the model copies."""
    hits = total = 0
    for score, given in zip(generated, prompts or [None] * len(generated), strict=True):
        keys = [k for (_, first), k in span_keys(score_notes(score), score.n_bars).items()
                if first >= (given or 0)]
        total += len(keys)
        hits += sum(k in train_keys for k in keys)
    return {"share": hits / total if total else float("nan"), "spans": total}
