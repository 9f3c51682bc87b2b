"""Per-bar controls (docs/hid.md "Controls"): realised bins, insertion, the grammar reads them,
decoding ignores them, they travel with a bar into its fill."""

from __future__ import annotations

import numpy as np
import pytest
from test_infill import SONGS

from meloformer.hid.controls import (
    EMPTY,
    LEVELS,
    ControlBins,
    ControlError,
    add_controls,
    bin_edges,
    cell_stats,
    level,
    realised,
)
from meloformer.hid.decode import parse_tokens
from meloformer.hid.grammar import GrammarState
from meloformer.hid.infill import Span, infill_layout, restore
from meloformer.hid.vocab import Family, Vocab

VOCAB = Vocab()


def sample_bins() -> ControlBins:
    stats = [cell_stats(enc, VOCAB) for _, enc in SONGS[:30]]
    dens = np.concatenate([s.density[~s.empty] for s in stats])
    poly = np.concatenate([s.polyphony[~s.empty] for s in stats])
    return ControlBins(bin_edges(dens), bin_edges(poly))


BINS = sample_bins()


def test_stats_count_notes_per_bar():
    name, enc = SONGS[0]
    st = cell_stats(enc, VOCAB)
    assert len(st.track) == enc.n_tracks * enc.n_bars
    score = parse_tokens(enc.ids, VOCAB)
    for k in range(0, len(st.track), max(1, len(st.track) // 40)):
        t, b = int(st.track[k]), int(st.bar[k])
        sel = (score.track == t - 1) & (score.bar == b)
        assert st.notes[k] == sel.sum(), name
        onsets = len(np.unique(score.pos[sel]))
        assert st.polyphony[k] == (sel.sum() / onsets if onsets else 0.0)
        quarters = VOCAB.bar_steps[score.ts[b]] / VOCAB.config.resolution
        assert st.density[k] == pytest.approx(sel.sum() / quarters)


def test_bins_are_quantiles_and_round_trip():
    assert list(BINS.density) == sorted(BINS.density) and len(BINS.density) == 4
    assert ControlBins.from_dict(BINS.to_dict()) == BINS
    with pytest.raises(ControlError, match="control_bins.density"):
        ControlBins((3.0, 1.0, 2.0, 4.0), BINS.polyphony)
    with pytest.raises(ControlError, match="malformed"):
        ControlBins.from_dict({"density": [1, 2, 3, 4]})
    # Over the songs the edges came from, the non-empty bars spread over every bin.
    got = np.concatenate([realised(e, VOCAB, BINS)["density"] for _, e in SONGS[:30]])
    assert set(got.tolist()) - {EMPTY} == set(range(5))


def test_controls_parse_and_decode_to_the_same_song():
    rng = np.random.default_rng(0)
    n_ctl = n_cells = 0
    for name, enc in SONGS[:25]:
        ctl = add_controls(enc, VOCAB, BINS, rate=1.0, rng=rng, bar_keep=0.7)
        st = GrammarState(VOCAB)
        meta = np.array([st.step(t) for t in ctl.ids])
        want = np.stack([ctl.track, ctl.bar, ctl.type, ctl.pos, ctl.program], axis=1)
        assert np.array_equal(meta, want), name
        a, b = parse_tokens(enc.ids, VOCAB), parse_tokens(ctl.ids, VOCAB)
        for f in ("track", "bar", "pos", "pitch", "dur", "vel"):
            assert np.array_equal(getattr(a, f), getattr(b, f)), (name, f)
        # What the grammar recorded is the realised bins, where kept.
        real = realised(enc, VOCAB, BINS)
        for t, bar, d, p in zip(real["track"], real["bar"], real["density"],
                                real["polyphony"], strict=True):
            got = st.controls.get((int(t), int(bar)), {})
            assert got.get("density", d) == d and got.get("polyphony", p) == p
        n_ctl += int(np.isin(ctl.type, (Family.DENSITY, Family.POLYPHONY)).sum())
        n_cells += int((real["density"] != EMPTY).sum())  # bars that play
        # Removing them gives the song back.
        keep = ~np.isin(ctl.type, (Family.DENSITY, Family.POLYPHONY))
        for f in ("ids", "track", "bar", "type", "pos", "program"):
            assert np.array_equal(getattr(ctl, f)[keep], getattr(enc, f)), (name, f)
    assert 0.65 < n_ctl / (2 * n_cells) < 0.75  # each kept with probability 0.7
    assert add_controls(enc, VOCAB, BINS, rate=0.0, rng=rng) is enc


def test_empty_bars_carry_no_control_and_have_no_level():
    """Bin 0 used to hold every empty bar (39 % of bars), so "lowest" was learned as
    silence: now an empty bar has no level and no control token."""
    n_empty = 0
    for _, enc in SONGS[:25]:
        real = realised(enc, VOCAB, BINS)
        st = cell_stats(enc, VOCAB)
        assert np.array_equal(real["density"] == EMPTY, st.empty)
        assert np.array_equal(real["polyphony"] == EMPTY, st.empty)
        ctl = add_controls(enc, VOCAB, BINS, rate=1.0, rng=np.random.default_rng(0),
                           bar_keep=1.0)
        is_ctl = np.isin(ctl.type, (Family.DENSITY, Family.POLYPHONY))
        cells = set(zip(ctl.track[is_ctl].tolist(), ctl.bar[is_ctl].tolist(), strict=True))
        empty = set(zip(st.track[st.empty].tolist(), st.bar[st.empty].tolist(), strict=True))
        assert not cells & empty
        assert len(cells) == int((~st.empty).sum())
        n_empty += int(st.empty.sum())
    assert n_empty > 0  # the check above had empty bars to skip


def test_controls_are_drawn_per_song_and_per_bar():
    """A song carries controls with probability `rate`; within one, each with bar_keep."""
    _, enc = SONGS[2]
    rng = np.random.default_rng(5)
    with_any = [add_controls(enc, VOCAB, BINS, rate=0.5, rng=rng) is not enc
                for _ in range(400)]
    assert 0.43 < np.mean(with_any) < 0.57


def test_density_bins_split_the_bars_that_play_evenly():
    """The edges are quantiles of non-empty bars: each density bin holds about a fifth (the
    values are discrete, notes per quarter, so ties make some bins larger; empty bars in
    bin 0 made it 59 % of the bars)."""
    got = np.concatenate([realised(e, VOCAB, BINS)["density"] for _, e in SONGS])
    share = np.bincount(got[got != EMPTY], minlength=5) / (got != EMPTY).sum()
    assert all(0.05 < x < 0.35 for x in share), share


def test_controls_move_with_their_bar_into_a_fill():
    name, enc = SONGS[1]
    ctl = add_controls(enc, VOCAB, BINS, rate=1.0, rng=np.random.default_rng(1), bar_keep=1.0)
    st = cell_stats(enc, VOCAB)
    bar = int(st.bar[(st.track == 1) & ~st.empty][0])  # a bar that plays: it has controls
    fill = infill_layout(ctl, [Span(0, bar, bar)], VOCAB)
    st = GrammarState(VOCAB)
    for t in fill.ids:
        st.step(int(t))
    start = np.flatnonzero(fill.ids == VOCAB.index["FILL_START"])[0]
    assert fill.type[start + 1] == Family.DENSITY and fill.type[start + 2] == Family.POLYPHONY
    back = restore(fill, VOCAB)
    assert np.array_equal(back.ids, ctl.ids)


def test_grammar_allows_controls_only_after_an_opener():
    _, enc = SONGS[0]
    st = GrammarState(VOCAB)
    dens, poly = VOCAB.base(Family.DENSITY), VOCAB.base(Family.POLYPHONY)
    for i, t in enumerate(enc.ids):
        a = st.allowed()
        after_bar = i > 0 and enc.type[i - 1] == Family.BAR and enc.track[i - 1] > 0
        assert a[dens] == after_bar and a[poly] == after_bar, i
        st.step(int(t))


def test_levels():
    assert [level(x) for x in LEVELS] == list(range(5)) and level("3") == 3
    with pytest.raises(ControlError, match="control level 'loud'"):
        level("loud")


def test_tied_values_leave_no_bin_unreachable():
    """Most bars are monophonic (polyphony exactly 1): plain quantiles would put three edges
    at 1.0; the tie-aware edges give the tie one bin and split the rest."""
    rng = np.random.default_rng(0)
    values = np.r_[np.ones(600), 1 + rng.exponential(1.0, 400)]
    edges = bin_edges(values)
    assert edges[0] == 1.0 and len(set(edges)) == 4 and list(edges) == sorted(edges)
    bins = ControlBins(edges, edges)
    got = bins.bin("polyphony", values, np.zeros(len(values), dtype=bool))
    counts = np.bincount(got, minlength=5)
    assert counts[0] == 600 and all(80 <= c <= 120 for c in counts[1:])
    assert bin_edges(np.ones(10)) == (1.0, 2.0, 3.0, 4.0)  # nothing above the tie
