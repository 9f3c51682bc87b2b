"""KV-cache decoding == the full forward pass (fp32), over real songs crossing bars and tracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meloformer.generate import cache as cache_module
from meloformer.generate.cache import DecodeCache
from meloformer.generate.generate import Cached
from meloformer.generate.rows import CacheFull, CellTracker, build_rows
from meloformer.generate.script import first_bars
from meloformer.generate.step import extend
from meloformer.hid.encode import encode_file
from meloformer.model import Batch, MeloFormer, ModelConfig
from meloformer.model.layout import SUMMARY

TINY = dict(n_layer=2, n_embd=64, n_head=4, n_kv_head=2)


def fixture_song(name: str, bars: int):
    from conftest import FIXTURES

    return first_bars(encode_file(FIXTURES / f"{name}.mid"), bars)


def metas(song) -> np.ndarray:
    return np.stack([song.track, song.bar, song.type, song.pos, song.program], -1)


def cached_logits(model, songs, prefill: int, static: bool = False) -> torch.Tensor:
    """Prefill `prefill` tokens, then decode the rest one token at a time: (B, L, V).
    static: decode steps with one summary row each and every slot attended (the compiled
    step's shapes)."""
    ids = np.stack([s.ids for s in songs]).astype(np.int64)
    meta = np.stack([metas(s) for s in songs]).astype(np.int64)
    L = ids.shape[1]
    cache = DecodeCache(model.cfg, len(songs), L, L // 2 + 1)
    trackers = [CellTracker() for _ in songs]
    out = []
    for lo, hi in [(0, prefill)] + [(i, i + 1) for i in range(prefill, L)]:
        decode = static and lo >= prefill
        rows = build_rows(
            trackers,
            ids[:, lo:hi],
            meta[:, lo:hi],
            lo,
            cache.geometry,
            summaries=not cache.dense,
            summarize_empty=model.cfg.summarize_empty,
            summary_rows=int(decode and not cache.dense),
        )
        out.append(extend(model, cache, rows, full_range=decode))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize(
    "options, static",
    [
        ({}, False),
        ({}, True),
        ({"summary_track_history": True, "type_rule": True}, False),
        ({"summarize_empty": True, "fine_offsets": (1, 2), "cross_window": 0}, False),
        ({"conductor_full": False}, False),
        ({"attention": "dense"}, False),
    ],
    ids=["default", "static-shapes", "history+type", "empty+narrow", "conductor-window", "dense"],
)
@pytest.mark.parametrize("gather", [False, True], ids=["range", "gathered"])
def test_cached_decoding_matches_full_forward(options, static, gather, monkeypatch):
    # Two real multitrack songs cut to one length: 9 and 6 tracks, several bars each, so
    # cells close at bar lines and at track openers, in different steps in the two rows.
    # gathered: every eager step attends over the slots its rows see (DecodeCache.gathered),
    # in groups of 16 rows; range: over every slot in use.
    monkeypatch.setattr(cache_module, "GATHER_SHARE", 1.0 if gather else 0.0)
    monkeypatch.setattr(cache_module, "GATHER_ROWS", 16)
    songs = [fixture_song("miditok_multitrack_drums", 5), fixture_song("freedoom_E1M8_3-4", 9)]
    L = min(len(s.ids) for s in songs)
    songs = [_crop(s, L) for s in songs]
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(**TINY, **options)).eval()
    with torch.no_grad():
        full = model(Batch.from_encodings([[s] for s in songs]))
    cached = cached_logits(model, songs, prefill=L // 3, static=static)
    assert cached.shape == full.shape
    torch.testing.assert_close(cached, full, atol=2e-5, rtol=1e-4)


def test_chunked_prefill_matches_full_forward():
    """A long prompt prefilled in chunks (summaries closing inside and across chunks)."""
    song = fixture_song("freedoom_E1M8_3-4", 9)
    model = MeloFormer(ModelConfig(**TINY)).eval()
    ids = song.ids[None].astype(np.int64)
    meta = metas(song)[None].astype(np.int64)
    L = len(song.ids)
    with torch.no_grad():
        full = model(Batch.from_encodings([[song]]))[:, -1]
    source = Cached(model, 1, L, L // 2 + 1, prefill_chunk=7)
    torch.testing.assert_close(source.prefill(ids, meta), full, atol=2e-5, rtol=1e-4)


def test_each_closed_cell_gets_one_summary_slot():
    """Prefill a song: every closed cell of >= 2 tokens has exactly one summary slot, whose
    clock is right after its last token; the still-open last cell has none yet."""
    song = fixture_song("miditok_multitrack_drums", 3)
    model = MeloFormer(ModelConfig(**TINY)).eval()
    L = len(song.ids)
    cache = DecodeCache(model.cfg, 1, L, L)
    trackers = [CellTracker()]
    ids, meta = song.ids[None].astype(np.int64), metas(song)[None].astype(np.int64)
    extend(model, cache, build_rows(trackers, ids, meta, 0, cache.geometry))
    body = (song.type != 0) & (song.type != 1)  # not BOS/EOS, not a track opener
    cells: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(body):
        cells.setdefault((int(song.track[i]), int(song.bar[i])), []).append(int(i))
    closed = [pos for pos in cells.values() if len(pos) >= 2 and pos[-1] < L - 2]
    slots = (cache.tables.kind[0] == SUMMARY).nonzero().flatten()
    assert trackers[0].n_summaries == len(slots) == len(closed)
    assert sorted(cache.tables.clock[0, slots].tolist()) == sorted(2 * p[-1] + 1 for p in closed)


def test_cache_overflow_is_a_clear_error():
    song = fixture_song("miditok_multitrack_drums", 3)
    ids, meta = song.ids[None].astype(np.int64), metas(song)[None].astype(np.int64)
    with pytest.raises(CacheFull, match="max_tokens"):
        build_rows([CellTracker()], ids, meta, 0, (len(song.ids) - 1, len(song.ids)))
    with pytest.raises(CacheFull, match="summaries"):
        build_rows([CellTracker()], ids, meta, 0, (len(song.ids), 2))


def _crop(song, n: int):
    from meloformer.hid.song import Encoding

    arrays = {k: getattr(song, k)[:n] for k in ("ids", "track", "bar", "type", "pos", "program")}
    return Encoding(**arrays, n_bars=song.n_bars, n_tracks=song.n_tracks, n_notes=song.n_notes)


def test_cache_buffers_are_static_addresses():
    """The compiled decode step mutates the cache in place: CUDA graph trees keep (replay)
    such a graph only when every mutated input is a static address."""
    cache = DecodeCache(ModelConfig(**TINY), 2, 16, 9)
    buffers = list(cache.buffers())
    assert len(buffers) == 2 + 8  # k, v and the eight slot tables (fill included)
    assert all(getattr(b, "_dynamo_static_input_type", None) for b in buffers)
    assert all(getattr(cache.tables, name) is getattr(cache, f"table_{name}")
               for name in ("kind", "clock", "cell"))


@pytest.mark.parametrize(
    "options",
    [{}, {"summary_track_history": True, "type_rule": True}, {"conductor_full": False},
     {"summarize_empty": True, "fine_offsets": (1, 2), "cross_window": 0}],
    ids=["default", "history+type", "conductor-window", "empty+narrow"],
)
def test_mask_by_features_equals_the_mask_mod(options):
    """The prefill mask built per distinct (query, key) features == the rules evaluated on
    every (row, slot) pair (the oracle), for every slot in use as a query, two real songs."""
    songs = [fixture_song("miditok_multitrack_drums", 5), fixture_song("freedoom_E1M8_3-4", 9)]
    L = min(len(s.ids) for s in songs)
    songs = [_crop(s, L) for s in songs]
    model = MeloFormer(ModelConfig(**TINY, **options)).eval()
    source = Cached(model, 2, L, L // 2 + 1)
    source.prefill(np.stack([s.ids for s in songs]).astype(np.int64),
                   np.stack([metas(s) for s in songs]).astype(np.int64))
    cache = source.cache
    lo, hi = cache.advance(0, 0)
    slot = torch.arange(lo, hi).expand(2, -1)  # every summary and token slot as a query
    b = torch.arange(2)[:, None, None]
    oracle = cache.mask_mod(b, torch.zeros((), dtype=torch.long), slot[:, :, None],
                            torch.arange(lo, hi)[None, None, :])
    fast = cache.mask_by_features(slot, lo, hi)
    assert oracle.shape == fast.shape == (2, hi - lo, hi - lo)
    assert oracle.any() and not oracle.all()
    assert torch.equal(fast, oracle)
