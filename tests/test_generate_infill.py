"""KV-cache decoding of the infill layout == the full forward pass (fp32): the decoder finds
the fill cells and their summaries step by step as find_cells does in a batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generate_cache import TINY, cached_logits, fixture_song

from meloformer.hid.infill import Span, infill_layout
from meloformer.hid.vocab import Vocab
from meloformer.model import Batch, MeloFormer, ModelConfig

VOCAB = Vocab()


@pytest.mark.parametrize(
    "options, static",
    [({}, False), ({}, True), ({"summary_track_history": True, "cross_window": 2}, False)],
    ids=["default", "static-shapes", "history+wide"],
)
def test_cached_infill_decoding_matches_full_forward(options, static):
    # Two real multitrack songs, one span each (several bars; one in the last track), the
    # prompt prefilled up to a few tokens before the fills, the fills decoded token by token.
    songs = [
        infill_layout(fixture_song("miditok_multitrack_drums", 4), [Span(1, 1, 2)], VOCAB),
        infill_layout(fixture_song("freedoom_E1M8_3-4", 5), [Span(0, 0, 0), Span(5, 2, 4)], VOCAB),
    ]
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(**TINY, **options)).eval()
    for song in songs:
        first_fill = int(np.flatnonzero(song.ids == VOCAB.index["FILL_START"])[0])
        with torch.no_grad():
            full = model(Batch.from_encodings([[song]]))
        cached = cached_logits(model, [song], prefill=first_fill - 5, static=static)
        torch.testing.assert_close(cached, full, atol=2e-5, rtol=1e-4)
