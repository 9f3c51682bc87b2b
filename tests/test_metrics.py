"""Music metrics on tiny hand-made scores with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from meloformer.evaluate.metrics import (
    Piece,
    empty_beat_rate,
    groove_consistency,
    held_past_end,
    last_bar_ratio,
    note_density,
    out_of_range_share,
    pitch_class_entropy,
    polyphony,
    scale_consistency,
)
from meloformer.evaluate.similarity import similarity_curve, similarity_error
from meloformer.hid.score import Score

BAR = 48  # one 4/4 bar at 12 steps per quarter


def piece(notes, programs=(0,), n_bars=2) -> Piece:
    """notes: (track, bar, pos, pitch, dur) tuples; every bar 4/4."""
    cols = np.array(sorted(notes), dtype=np.int64).reshape(-1, 5).T
    score = Score(starts=np.arange(n_bars) * BAR, ts=np.zeros(n_bars, np.int32),
                  tempos=[(0, 0, 30)], chords=None, programs=list(programs),
                  track=cols[0], bar=cols[1], pos=cols[2], pitch=cols[3], dur=cols[4],
                  vel=np.zeros(len(cols[0]), np.int64))
    return Piece(score, np.full(n_bars, BAR, np.int64), resolution=12)


def test_pitch_class_entropy():
    assert pitch_class_entropy(piece([(0, 0, 0, 60, 12), (0, 0, 12, 72, 12)])) == 0.0
    assert pitch_class_entropy(piece([(0, 0, 0, 60, 12), (0, 0, 12, 67, 12)])) == 1.0
    chromatic = [(0, 0, 4 * k, 60 + k, 2) for k in range(12)]
    assert pitch_class_entropy(piece(chromatic)) == pytest.approx(math.log2(12))
    # Drum keys are not pitches: a drum track alone has no pitch-class entropy.
    assert math.isnan(pitch_class_entropy(piece([(0, 0, 0, 36, 0)], programs=(128,))))


def test_scale_consistency():
    c_major = [(0, 0, 6 * k, p, 6) for k, p in enumerate((60, 62, 64, 65, 67, 69, 71))]
    assert scale_consistency(piece(c_major)) == 1.0
    assert scale_consistency(piece(c_major + [(0, 1, 0, 66, 6)])) == pytest.approx(7 / 8)
    assert math.isnan(scale_consistency(piece([])))


def test_groove_consistency():
    same = [(0, b, p, 60, 3) for b in range(2) for p in (0, 12, 24)]
    assert groove_consistency(piece(same)) == 1.0
    one_more = [(0, 0, 0, 60, 3), (0, 1, 0, 60, 3), (0, 1, 24, 60, 3)]
    assert groove_consistency(piece(one_more)) == pytest.approx(1 - 1 / BAR)
    assert math.isnan(groove_consistency(piece(same[:1], n_bars=1)))


def test_polyphony():
    # 60 sounds on steps 0-11, 64 on 6-17: one pitch for 12 steps, two for 6 -> 24 / 18.
    assert polyphony(piece([(0, 0, 0, 60, 12), (0, 0, 6, 64, 12)])) == pytest.approx(4 / 3)
    assert polyphony(piece([(0, 0, 0, 60, 48)])) == 1.0


def test_empty_beat_rate_and_note_density():
    # Two bars = 8 beats; a melodic note covers beat 0, a drum hit beat 2 (one step long).
    p = piece([(0, 0, 0, 60, 12), (1, 0, 30, 36, 0)], programs=(0, 128))
    assert empty_beat_rate(p) == pytest.approx(6 / 8)
    assert note_density(p) == pytest.approx(2 / 8)
    # A note held over a bar line fills every beat it reaches.
    assert empty_beat_rate(piece([(0, 0, 36, 60, 24)])) == pytest.approx(6 / 8)


def test_bar_similarity_by_distance_and_error():
    a, b = (0, 0, 60, 12), (0, 24, 64, 12)
    notes = [(t, 0, p, n, d) for t, p, n, d in (a, b)] + [(a[0], 1, *a[1:])] + [
        (t, 2, p, n, d) for t, p, n, d in (a, b)]
    curve = similarity_curve([piece(notes, n_bars=3).score], max_distance=3)
    # t=1: {a,b} vs {a} and {a} vs {a,b} -> 1/2 each; t=2: identical bars -> 1; t=3: no pair.
    assert curve[:2] == pytest.approx([0.5, 1.0]) and math.isnan(curve[2])
    other = np.array([0.5, 0.5, 0.2])
    assert similarity_error(curve, other) == pytest.approx(0.25)
    # A different duration (or track) is a different note.
    moved = [(0, 0, 0, 60, 12), (0, 1, 0, 60, 6)]
    assert similarity_curve([piece(moved).score], 1)[0] == 0.0


def test_last_bar_ratio_and_held_past_end():
    # 3 bars: 2, 2 and 5 notes; mean 3 a bar, the last bar holds 5.
    notes = [(0, 0, 0, 60, 12), (0, 0, 24, 62, 12), (0, 1, 0, 64, 12), (0, 1, 24, 65, 12)]
    notes += [(0, 2, 12 * k, 70 + k, 12) for k in range(4)] + [(0, 2, 40, 80, 20)]
    p = piece(notes, n_bars=3)
    assert last_bar_ratio(p) == pytest.approx(5 / 3)
    assert held_past_end(p) == pytest.approx(1 / 9)  # 40 + 20 > 48: past the end of bar 2
    drums = piece([(0, 1, 47, 36, 0)], programs=(128,))
    assert math.isnan(held_past_end(drums))  # drum hits have no length to hold
    assert math.isnan(last_bar_ratio(piece([], n_bars=1)))


def test_out_of_range_share_is_a_mean_over_tracks():
    notes = [(0, 0, 0, 30, 12), (0, 0, 12, 40, 12), (0, 0, 24, 50, 12), (0, 0, 36, 60, 12)]
    notes += [(1, 0, 0, 90, 12), (1, 0, 12, 70, 12)] + [(2, 0, 0, 60, 12)]
    p = piece(notes, programs=(33, 0, 5))
    ranges = {33: (28, 55), 0: (21, 80)}  # program 5 has no range: skipped
    assert out_of_range_share(p, ranges) == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert math.isnan(out_of_range_share(p, {}))
