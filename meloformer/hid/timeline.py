"""The grid timeline of a song: ticks -> grid steps, bar lines from time signatures, tempo bins.

Shared by the encoder (what HID writes) and the decoder (where a bar starts in ticks).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from meloformer.hid.errors import MidiTooLarge, UnsupportedMidi
from meloformer.hid.vocab import Vocab

DEFAULT_TS = (4, 4)
DEFAULT_USPQ = 500_000  # MIDI's default tempo: 120 BPM


def to_grid(ticks: np.ndarray, tpq: int, resolution: int) -> np.ndarray:
    """Round ticks to the nearest grid step (half steps round up), in integers only."""
    return (ticks * (2 * resolution) + tpq) // (2 * tpq)


def bar_lines(
    ts_events: list[tuple[int, int, int]], last_onset: int, vocab: Vocab, path: str
) -> tuple[np.ndarray, np.ndarray]:
    """Bar starts (grid steps) and the TS index in force in each bar, up to the bar of last_onset.

    A time-signature change takes effect at the first bar line at or after its grid position
    (a change placed mid-bar, which well-formed files do not have, waits for the bar line).

    Args:
        ts_events: (grid step, numerator, denominator), sorted by step; later wins at equal step.
        last_onset: grid step of the last note onset; the song's last bar contains it.
    Returns:
        starts int64 [n_bars], ts_index int32 [n_bars].
    Raises:
        UnsupportedMidi: a time signature in force that the vocabulary lacks.
        MidiTooLarge: more than max_bars bars.
    """
    max_bars = vocab.config.max_bars
    starts, tss = [], []
    current, k, start = DEFAULT_TS, 0, 0
    while start <= last_onset:
        while k < len(ts_events) and ts_events[k][0] <= start:
            current = ts_events[k][1:]
            k += 1
        idx = vocab.ts_index.get(current)
        if idx is None:
            raise UnsupportedMidi(
                path, f"time signature {current[0]}/{current[1]} at bar {len(starts)}"
            )
        starts.append(start)
        tss.append(idx)
        if len(starts) > max_bars:
            raise MidiTooLarge(path, f"more than max_bars={max_bars} bars")
        start += int(vocab.bar_steps[idx])
    return np.array(starts, dtype=np.int64), np.array(tss, dtype=np.int32)


def tempo_bin(uspq: int, vocab: Vocab) -> int:
    """Nearest log-spaced tempo bin of a tempo in microseconds per quarter (clipped to range)."""
    cfg = vocab.config
    bpm = 60_000_000 / uspq
    frac = math.log(bpm / cfg.tempo_min) / math.log(cfg.tempo_max / cfg.tempo_min)
    return min(cfg.tempo_bins - 1, max(0, round(frac * (cfg.tempo_bins - 1))))


def bin_uspq(k: int, vocab: Vocab) -> int:
    """Microseconds per quarter written for tempo bin k (its centre BPM)."""
    return round(60_000_000 / vocab.tempos[k])


def velocity_bins(vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(bin of each velocity 0..127, velocity written for each bin = middle of the bin)."""
    return _velocity_tables(vocab.config.velocity_bins)


@lru_cache(maxsize=8)
def _velocity_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    vel = np.arange(128)
    bins = np.maximum(vel - 1, 0) * n // 127
    mids = np.array([int(np.median(vel[1:][bins[1:] == b])) for b in range(n)], dtype=np.int32)
    bins = bins.astype(np.int32)
    bins.flags.writeable = mids.flags.writeable = False  # shared by every caller
    return bins, mids
