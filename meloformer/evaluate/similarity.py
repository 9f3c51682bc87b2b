"""Museformer's structure metric: bar-pair similarity by distance, and the similarity error.

Bar similarity l_ij = |N(i) ∩ N(j)| / |N(i) ∪ N(j)|, where N(b) is the set of notes of bar b
keyed by (track, onset in bar, pitch, duration) (Museformer, Yu et al. 2022, §4: notes match
when onset-in-bar, pitch and duration match; the track is part of the key here because HID
songs are multitrack). L_t is the mean of l_ij over bar pairs with j - i = t, pooled over a
set of songs (pairs of two empty bars are skipped: their similarity is undefined).
SE = mean over t = 1..T of |L_t(real) - L_t(generated)|, lower is better.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from meloformer.hid import Score


def bar_note_sets(score: Score) -> list[set[tuple[int, int, int, int]]]:
    """The (track, pos, pitch, dur) set of every bar."""
    sets: list[set] = [set() for _ in range(score.n_bars)]
    for t, b, p, n, d in zip(score.track, score.bar, score.pos, score.pitch, score.dur,
                             strict=True):
        sets[int(b)].add((int(t), int(p), int(n), int(d)))
    return sets


def similarity_sums(score: Score, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Per distance t = 1..max_distance: the sum of l_ij and the number of bar pairs.

    Returns:
        (sums, counts), float64 and int64 arrays of length max_distance (index t - 1).
    """
    sets = bar_note_sets(score)
    sums, counts = np.zeros(max_distance), np.zeros(max_distance, dtype=np.int64)
    for t in range(1, max_distance + 1):
        for i in range(len(sets) - t):
            union = len(sets[i] | sets[i + t])
            if union:
                sums[t - 1] += len(sets[i] & sets[i + t]) / union
                counts[t - 1] += 1
    return sums, counts


def similarity_curve(scores: Iterable[Score], max_distance: int = 16) -> np.ndarray:
    """L_t for t = 1..max_distance pooled over the songs (NaN where no pair exists)."""
    sums, counts = np.zeros(max_distance), np.zeros(max_distance, dtype=np.int64)
    for score in scores:
        s, c = similarity_sums(score, max_distance)
        sums, counts = sums + s, counts + c
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def similarity_error(real: np.ndarray, generated: np.ndarray) -> float:
    """Mean |L_t(real) - L_t(generated)| over the distances both curves define (NaN if none)."""
    both = ~np.isnan(real) & ~np.isnan(generated)
    return float(np.abs(real[both] - generated[both]).mean()) if both.any() else float("nan")
