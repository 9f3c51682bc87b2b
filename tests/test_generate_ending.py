"""The end of a generated song: no burst of notes in the last bar, no note past the end.

A fixed logit source stands in for a model that has learned where bars end but not which bar
is the last (what a small, briefly trained model does): it puts much of its mass on BAR after
a few notes. Before the fix, the masks took that mass away in each track's last bar (BAR is
illegal there and the script keeps a single opener), leaving only notes: the row wrote notes
up to the bar's last position, then ever higher pitches there, until the budget closed it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meloformer.evaluate.metrics import Piece, held_past_end, last_bar_ratio
from meloformer.generate.conditions import Conditions, resolve
from meloformer.generate.constrain import Controller
from meloformer.generate.generate import _loop
from meloformer.generate.sampling import SamplingConfig, pool_closing
from meloformer.generate.script import from_scratch, prompt_tokens
from meloformer.hid import HIDConfig
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import vocab_for
from meloformer.hid.vocab import EOS, Family

VOCAB = vocab_for(HIDConfig())
F = Family


class BarEndingSource:
    """Context-free logits: a bar holds a few mid-range notes, then BAR; long notes."""

    def __init__(self) -> None:
        r, logits = VOCAB.ranges, np.full(len(VOCAB), -4.0, dtype=np.float32)
        logits[VOCAB.index["BAR"]] = 2.0  # "this bar is over"
        logits[r[F.POSITION].start : r[F.POSITION].stop] = -1.0
        logits[VOCAB.base(F.PITCH) + 55 : VOCAB.base(F.PITCH) + 67] = 1.0
        logits[r[F.VELOCITY].start : r[F.VELOCITY].stop] = 0.0
        logits[r[F.DURATION].stop - 8 : r[F.DURATION].stop] = 3.0  # long notes
        logits[r[F.TRACK].start : r[F.TRACK].stop] = 0.0  # some opener, the model's own pick
        logits[EOS] = 0.0
        self.logits = torch.from_numpy(logits)

    def prefill(self, tokens, metas):
        return self.logits.expand(len(tokens), -1).clone()

    def decode_one_token(self, tokens, metas):
        return self.logits.expand(len(tokens), -1).clone()


def sample_songs(instruments, n_bars=8, n=6, seed=0):
    script = from_scratch(VOCAB, instruments)
    rules = resolve(Conditions(n_bars=n_bars, max_tokens=3000), VOCAB)
    rows = [Controller(VOCAB, script, rules) for _ in range(n)]
    songs = _loop(BarEndingSource(), rows, prompt_tokens(script), SamplingConfig(seed=seed),
                  torch.device("cpu"))
    return [Piece.from_score(parse_tokens(s.ids, VOCAB), VOCAB) for s in songs]


@pytest.mark.parametrize("instruments", [[0], [128, 33, 0]])
def test_last_bar_is_no_denser_than_the_others(instruments):
    pieces = sample_songs(instruments)
    ratios = [last_bar_ratio(p) for p in pieces]
    assert max(ratios) <= 1.5, ratios
    # And no climb to the top of the keyboard at the end: this source writes pitches >= 100
    # in every bar now and then (about a quarter of its notes), so the last bar may hold a few
    # too, but no more than its share (the burst put dozens there). Pooled over the pieces.
    last = high_last = other = high_other = 0
    for p in pieces:
        s, melodic = p.score, p.pitched()
        in_last = s.bar == s.n_bars - 1
        last += int((melodic & in_last).sum())
        high_last += int((melodic & in_last & (s.pitch >= 100)).sum())
        other += int((melodic & ~in_last).sum())
        high_other += int((melodic & ~in_last & (s.pitch >= 100)).sum())
    assert high_last <= high_other / max(other, 1) * last + 3, (high_last, last)


def test_no_sampled_note_sounds_past_the_end():
    pieces = sample_songs([0, 33])
    assert all(held_past_end(p) == 0.0 for p in pieces)
    assert all(p.score.dur.max() > 16 for p in pieces)  # long notes still exist mid-song


def test_pool_closing_moves_the_bar_end_mass_onto_the_allowed_closers():
    logits = torch.tensor([[2.0, 0.0, 0.0, 1.0]])  # BAR, scripted opener, other opener, note
    sources = torch.tensor([[True, True, True, False]])
    targets = torch.tensor([[False, True, False, False]])
    probs = pool_closing(logits, sources, targets).masked_fill(
        torch.tensor([[True, False, True, False]]), float("-inf")).softmax(-1)
    full = logits.softmax(-1)
    assert probs[0, 1].item() == pytest.approx(full[0, :3].sum().item(), rel=1e-6)
    assert probs[0, 3].item() == pytest.approx(full[0, 3].item(), rel=1e-6)
    none = torch.zeros_like(targets)
    assert torch.equal(pool_closing(logits, sources, none), logits)
