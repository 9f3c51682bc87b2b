"""Sampling (temperature / top-k / top-p under the legal mask) and the token budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meloformer.generate import Conditions, Request, SamplingConfig, add_track, generate
from meloformer.generate.conditions import resolve
from meloformer.generate.constrain import Controller
from meloformer.generate.sampling import logits_to_probs, sample
from meloformer.generate.script import continuation, first_bars, from_scratch
from meloformer.hid import HIDConfig
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file, vocab_for
from meloformer.hid.vocab import EOS
from meloformer.model import MeloFormer, ModelConfig

VOCAB = vocab_for(HIDConfig())


pytestmark = pytest.mark.usefixtures("one_thread")


def draw(logits, allowed, cfg, n=400, seed=0) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    rows = logits.expand(n, -1)
    return sample(rows, allowed.expand(n, -1), cfg, gen).numpy()


def test_sampling_never_draws_an_illegal_token_and_follows_top_k_top_p():
    logits = torch.tensor([[5.0, 4.0, 1.0, 0.9, 0.8, -1.0]])
    allowed = torch.tensor([[False, True, True, True, True, True]])  # the best one is illegal
    free = draw(logits, allowed, SamplingConfig(temperature=1.0))
    assert 0 not in free and {1, 2} <= set(free.tolist())
    assert set(draw(logits, allowed, SamplingConfig(top_k=1)).tolist()) == {1}
    assert set(draw(logits, allowed, SamplingConfig(temperature=0)).tolist()) == {1}
    # Legal probabilities ~ (0.87, 0.04, 0.04, 0.04, 0.01): top_p 0.9 keeps the first two.
    assert set(draw(logits, allowed, SamplingConfig(top_p=0.9)).tolist()) == {1, 2}
    probs = logits_to_probs(logits.masked_fill(~allowed, float("-inf")), SamplingConfig())
    assert probs[0, 0] == 0 and torch.isclose(probs.sum(), torch.tensor(1.0))


def test_same_seed_same_samples_other_seed_other_samples():
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2))
    req = Request(from_scratch(VOCAB, [0]), Conditions(n_bars=2, max_tokens=100),
                  SamplingConfig(seed=11))
    a, b = generate(model, VOCAB, req), generate(model, VOCAB, req)
    other = Request(req.script, req.conditions, SamplingConfig(seed=12))
    c = generate(model, VOCAB, other)
    assert np.array_equal(a[0].ids, b[0].ids) and not np.array_equal(a[0].ids, c[0].ids)


@pytest.mark.parametrize("slack", [3, 40])
def test_add_track_closes_in_time_under_a_tight_budget(slack):
    from conftest import FIXTURES

    given = first_bars(encode_file(FIXTURES / "pop909_004.mid"), 12)
    # The new track needs at least its 12 BARs: a budget of 12 + slack tokens for it.
    cap = len(given.ids) + 1 + given.n_bars + slack
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2))
    req = Request(add_track(VOCAB, given, 0), Conditions(max_tokens=cap),
                  SamplingConfig(temperature=2.0, seed=1), n_samples=3)
    for song in generate(model, VOCAB, req):
        assert len(song.ids) <= cap and song.ids[-1] == EOS
        assert parse_tokens(song.ids, VOCAB).n_bars == given.n_bars


def test_continuation_with_new_tracks_keeps_the_prompt():
    from conftest import FIXTURES

    given = first_bars(encode_file(FIXTURES / "groove_rock_6-8.mid"), 4)
    script = continuation(given, prompt_bars=2, new_tracks=True)
    ctrl = Controller(VOCAB, script, resolve(Conditions(n_bars=4), VOCAB))
    # Replaying the prompt song itself is a legal path through the script.
    for token in given.ids:
        assert ctrl.mask()[token]
        ctrl.step(int(token))
    assert ctrl.done


def test_sealed_runs_do_not_extend_the_prompt_bars():
    from conftest import FIXTURES

    given = first_bars(encode_file(FIXTURES / "groove_rock_6-8.mid"), 4)
    script = continuation(given, prompt_bars=2)
    ctrl = Controller(VOCAB, script, resolve(Conditions(n_bars=4), VOCAB))
    while ctrl.forced() is not None:  # the conductor's two bars
        ctrl.step(ctrl.forced())
    allowed = VOCAB.family_of[ctrl.mask()]
    assert set(allowed.tolist()) <= {2, 5}  # only a new bar (BAR or CHORD): no tempo change
