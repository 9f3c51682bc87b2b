"""The infilling layout (docs/hid.md "Infilling"): exact round trip on the bundled sample, the
grammar reads it with the encoder's metadata, fills decode back in place, bad spans are named."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO

from meloformer.data.crop import crop
from meloformer.hid import GrammarError, HIDConfig
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file, vocab_for
from meloformer.hid.errors import MidiError
from meloformer.hid.grammar import GrammarState
from meloformer.hid.infill import Span, fill_cells, fill_mask, infill_layout, restore
from meloformer.hid.vocab import EOS, Family

VOCAB = vocab_for(HIDConfig())
SAMPLE = REPO / "data" / "raw" / "sample"


def sample_songs():
    out = []
    for path in sorted(SAMPLE.rglob("*.mid")):
        try:
            out.append((path.name, encode_file(path)))
        except MidiError:
            continue  # the sample keeps a few files the codec rejects on purpose
    return out


SONGS = sample_songs()


def random_spans(enc, rng, n_max=3) -> list[Span]:
    spans = []
    for _ in range(int(rng.integers(1, n_max + 1))):
        first = int(rng.integers(enc.n_bars))
        last = min(enc.n_bars - 1, first + int(rng.integers(8)))
        spans.append(Span(int(rng.integers(enc.n_tracks)), first, last))
    return spans


def assert_same(a, b, name):
    assert np.array_equal(a.ids, b.ids), name
    for field, arr in a.meta().items():
        assert np.array_equal(arr, b.meta()[field]), (name, field)
        assert arr.dtype == b.meta()[field].dtype, (name, field)
    assert (a.n_bars, a.n_tracks, a.n_notes) == (b.n_bars, b.n_tracks, b.n_notes)


def test_sample_is_there():
    assert len(SONGS) >= 50


def test_round_trip_and_grammar_on_the_sample():
    """restore(infill(song)) == song exactly; the grammar reads the infill sequence with the
    encoder's metadata and parses it to the very same Score (fills put back)."""
    rng = np.random.default_rng(0)
    for name, enc in SONGS:
        spans = random_spans(enc, rng)
        fill = infill_layout(enc, spans, VOCAB)
        assert len(fill) == len(enc) + 2 * len(fill_cells(spans)), name
        assert_same(restore(fill, VOCAB), enc, name)
        st = GrammarState(VOCAB)
        meta = np.array([st.step(t) for t in fill.ids])
        want = np.stack([fill.track, fill.bar, fill.type, fill.pos, fill.program], axis=1)
        assert np.array_equal(meta, want), name
        assert st.done and st.holes == [(t, b) for t, b in fill_cells(spans)], name
        a, b = parse_tokens(enc.ids, VOCAB), parse_tokens(fill.ids, VOCAB)
        for field in ("track", "bar", "pos", "pitch", "dur", "vel", "ts", "starts"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (name, field)


def test_fill_section_carries_its_cells_metadata():
    name, enc = max(SONGS, key=lambda s: s[1].n_tracks)
    spans = [Span(0, 1, 3), Span(enc.n_tracks - 1, 0, 0), Span(0, 2, 4)]  # overlap merges
    fill = infill_layout(enc, spans, VOCAB)
    section = fill_mask(fill.ids, VOCAB)
    starts = np.flatnonzero(fill.ids == VOCAB.index["FILL_START"])
    cells = [(int(fill.track[i]), int(fill.bar[i])) for i in starts]
    assert cells == fill_cells(spans) == [(1, 1), (1, 2), (1, 3), (1, 4), (enc.n_tracks, 0)]
    # In place: one FILL per cell where its BAR was; the rest of the song is untouched.
    holes = np.flatnonzero(fill.ids == VOCAB.index["FILL"])
    assert [(int(fill.track[i]), int(fill.bar[i])) for i in holes] == cells
    keep = ~section & (fill.ids != VOCAB.index["FILL"]) & (fill.type != Family.TRACK)
    for t, b in cells:
        assert not ((fill.track == t) & (fill.bar == b) & keep).any()
    # Every fill token carries its cell; the section's tokens are exactly the cells' notes.
    seg = np.cumsum(fill.ids == VOCAB.index["FILL_START"]) - 1
    for k, (t, b) in enumerate(cells):
        own = section & (seg == k) & (fill.ids != EOS)
        assert (fill.track[own] == t).all() and (fill.bar[own] == b).all(), name
        content = (enc.track == t) & (enc.bar == b) & (enc.type > Family.BAR) & (enc.ids != EOS)
        assert np.array_equal(fill.ids[own][1:-1], enc.ids[content])


def test_crops_without_eos_round_trip():
    rng = np.random.default_rng(1)
    for name, enc in SONGS[:20]:
        window = crop(enc, max(64, len(enc) // 3), rng)
        spans = random_spans(window, rng, 2)
        fill = infill_layout(window, spans, VOCAB)
        assert_same(restore(fill, VOCAB), window, name)


def test_bad_spans_are_named():
    _, enc = SONGS[0]
    with pytest.raises(ValueError, match=rf"infill span {enc.n_tracks}:0-1: the song has"):
        infill_layout(enc, [Span(enc.n_tracks, 0, 1)], VOCAB)
    with pytest.raises(ValueError, match="bars"):
        infill_layout(enc, [Span(0, enc.n_bars - 1, enc.n_bars)], VOCAB)
    with pytest.raises(ValueError, match="expected TRACK:FIRST-LAST"):
        Span.parse("bass:1-2")
    with pytest.raises(ValueError, match="first <= last"):
        Span.parse("1:5-2")
    assert Span.parse("2:9-12") == Span(2, 9, 12) and Span.parse("0:3") == Span(0, 3, 3)
    fill = infill_layout(enc, [Span(0, 0, 0)], VOCAB)
    with pytest.raises(ValueError, match="already holds FILL"):
        infill_layout(fill, [Span(0, 0, 0)], VOCAB)


def test_grammar_keeps_fills_in_order_and_in_their_bar():
    _, enc = SONGS[0]
    fill = infill_layout(enc, [Span(0, 0, 1)], VOCAB)
    ids = fill.ids.tolist()
    first = ids.index(VOCAB.index["FILL_START"])
    st = GrammarState(VOCAB)
    for t in ids[:first]:
        st.step(t)
    # Last bar: more notes, another track or the fills (EOS only once every hole is filled).
    allowed = set(np.flatnonzero(st.allowed()).tolist())
    assert VOCAB.index["FILL_START"] in allowed and EOS not in allowed
    assert {t for t in allowed if VOCAB.family_of[t] in (Family.FILL, Family.FILL_MARK)} == {
        VOCAB.index["FILL_START"]
    }
    st.step(VOCAB.index["FILL_START"])
    assert not st.allowed()[EOS] and st.allowed()[VOCAB.index["FILL_END"]]
    assert not st.allowed()[VOCAB.index["BAR"]] and not st.allowed()[VOCAB.index["FILL"]]
    bar_len = int(VOCAB.bar_steps[st.ts[0]])
    assert not st.allowed()[VOCAB.base(Family.POSITION) + bar_len]
    # With no placeholder left to fill, FILL_START is refused and EOS is the end.
    plain = GrammarState(VOCAB)
    for t in enc.ids[:-1]:
        plain.step(t)
    assert not plain.allowed()[VOCAB.index["FILL_START"]] and plain.allowed()[EOS]
    with pytest.raises(GrammarError):
        plain.step(VOCAB.index["FILL_START"])
    # No placeholder in the conductor.
    cond = GrammarState(VOCAB)
    for t in enc.ids[:3]:
        cond.step(t)
    assert not cond.allowed()[VOCAB.index["FILL"]]
