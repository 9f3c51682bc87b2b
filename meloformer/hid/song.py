"""Encoding: a song's token ids plus the per-token metadata arrays the model's masks use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

META_FIELDS = ("track", "bar", "type", "pos", "program")


@dataclass(frozen=True)
class Encoding:
    """One song in HID. Every array has the token length L.

    Attributes:
        ids: token ids, int32 [L].
        track: 0 for BOS and the conductor track, k >= 1 for the k-th instrument track
            (its opening DRUMS/PROGRAM token included); EOS takes the last track's index.
        bar: bar index 0..n_bars-1 (BOS and track-opening tokens: 0; EOS: the last bar).
        type: the token's `Family` value.
        pos: onset position in the bar, in grid steps (note tokens inherit their onset's
            POS; BAR, TS, CHORD, BOS, track-opening tokens: 0).
        program: 0..127 melodic, 128 drums, 129 for BOS and the conductor.
        n_bars, n_tracks (instrument tracks, conductor excluded), n_notes.
    """

    ids: np.ndarray
    track: np.ndarray
    bar: np.ndarray
    type: np.ndarray
    pos: np.ndarray
    program: np.ndarray
    n_bars: int
    n_tracks: int
    n_notes: int

    def __len__(self) -> int:
        return len(self.ids)

    def meta(self) -> dict[str, np.ndarray]:
        """The metadata arrays by name (META_FIELDS order)."""
        return {name: getattr(self, name) for name in META_FIELDS}
