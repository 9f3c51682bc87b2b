"""Transposition of an encoded song: every melodic pitch and chord root moved by k semitones.

Training augmentation (train.transpose): the same music in another key is a new example, so the
model learns intervals rather than a song's absolute pitches (fewer verbatim copies of the
training songs). On the token stream it is exact: a PITCH id moves by k inside its family, the
order of the notes of one onset (ascending pitch) is kept, and nothing else changes length or
place. Drum notes name instruments, not pitches, and stay.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from meloformer.hid.song import Encoding
from meloformer.hid.vocab import CHORD_QUALITIES, DRUM_PROGRAM, Family, Vocab

_N_QUALITIES = len(CHORD_QUALITIES)


def _melodic_pitches(enc: Encoding) -> np.ndarray:
    """bool[L]: the PITCH tokens of melodic (non-drum) tracks."""
    return (enc.type == Family.PITCH) & (enc.program != DRUM_PROGRAM)


def transpose_range(enc: Encoding, vocab: Vocab) -> tuple[int, int]:
    """(lo, hi): the shifts k with lo <= k <= hi that keep every melodic pitch in 0..127
    ((-127, 127) for a song without one)."""
    pitch = enc.ids[_melodic_pitches(enc)].astype(np.int64) - vocab.base(Family.PITCH)
    if len(pitch) == 0:
        return -127, 127
    return -int(pitch.min()), 127 - int(pitch.max())


def transpose(enc: Encoding, k: int, vocab: Vocab) -> Encoding:
    """The song moved by `k` semitones (melodic pitches and chord roots; drums stay).

    Raises:
        ValueError: a melodic pitch would leave 0..127 (see transpose_range).
    """
    lo, hi = transpose_range(enc, vocab)
    if not lo <= k <= hi:
        raise ValueError(f"transpose by {k}: a pitch would leave 0..127 (allowed {lo}..{hi})")
    return _shifted(enc, k, vocab)


def _shifted(enc: Encoding, k: int, vocab: Vocab) -> Encoding:
    """transpose without the range check (k already inside transpose_range)."""
    if k == 0:
        return enc
    ids = enc.ids.astype(np.int64)  # shards store ids unsigned: shift in a signed copy
    ids[_melodic_pitches(enc)] += k
    chord = enc.type == Family.CHORD  # present only when the vocabulary has chords
    if chord.any():
        # CHORD id = base + 1 + root * n_qualities + quality (hid/chords.py); base = CHORD_N.
        idx = enc.ids.astype(np.int64) - vocab.base(Family.CHORD) - 1
        chord &= idx >= 0
        root, quality = np.divmod(idx[chord], _N_QUALITIES)
        ids[chord] = vocab.base(Family.CHORD) + 1 + ((root + k) % 12) * _N_QUALITIES + quality
    return replace(enc, ids=ids.astype(enc.ids.dtype))


def random_transpose(enc: Encoding, max_shift: int, vocab: Vocab,
                     rng: np.random.Generator) -> Encoding:
    """The song moved by k drawn uniformly from the shifts in [-max_shift, max_shift] that keep
    it in range; `max_shift == 0` draws nothing and returns the song itself."""
    if max_shift <= 0:
        return enc
    lo, hi = transpose_range(enc, vocab)
    k = int(rng.integers(max(lo, -max_shift), min(hi, max_shift) + 1))
    return _shifted(enc, k, vocab)
