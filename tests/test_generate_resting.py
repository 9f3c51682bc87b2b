"""Continuations keep the prompt's instrumentation (Free.resting): a track silent through the
prompt's last 4 bars stays silent unless brought in (--bring-in) or given a control."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from meloformer.generate import Conditions, Request, SamplingConfig, generate
from meloformer.generate import script as script_module
from meloformer.generate.script import Free, ModeError, continuation, resting_tracks
from meloformer.hid import HIDConfig, Score
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import vocab_for
from meloformer.hid.tokens import encode_score
from meloformer.hid.vocab import Family
from meloformer.model import MeloFormer, ModelConfig

VOCAB = vocab_for(HIDConfig())
BASS, PIANO = 0, 1  # instrument tracks in canonical order: bass (33) sorts before piano (0)
pytestmark = pytest.mark.usefixtures("one_thread")


def prompt(silent_bars: range = range(4), piano: bool = True):
    """4 bars of 4/4: bass (33) and piano (0, unless `piano` is False: a note in its bar 0
    only); the bass rests in `silent_bars`."""
    notes = [(t, b, p) for b in range(4) for t in (BASS, PIANO) for p in (0, 24)
             if not (t == BASS and b in silent_bars) and (piano or t == BASS or b == 0)]
    track, bar, pos = (np.array(c, dtype=np.int64) for c in zip(*notes, strict=True))
    score = Score(starts=np.arange(4) * 48, ts=np.full(4, VOCAB.ts_index[(4, 4)], np.int32),
                  tempos=[(0, 0, 30)], chords=np.zeros(4, np.int32), programs=[33, 0],
                  track=track, bar=bar, pos=pos, pitch=np.where(track == BASS, 40, 60),
                  dur=np.full(len(track), 12), vel=np.full(len(track), 20))
    return encode_score(score, VOCAB)


def note_loving_model() -> MeloFormer:
    """A tiny model whose every step puts +8 on the onset positions: left alone it plays in
    every bar of every track."""
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2)).eval()
    bias = torch.zeros(len(VOCAB))
    bias[VOCAB.ranges[Family.POSITION].start : VOCAB.ranges[Family.POSITION].stop] = 8.0
    decode = model.decode
    model.decode = lambda *args: decode(*args) + bias
    return model


def bars_played(song, track: int) -> set[int]:
    score = parse_tokens(song.ids, VOCAB)
    return set(score.bar[score.track == track].tolist())


def _continue(script, seed=0, **cond):
    req = Request(script, Conditions(n_bars=8, max_tokens=1500, **cond), SamplingConfig(seed=seed))
    (song,) = generate(note_loving_model(), VOCAB, req)
    return song


def test_the_resting_tracks_are_those_silent_in_the_last_four_bars():
    assert resting_tracks(prompt(), 4) == {BASS}
    assert resting_tracks(prompt(range(1, 4)), 4, tail=3) == {BASS}  # plays in bar 0 only
    assert resting_tracks(prompt(range(1, 4)), 4) == set()
    assert resting_tracks(prompt(range(1, 3)), 4) == set()  # it plays in bar 3
    assert resting_tracks(prompt(range(0)), 4) == set()


def test_a_silent_intro_holds_no_track_back(monkeypatch):
    # Piano only in bar 0, bass silent: the last 4 bars hold the piano's note, so the bass
    # is held back; the last 3 bars are silent in every track, so no track is.
    intro = prompt(piano=False)
    resting = [s.resting for s in continuation(intro, 4) if isinstance(s, Free)]
    assert resting == [False, True, False]  # conductor, bass, piano
    monkeypatch.setattr(script_module, "RESTING_TAIL", 3)
    assert resting_tracks(intro, 4, tail=3) == {BASS, PIANO}
    assert not any(s.resting for s in continuation(intro, 4) if isinstance(s, Free))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_silent_track_stays_silent_and_the_oracle_plays(seed):
    script = continuation(prompt(), 4)
    song = _continue(script, seed)
    assert bars_played(song, BASS) == set()
    assert bars_played(song, PIANO) >= set(range(4, 8))  # the others play on
    # the oracle: the same model and seed, the rule off -> the bass comes in
    off = tuple(dataclasses.replace(s, resting=False) if isinstance(s, Free) else s
                for s in script)
    assert bars_played(_continue(off, seed), BASS) & set(range(4, 8))


def test_asked_tracks_and_controlled_bars_come_in():
    assert bars_played(_continue(continuation(prompt(), 4, bring_in=[BASS])), BASS) \
        & set(range(4, 8))
    controlled = _continue(continuation(prompt(), 4), density=(f"{BASS}:6-6=high",))
    assert bars_played(controlled, BASS) == {6}
    with pytest.raises(ModeError, match="instrument tracks 0..1"):
        continuation(prompt(), 4, bring_in=[2])
