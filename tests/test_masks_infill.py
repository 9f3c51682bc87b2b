"""The infill layout's mask (docs/model.md "Infilling") against the plain-loop oracle of
test_masks.py: dense oracle == mask_mod == segment expansion == bar-major BlockMask, on
synthetic and real songs with fills, packed beside plain songs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_layout import real_songs, synthetic_song
from test_masks import CONFIGS, check_block_mask, check_hid_order

from meloformer.hid.infill import Span, infill_layout
from meloformer.hid.vocab import Vocab
from meloformer.model.batch import Batch
from meloformer.model.block_mask import segment_dense_mask
from meloformer.model.cells import find_cells
from meloformer.model.config import ModelConfig
from meloformer.model.layout import build_layout
from meloformer.model.masks import mask_features, meloformer_mask

VOCAB = Vocab()


def infill_batch() -> Batch:
    """Row 0: a song with two spans (one of them in the last track); row 1: an infill song
    packed after a plain one; row 2: a plain song (the fill rule must not touch it)."""
    a, b, c = synthetic_song(20, 4, 8), synthetic_song(21, 3, 5), synthetic_song(22, 2, 3)
    fa = infill_layout(a, [Span(1, 2, 4), Span(3, 6, 7)], VOCAB)
    fb = infill_layout(b, [Span(0, 0, 1)], VOCAB)
    return Batch.from_encodings([[fa], [c, fb], [c]])


CASES = ["default", "ss-history", "narrow", "wide", "empty-summaries", "conductor-window"]


@pytest.mark.parametrize("name", CASES)
def test_infill_mask_matches_oracle(name):
    check_hid_order(infill_batch(), CONFIGS[name])


@pytest.mark.parametrize("name", ["default", "conductor-window", "wide"])
@pytest.mark.parametrize("summaries", ["bar", "track"])
def test_infill_block_mask_matches_oracle(name, summaries):
    check_block_mask(infill_batch(), CONFIGS[name], block=16, summaries=summaries)


@pytest.mark.parametrize("seed", range(3))
def test_random_infill_layouts(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(2):
        row = []
        for k in range(int(rng.integers(1, 3))):
            n_tracks, n_bars = int(rng.integers(1, 5)), int(rng.integers(2, 9))
            song = synthetic_song(50 * seed + k, n_tracks, n_bars, p_empty=0.5)
            first = int(rng.integers(n_bars))
            span = Span(int(rng.integers(n_tracks)), first, min(n_bars - 1, first + 2))
            row.append(infill_layout(song, [span], VOCAB) if rng.random() < 0.7 else song)
        rows.append(row)
    batch = Batch.from_encodings(rows)
    check_hid_order(batch, ModelConfig(cross_window=int(rng.integers(0, 3))))
    check_block_mask(batch, ModelConfig(), block=8, summaries=("bar", "track")[seed % 2])


def test_infill_real_songs():
    songs = real_songs(n_bars=5)  # bar windows 4..8 (bars keep their numbers)
    fa = infill_layout(songs[0], [Span(1, 5, 7)], VOCAB)
    fb = infill_layout(songs[1], [Span(0, 4, 4), Span(songs[1].n_tracks - 1, 6, 8)], VOCAB)
    batch = Batch.from_encodings([[fa], [fb]])
    check_hid_order(batch, ModelConfig())
    check_block_mask(batch, ModelConfig(), block=16, summaries="track")


def test_a_fill_reads_after_its_span_and_later_tracks():
    """What the layout is for: a fill's notes see the bar after the span in its own track and
    the aligned bar of a later track note by note, and nothing of the song is left unseen."""
    song = synthetic_song(30, 3, 6, p_empty=0.0)
    fill = infill_layout(song, [Span(1, 2, 3)], VOCAB)  # HID track 2, bars 2-3
    batch = Batch.from_encodings([[fill]])
    cells = find_cells(batch)
    lay = build_layout(batch, cells, multiple=8)
    cfg = ModelConfig()
    mask = segment_dense_mask(meloformer_mask(lay, cfg), mask_features(lay, cfg), lay.clock)[0, 0]
    T = lay.n_regular
    fill_rows = np.flatnonzero(cells.token_fill[0].numpy() & (batch.track[0] == 2).numpy())
    q = int(fill_rows[len(fill_rows) // 2])  # a token inside the first fill (bar 2)
    assert int(batch.bar[0, q]) == 2
    track, bar = batch.track[0].numpy(), batch.bar[0].numpy()
    body = ~cells.header[0].numpy() & ~cells.token_fill[0].numpy()
    after_own = np.flatnonzero(body & (track == 2) & (bar == 4))  # own track, after the span
    later = np.flatnonzero(body & (track == 3) & (bar == 2))  # a later track, same bar
    assert mask[q, torch.from_numpy(after_own)].all() and mask[q, torch.from_numpy(later)].all()
    # A plain token of the same cell position does not: later tracks stay invisible to it.
    plain = np.flatnonzero(body & (track == 2) & (bar == 1))[-1]
    assert not mask[plain, torch.from_numpy(later)].any()
    # Every real token before the fill is seen note by note or through its cell's summary.
    cell_of = cells.token_cell[0]
    slot_of = {int(c): T + s for s, c in enumerate(lay.summary_cell[0].tolist())}
    for k in range(q):
        c = int(cell_of[k])
        seen = bool(mask[q, k]) or (c >= 0 and c in slot_of and bool(mask[q, slot_of[c]]))
        assert seen or (c >= 0 and not bool(cells.summarised[0, c])), k
