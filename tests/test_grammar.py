"""The grammar checker: typed errors with index and expected families; allowed() is exact."""

from __future__ import annotations

import numpy as np
import pytest

from meloformer.hid import GrammarError, HIDConfig
from meloformer.hid.decode import decode, parse_tokens
from meloformer.hid.encode import encode_file, vocab_for
from meloformer.hid.grammar import GrammarState

VOCAB = vocab_for(HIDConfig())


@pytest.fixture(scope="module")
def song(fixture_midis):
    return encode_file(next(p for p in fixture_midis if "multitrack" in p.name))


def test_error_names_index_and_expected_family(song):
    ids = song.ids.copy()
    pitch_at = int(np.flatnonzero(song.type == 7)[0])
    ids[pitch_at] = VOCAB.index["BAR"]
    with pytest.raises(GrammarError) as err:
        parse_tokens(ids, VOCAB)
    assert err.value.index == pitch_at
    assert "PITCH" in err.value.expected and err.value.got == "BAR"


def test_unfinished_song_is_an_error(song):
    with pytest.raises(GrammarError, match="before EOS"):
        decode(song.ids[:-1], VOCAB)


def test_out_of_vocabulary_id(song):
    with pytest.raises(GrammarError, match="inside the vocabulary"):
        parse_tokens([1, len(VOCAB) + 5], VOCAB)


def test_position_past_the_bar_is_refused():
    st = GrammarState(VOCAB)
    for name in ("BOS", "CHORD_N", "TS_3/4", "POS_0", "TEMPO_30", "PROGRAM_0", "BAR"):
        st.step(VOCAB.index[name])
    assert st.allowed()[VOCAB.index["POS_35"]] and not st.allowed()[VOCAB.index["POS_36"]]
    with pytest.raises(GrammarError):
        st.step(VOCAB.index["POS_36"])


def test_allowed_accepts_the_real_next_token_everywhere(song):
    st = GrammarState(VOCAB)
    for tok in song.ids:
        assert st.allowed()[tok]
        st.step(tok)
    assert st.done and not st.allowed().any()


def test_random_walk_through_allowed_always_decodes():
    """Sampling only allowed tokens (what constrained generation does) yields decodable songs."""
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(20):
        st, ids = GrammarState(VOCAB), []
        while not st.done and len(ids) < 400:
            choices = np.flatnonzero(st.allowed())
            # lean towards closing tokens so walks finish
            closers = [c for c in choices if c in (2, VOCAB.index["BAR"])] or list(choices)
            tok = int(rng.choice(closers if rng.random() < 0.3 else choices))
            st.step(tok)
            ids.append(tok)
        if st.done:
            decode(ids, VOCAB)  # must not raise
            finished += 1
    assert finished >= 5
