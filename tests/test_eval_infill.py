"""Evaluation of infilling (bench/infill_eval.py): the no-context song is a valid song, both
scorings read the same tokens, adherence counts what the bars realise."""

from __future__ import annotations

import numpy as np
import torch
from test_infill import SONGS

from bench.infill_eval import (
    eval_span,
    infill_quality,
    span_score,
    without_context,
)
from meloformer.generate.script import first_bars
from meloformer.hid.decode import parse_tokens
from meloformer.hid.grammar import GrammarState
from meloformer.hid.infill import Span
from meloformer.hid.vocab import Vocab
from meloformer.model import MeloFormer, ModelConfig

VOCAB = Vocab()
TINY = dict(n_layer=1, n_embd=64, n_head=4, n_kv_head=2)


def test_without_context_is_a_song_of_the_span_alone():
    name, enc = max(SONGS, key=lambda s: s[1].n_tracks)
    span = Span(2, 3, 5)
    alone = without_context(enc, span)
    st = GrammarState(VOCAB)
    meta = np.array([st.step(int(t)) for t in alone.ids])
    want = np.stack([alone.track, alone.bar, alone.type, alone.pos, alone.program], axis=1)
    assert np.array_equal(meta, want) and st.done, name
    a, b = parse_tokens(enc.ids, VOCAB), parse_tokens(alone.ids, VOCAB)
    sel = (a.track == 2) & (a.bar >= 3) & (a.bar <= 5)
    assert np.array_equal(b.pitch, a.pitch[sel]) and b.programs == [a.programs[2]]
    assert np.array_equal(b.ts, a.ts)  # the time map (and chords) stay


def test_span_scores_read_the_same_tokens():
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(**TINY)).eval()
    rng = np.random.default_rng(0)
    songs = [first_bars(e, min(8, e.n_bars)) for _, e in SONGS[:6]]
    for song in songs:
        span = eval_span(song, rng)
        assert span is not None and span.last - span.first < 4
        score = span_score(model, song, span, VOCAB)  # raises if the token counts differ
        assert score.notes > 0 and score.bits_with > 0 and score.bits_without > 0
    out = infill_quality(model, songs, VOCAB)
    assert out["spans"] == len(songs) and out["notes"] > 0
    assert np.isfinite(out["bits_per_note_with_context"])


def test_span_piece_and_fill_metric_gap():
    from bench.infill_eval import SPAN_METRICS, fill_metric_gap, span_piece

    _, enc = SONGS[0]
    score = parse_tokens(enc.ids, VOCAB)
    piece = span_piece(score, Span(0, 1, 2), VOCAB)
    sel = (score.track == 0) & (score.bar >= 1) & (score.bar <= 2)
    assert piece.score.n_notes == sel.sum() and piece.score.n_bars == 2
    assert piece.length == int(VOCAB.bar_steps[score.ts[1:3]].sum())
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = MeloFormer(ModelConfig(**TINY)).eval()
    songs = [first_bars(e, min(4, e.n_bars)) for _, e in SONGS[:2]]
    gap = fill_metric_gap(model, songs, VOCAB)
    assert set(gap) == set(SPAN_METRICS)
    for v in gap.values():
        assert v["gap"] == abs(v["filled"] - v["real"]) or np.isnan(v["gap"])
