"""The incremental layout (CellTracker, what generation feeds the cache) == the batch layout
(find_cells + build_layout, what training runs), token for token and summary for summary; and
one Block.forward with a KVCache == the same block without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generate_cache import TINY, fixture_song, metas
from test_layout import synthetic_song

from meloformer.model import Batch, MeloFormer, ModelConfig
from meloformer.model.cache import KVCache
from meloformer.model.cells import find_cells
from meloformer.model.layout import CellTracker, build_layout

FIELDS = ("kind", "track", "bar", "cell", "clock", "family", "fill")


def tracked(song, summarize_empty: bool) -> tuple[list[dict], list[dict]]:
    """Feed a song to a CellTracker token by token (closing the last cell at the end): its
    regular entries and its summary entries."""
    tracker, regular, summaries = CellTracker(), [], []
    meta = metas(song)
    for i, tok in enumerate(song.ids.tolist()):
        if tracker.closes(tok, meta[i]):
            summaries.append(tracker.close(i - 1, summarize_empty))
        regular.append(tracker.regular(i, tok, meta[i]))
    if tracker.open:
        summaries.append(tracker.close(len(song.ids) - 1, summarize_empty))
    return regular, [s for s in summaries if s is not None]


@pytest.mark.parametrize("summarize_empty", [False, True])
@pytest.mark.parametrize("which", ["real", "synthetic", "infill"])
def test_cell_tracker_matches_build_layout(which, summarize_empty):
    song = (fixture_song("miditok_multitrack_drums", 4) if which == "real"
            else synthetic_song(3, n_tracks=4, n_bars=5, p_empty=0.5))
    if which == "infill":  # fills: cells apart from their placeholders (docs/model.md)
        from meloformer.hid.infill import Span, infill_layout
        from meloformer.hid.vocab import Vocab

        song = infill_layout(song, [Span(1, 1, 2), Span(3, 4, 4)], Vocab())
    batch = Batch.from_encodings([[song]])
    lay = build_layout(batch, find_cells(batch, summarize_empty=summarize_empty))
    T = len(song.ids)
    regular, summaries = tracked(song, summarize_empty)
    for name in FIELDS:
        assert [r[name] for r in regular] == getattr(lay, name)[0, :T].tolist(), name
    coords = [[r["c_bar"], r["c_pos"], r["c_idx"]] for r in regular]
    assert coords == lay.coords[0, :T].tolist()
    valid = lay.summary_valid[0]  # the summary slots of the layout, padding dropped
    columns = [getattr(lay, name)[0, T:][valid] for name in FIELDS]
    columns += [*lay.coords[0, T:][valid].unbind(-1), lay.summary_program[0][valid]]
    expected = sorted(zip(*(c.tolist() for c in columns), strict=True))
    got = sorted((*(s[name] for name in FIELDS), s["c_bar"], s["c_pos"], s["c_idx"],
                  s["program"]) for s in summaries)
    assert len(got) > 3 and got == expected


def test_block_with_a_cache_equals_the_block_without():
    """Rows written to a KVCache and attended over it (a decode plan: their slots, the slot
    range, the mask) give the outputs of the plain block over the same rows and mask."""
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    model = MeloFormer(cfg).eval()
    B, Q, C = 2, 5, cfg.n_embd
    x = torch.randn(B, Q, C)
    coords = torch.randint(0, 8, (B, Q, 3))
    mask = torch.ones(Q, Q, dtype=torch.bool).tril().expand(B, 1, Q, Q)
    plan_full = model.decode_plan(_rows(coords, torch.zeros(B, Q, dtype=torch.long)), mask,
                                  (0, Q))
    ref = model.blocks[0](x, plan_full)
    cache = KVCache(cfg, B, n_slots=3 + Q)
    slot = torch.arange(3, 3 + Q).expand(B, Q)  # slots 3..3+Q; the range read is [3, 3+Q)
    plan = model.decode_plan(_rows(coords, slot), mask, (3, 3 + Q))
    out = model.blocks[0](x, plan, cache.layer(0))
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    assert cache.k[0, :, :, 3:].abs().sum() > 0 and cache.k[0, :, :, :3].abs().sum() == 0
    assert cache.k[1].abs().sum() == 0  # only layer 0 was written


def _rows(coords: torch.Tensor, slot: torch.Tensor):
    from meloformer.model.cache import DecodeRows

    zeros = torch.zeros_like(slot)
    return DecodeRows(ids=zeros, program=zeros, track=zeros, summary=zeros.bool(),
                      coords=coords, slot=slot)


def test_tracker_entries_are_plain_ints():
    """Entries are Python ints (build_rows packs them into numpy without a device sync)."""
    song = fixture_song("miditok_multitrack_drums", 2)
    regular, summaries = tracked(song, False)
    assert all(type(v) is int for r in regular + summaries for v in r.values())
    assert np.all(np.diff([r["clock"] for r in regular]) == 2)
