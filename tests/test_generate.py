"""Grammar-constrained sampling and the modes, with a random-init tiny model: every sample
decodes (the grammar, mido, symusic), conditions hold, given tracks stay identical."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest
import symusic
import torch

from meloformer.generate import (
    ConditionError,
    Conditions,
    GenerationError,
    Request,
    SamplingConfig,
    add_track,
    continuation,
    from_scratch,
    generate,
)
from meloformer.generate.generate import Cached
from meloformer.generate.script import first_bars
from meloformer.hid import HIDConfig
from meloformer.hid.decode import decode, parse_tokens
from meloformer.hid.encode import encode_bytes, encode_file, encode_midifile, vocab_for
from meloformer.hid.vocab import EOS, Family
from meloformer.model import MeloFormer, ModelConfig

VOCAB = vocab_for(HIDConfig())
TINY = dict(n_layer=2, n_embd=64, n_head=4, n_kv_head=2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> MeloFormer:
    torch.manual_seed(0)
    return MeloFormer(ModelConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def given_midi(tmp_path_factory) -> mido.MidiFile:
    """A real 3-track song cut to 12 bars, as a MIDI file (the 'given tracks')."""
    from conftest import FIXTURES

    song = first_bars(encode_file(FIXTURES / "pop909_004.mid"), 12)
    return decode(song.ids, VOCAB)


def check_decodes(song) -> None:
    """Grammar, mido (write + read back) and symusic agree on the sample's notes."""
    score = parse_tokens(song.ids, VOCAB)
    buf = io.BytesIO()
    decode(song.ids, VOCAB).save(file=buf)
    back = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    ons = sum(1 for t in back.tracks for m in t if m.type == "note_on" and m.velocity > 0)
    other = symusic.Score.from_midi(buf.getvalue())
    assert ons == score.n_notes == sum(len(t.notes) for t in other.tracks)
    assert len(encode_bytes(buf.getvalue()).ids) > 0  # and our own reader takes it back


def test_samples_from_scratch_decode_and_keep_conditions(model):
    cond = Conditions(n_bars=3, time_signature="3/4", tempo=100.0, chords=("Cmaj", "Gmaj"),
                      max_tokens=400)
    req = Request(from_scratch(VOCAB, [0, 128, 33]), cond, SamplingConfig(seed=1), n_samples=3)
    songs = generate(model, VOCAB, req)
    assert len(songs) == 3 and len({tuple(s.ids) for s in songs}) == 3
    for song in songs:
        check_decodes(song)
        score = parse_tokens(song.ids, VOCAB)
        assert score.n_bars == 3 and score.programs == [128, 33, 0]  # canonical order
        assert {VOCAB.time_sigs[t] for t in score.ts} == {(3, 4)}
        assert [VOCAB.tempos[k] for *_, k in score.tempos] == pytest.approx([100], rel=0.03)
        chords = [VOCAB.chord_names[c] for c in score.chords]
        assert chords == ["CHORD_Cmaj", "CHORD_Gmaj", "CHORD_Cmaj"]  # repeated to the end
        assert len(song.ids) <= 400


def test_free_samples_under_a_tight_budget_close_in_time(model):
    req = Request(from_scratch(VOCAB), Conditions(max_tokens=120),
                  SamplingConfig(temperature=1.5, seed=3), n_samples=4)
    for song in generate(model, VOCAB, req):
        assert len(song.ids) <= 120 and song.ids[-1] == EOS
        check_decodes(song)


def test_cached_and_full_forward_sample_the_same_songs(model):
    req = Request(from_scratch(VOCAB, [128, 0]), Conditions(n_bars=2, max_tokens=160),
                  SamplingConfig(top_k=20, top_p=0.9, seed=7), n_samples=2)
    fast, slow = generate(model, VOCAB, req), generate(model, VOCAB, req, cached=False)
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a.ids, b.ids)
        assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("track", "bar", "pos"))


def test_add_track_keeps_the_given_tracks_identical(model, given_midi):
    given = encode_midifile(given_midi)
    req = Request(add_track(VOCAB, given, 33), Conditions(max_tokens=len(given.ids) + 200),
                  SamplingConfig(seed=2), n_samples=2)
    for song in generate(model, VOCAB, req):
        check_decodes(song)
        out = encode_midifile(decode(song.ids, VOCAB))
        # The bass (33) sorts first: every given track is the same token span, one later.
        assert parse_tokens(out.ids, VOCAB).programs[1:] == parse_tokens(given.ids,
                                                                          VOCAB).programs
        for t in range(1, given.n_tracks + 1):
            assert np.array_equal(_track_ids(out, t + 1), _track_ids(given, t))
        # The conductor keeps its meter and tempi (chord labels are re-detected with the bass).
        assert np.array_equal(_conductor(out), _conductor(given))


def test_given_tracks_after_the_new_one_are_read_in_one_step(model, given_midi, monkeypatch):
    """Add-track writes the bass first, then the 3 given tracks are forced: they are read as
    one multi-token step (as a prompt), not one model step per token, and the songs equal
    the full-forward oracle's, which reads them the same way."""
    given = encode_midifile(given_midi)
    req = Request(add_track(VOCAB, given, 33), Conditions(max_tokens=len(given.ids) + 200),
                  SamplingConfig(seed=4), n_samples=2)
    steps = []
    one_token = Cached.decode_one_token
    monkeypatch.setattr(Cached, "decode_one_token",
                        lambda self, t, m: steps.append(t.shape[1]) or one_token(self, t, m))
    fast = generate(model, VOCAB, req)
    slow = generate(model, VOCAB, req, cached=False)
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a.ids, b.ids)
    written = max(len(s.ids) for s in fast) - len(given.ids)  # the bass, and one row's wait
    given_after = int((given.track >= 1).sum())  # the given tracks: all after the bass
    assert given_after > 100 and len(steps) <= written + 2
    assert len(steps) < given_after


def test_continuation_keeps_the_prompt_bars(model, given_midi):
    given = encode_midifile(given_midi)
    req = Request(continuation(given, prompt_bars=4),
                  Conditions(n_bars=6, max_tokens=len(given.ids) + 300), SamplingConfig(seed=4))
    (song,) = generate(model, VOCAB, req)
    check_decodes(song)
    assert song.n_bars == 6 and song.n_tracks == given.n_tracks
    for t in range(given.n_tracks + 1):
        kept = _track_ids(song, t, bars=4)
        assert np.array_equal(kept, _track_ids(given, t, bars=4))


def test_bad_requests_are_clear_errors(model):
    with pytest.raises(ConditionError, match="time_signature"):
        generate(model, VOCAB, Request(from_scratch(VOCAB), Conditions(time_signature="5/0")))
    with pytest.raises(GenerationError, match="max_tokens"):
        generate(model, VOCAB, Request(from_scratch(VOCAB, [0, 1, 2]),
                                       Conditions(n_bars=30, max_tokens=40)))
    broken = (VOCAB.index["BAR"],)  # a prompt that does not start with BOS
    with pytest.raises(GenerationError, match="breaks the grammar"):
        generate(model, VOCAB, Request((type(from_scratch(VOCAB)[0])(broken),)))


def _track_ids(song, track: int, bars: int | None = None) -> np.ndarray:
    """Token ids of one track (0: BOS and the conductor), EOS excluded, optionally the first
    `bars` bars only."""
    sel = (song.track == track) & (song.ids != EOS)
    if bars is not None:
        sel &= song.bar < bars
    return song.ids[sel]


def _conductor(song) -> np.ndarray:
    return song.ids[(song.track == 0) & (song.type != Family.CHORD)]
