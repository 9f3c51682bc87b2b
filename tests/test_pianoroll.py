"""The piano roll of a long song wraps over rows of BARS_PER_ROW bars, so it stays readable."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
from conftest import FIXTURES

from meloformer.generate.pianoroll import BARS_PER_ROW, plot_pianoroll
from meloformer.generate.script import first_bars
from meloformer.hid import HIDConfig
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file, vocab_for

VOCAB = vocab_for(HIDConfig())


def _height_width(path) -> tuple[int, int]:
    return mpimg.imread(path).shape[:2]


def test_a_long_song_wraps_over_rows(tmp_path):
    song = encode_file(FIXTURES / "freedoom_E1M8_3-4.mid")
    res = HIDConfig().resolution
    short = plot_pianoroll(parse_tokens(first_bars(song, 8).ids, VOCAB), res, tmp_path / "a.png")
    long = first_bars(song, 60)
    path = plot_pianoroll(parse_tokens(long.ids, VOCAB), res, tmp_path / "b.png", "60 bars",
                          marks=[(1, 20, 23)])
    (h_short, w_short), (h, w) = _height_width(short), _height_width(path)
    rows = math.ceil(60 / BARS_PER_ROW)
    assert rows == 4 and w <= 2000 and w >= w_short  # no wider than one row of 16 bars
    assert h > 3 * h_short  # ... but taller: one row per 16 bars
    assert w / h < 2  # not a 4000 x 500 strip
