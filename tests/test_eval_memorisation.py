"""The memorisation share (generated 4-bar spans found verbatim in the train split) and the
continuation instrumentation metric, on songs built to have known answers."""

from __future__ import annotations

import numpy as np
from train_helpers import ALL_FIXTURES, FIXTURES, make_dataset

from meloformer.evaluate.continuation import continuation_metrics, silent_track_share
from meloformer.evaluate.memorisation import (
    encoding_notes,
    memorised_share,
    score_notes,
    span_keys,
    train_span_keys,
)
from meloformer.hid import Vocab
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file

VOCAB = Vocab()


def test_span_keys_agree_between_encodings_and_scores():
    enc = encode_file(FIXTURES / "pop909_004.mid")
    score = parse_tokens(enc.ids, VOCAB)
    a = span_keys(encoding_notes(enc, VOCAB), score.n_bars)
    b = span_keys(score_notes(score), score.n_bars)
    assert a == b and len(a) > 0


def test_a_copied_song_is_memorised_and_a_shifted_one_is_not(tmp_path):
    data = make_dataset(tmp_path, copies=1)
    keys = train_span_keys(data, VOCAB)
    train_song = parse_tokens(encode_file(FIXTURES / ALL_FIXTURES[4]).ids, VOCAB)
    assert memorised_share([train_song], keys)["share"] == 1.0
    moved = parse_tokens(encode_file(FIXTURES / ALL_FIXTURES[4]).ids, VOCAB)
    moved.pitch = moved.pitch + 1  # every note a semitone up: no span is in the data
    got = memorised_share([moved], keys)
    assert got["share"] < 0.01 and got["spans"] > 100  # a chance match or two at most


def test_a_continuation_is_judged_on_the_bars_the_model_wrote(tmp_path):
    data = make_dataset(tmp_path, copies=1)
    keys = train_span_keys(data, VOCAB)
    song = parse_tokens(encode_file(FIXTURES / ALL_FIXTURES[4]).ids, VOCAB)
    later = song.bar >= 4
    song.pitch = np.where(later, song.pitch + 1, song.pitch)  # a train prompt, new bars after
    with_prompt = memorised_share([song], keys)
    assert with_prompt["share"] > 0  # the prompt's own span (bars 0-3) is in the data
    got = memorised_share([song], keys, prompts=[4])
    assert got["share"] < 0.01 and got["spans"] < with_prompt["spans"]
    assert got["spans"] == sum(first >= 4 for _, first in span_keys(score_notes(song),
                                                                      song.n_bars))


def test_silent_track_share():
    score = parse_tokens(encode_file(FIXTURES / "miditok_multitrack_drums.mid").ids, VOCAB)
    n = score.n_bars
    keep = ~((score.track == 0) & (score.bar < 2))  # track 0 silent in the 2 prompt bars
    for name in ("track", "bar", "pos", "pitch", "dur", "vel"):
        setattr(score, name, getattr(score, name)[keep])
    silent = [t for t in range(len(score.programs)) if not (score.bar[score.track == t] < 2).any()]
    assert 0 in silent
    want = np.mean([len(np.unique(score.bar[(score.track == t) & (score.bar >= 2)])) / (n - 2)
                    for t in silent])
    assert silent_track_share(score, prompt_bars=2, tail=2) == want
    got = continuation_metrics([score, score], [2, None])
    assert got["continuations"] == 1 and got["with_silent_tracks"] == 1
    assert got["silent_track_share"] == want
