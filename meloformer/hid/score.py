"""Score: a song on the HID grid — the form both MIDI and tokens convert to and from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meloformer.hid.vocab import DRUM_PROGRAM

# Canonical track order: drums, bass, harmony (keys, guitar, strings, pads), melody, the rest.
# Rank of each GM family (program // 8); drums (128) rank first.
_FAMILY_RANK = {
    4: 1,  # bass 32-39
    0: 2,  # piano 0-7
    1: 2,  # chromatic percussion 8-15
    2: 2,  # organ 16-23
    3: 2,  # guitar 24-31
    5: 2,  # strings 40-47
    6: 2,  # ensemble 48-55
    11: 2,  # synth pad 88-95
    7: 3,  # brass 56-63
    8: 3,  # reed 64-71
    9: 3,  # pipe 72-79
    10: 3,  # synth lead 80-87
}


def track_rank(program: int) -> int:
    """Canonical order class of a track: 0 drums, 1 bass, 2 harmony, 3 melody, 4 other."""
    if program == DRUM_PROGRAM:
        return 0
    return _FAMILY_RANK.get(program // 8, 4)


def track_sort_key(program: int) -> tuple[int, int]:
    """Tracks are written in non-decreasing (rank, program) order."""
    return (track_rank(program), program)


@dataclass
class Score:
    """A song quantised to the grid.

    Attributes:
        starts: int64 [n_bars] grid step where each bar starts (bar 0 at 0).
        ts: int32 [n_bars] time-signature index (Vocab.time_sigs) in force in each bar.
        tempos: (bar, pos, tempo bin), sorted, first at (0, 0), consecutive bins distinct.
        chords: int32 [n_bars] chord index (0 = N) or None when chords are off.
        programs: per instrument track in canonical order, 0..127 or 128 for drums.
        note arrays (same length, sorted by track, bar, pos, pitch): track (0-based), bar, pos,
            pitch, dur (grid steps; 0 for drum notes), vel (velocity bin).
    """

    starts: np.ndarray
    ts: np.ndarray
    tempos: list[tuple[int, int, int]]
    chords: np.ndarray | None
    programs: list[int]
    track: np.ndarray
    bar: np.ndarray
    pos: np.ndarray
    pitch: np.ndarray
    dur: np.ndarray
    vel: np.ndarray

    @property
    def n_bars(self) -> int:
        return len(self.starts)

    @property
    def n_notes(self) -> int:
        return len(self.pitch)

    def onsets(self) -> np.ndarray:
        """Absolute grid step of each note's onset."""
        return self.starts[self.bar] + self.pos
