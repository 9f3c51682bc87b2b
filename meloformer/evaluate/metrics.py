"""Objective music metrics of one song on the HID grid (pure numpy; NaN where undefined).

Definitions follow MusPy (`muspy/metrics/metrics.py`) and the Jazz Transformer / mgeval
papers; peers.md §5 lists the sources. A beat is a quarter note (`resolution` grid steps), as
MusPy's `resolution` ticks. Drum notes carry GM keys, not pitches: the pitch metrics skip them
(as MusPy does) and they sound for one grid step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meloformer.hid import DRUM_PROGRAM, Score, Vocab

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class Piece:
    """A Score plus the grid facts the metrics need.

    Attributes:
        score: the song.
        bar_len: grid steps of each bar, int64 [n_bars].
        resolution: grid steps per quarter note (a beat).
    """

    score: Score
    bar_len: np.ndarray
    resolution: int

    @classmethod
    def from_score(cls, score: Score, vocab: Vocab) -> Piece:
        return cls(score, vocab.bar_steps[score.ts].astype(np.int64), vocab.config.resolution)

    @property
    def length(self) -> int:
        """Grid steps from the first bar line to the end of the last bar."""
        return int(self.bar_len.sum())

    def pitched(self) -> np.ndarray:
        """bool mask of the notes of melodic (non-drum) tracks."""
        programs = np.asarray(self.score.programs, dtype=np.int64)
        return programs[self.score.track] != DRUM_PROGRAM if len(programs) else np.zeros(0, bool)


def _entropy(counts: np.ndarray) -> float:
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def pitch_class_entropy(piece: Piece) -> float:
    """Shannon entropy (bits) of the 12-bin pitch-class histogram of the melodic notes
    (MusPy `pitch_class_entropy`; Jazz Transformer). 0 = one pitch class, log2(12) = uniform."""
    pitches = piece.score.pitch[piece.pitched()]
    return _entropy(np.bincount(pitches % 12, minlength=12))


def scale_consistency(piece: Piece) -> float:
    """Largest share of melodic notes inside one major or natural-minor scale, over the 12
    roots (MusPy `scale_consistency`). 1 = every note fits one scale."""
    pc = piece.score.pitch[piece.pitched()] % 12
    if len(pc) == 0:
        return float("nan")
    counts = np.bincount(pc, minlength=12)
    best = 0
    for mode in (MAJOR, MINOR):
        for root in range(12):
            best = max(best, int(counts[(np.array(mode) + root) % 12].sum()))
    return best / len(pc)


def groove_consistency(piece: Piece) -> float:
    """1 - mean Hamming distance between the onset patterns of neighbouring bars, each
    distance divided by the bar length (MusPy `groove_consistency`, there with one fixed
    measure length; here only neighbours of equal length are compared). All tracks count."""
    s = piece.score
    pairs = [b for b in range(s.n_bars - 1) if piece.bar_len[b] == piece.bar_len[b + 1]]
    if not pairs:
        return float("nan")
    distance = 0.0
    for b in pairs:
        now, nxt = (np.zeros(piece.bar_len[b], bool) for _ in range(2))
        now[s.pos[s.bar == b]] = True
        nxt[s.pos[s.bar == b + 1]] = True
        distance += np.count_nonzero(now != nxt) / piece.bar_len[b]
    return 1.0 - distance / len(pairs)


def _roll(piece: Piece, notes: np.ndarray) -> np.ndarray:
    """(steps, 128) bool piano roll of the selected notes (drums one step long)."""
    s = piece.score
    roll = np.zeros((max(piece.length, 1), 128), dtype=bool)
    onsets = s.onsets()[notes]
    ends = np.minimum(onsets + np.maximum(s.dur[notes], 1), roll.shape[0])
    for on, end, pitch in zip(onsets, ends, s.pitch[notes], strict=True):
        roll[on:end, pitch] = True
    return roll


def polyphony(piece: Piece) -> float:
    """Mean number of melodic pitches sounding, over the grid steps where at least one
    sounds (MusPy `polyphony`, on the piano roll)."""
    sounding = _roll(piece, piece.pitched()).sum(axis=1)
    active = sounding > 0
    return float(sounding[active].mean()) if active.any() else float("nan")


def empty_beat_rate(piece: Piece) -> float:
    """Share of beats (quarter notes) in which no note of any track sounds (MusPy
    `empty_beat_rate`: a note covers the beats from its onset's to the one its end falls in)."""
    res = piece.resolution
    n_beats = -(-piece.length // res)
    if n_beats == 0:
        return float("nan")
    empty = np.ones(n_beats, dtype=bool)
    s = piece.score
    first = s.onsets() // res
    last = -(-(s.onsets() + np.maximum(s.dur, 1)) // res)  # ceil: the beat the end reaches
    for a, b in zip(first, last, strict=True):
        empty[a:b] = False
    return float(empty.mean())


def note_density(piece: Piece) -> float:
    """Notes (all tracks) per beat of the song (mgeval's total note count, per beat)."""
    beats = piece.length / piece.resolution
    return piece.score.n_notes / beats if beats else float("nan")


def last_bar_ratio(piece: Piece) -> float:
    """Notes (all tracks) starting in the last bar / mean notes per bar. Near 1 for an even
    song; a burst of notes at the end (a decoding defect) shows as a large ratio."""
    s = piece.score
    if s.n_notes == 0 or s.n_bars == 0:
        return float("nan")
    return float(np.count_nonzero(s.bar == s.n_bars - 1) / (s.n_notes / s.n_bars))


def held_past_end(piece: Piece) -> float:
    """Share of melodic notes still sounding after the last bar ends (onset + duration past
    the song's length). Drum notes sound one step and are left out."""
    pitched = piece.pitched()
    if not pitched.any():
        return float("nan")
    s = piece.score
    ends = s.onsets()[pitched] + s.dur[pitched]
    return float(np.mean(ends > piece.length))


PitchRanges = dict[int, tuple[int, int]]
"""Per program (0..127, 128 drums): the (lowest, highest) pitch the training data shows for
it (meta.json `pitch_ranges`, see meloformer.data.meta)."""


def out_of_range_share(piece: Piece, ranges: PitchRanges) -> float:
    """Mean over tracks of the share of each track's notes outside the pitch range of its
    program (tracks of a program without a range are skipped; NaN if none is left)."""
    s = piece.score
    shares = []
    for t, program in enumerate(s.programs):
        pitches = s.pitch[s.track == t]
        if program not in ranges or len(pitches) == 0:
            continue
        lo, hi = ranges[program]
        shares.append(np.mean((pitches < lo) | (pitches > hi)))
    return float(np.mean(shares)) if shares else float("nan")


SONG_METRICS = {
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "groove_consistency": groove_consistency,
    "polyphony": polyphony,
    "empty_beat_rate": empty_beat_rate,
    "note_density": note_density,
    "last_bar_ratio": last_bar_ratio,
    "held_past_end": held_past_end,
}
