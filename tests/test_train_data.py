"""Training data: shard index and reader, bar-window cropping, batch plans, the loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import ALL_FIXTURES, FIXTURES, make_dataset, write_shards

from meloformer.data.crop import crop
from meloformer.data.shards import ShardError, ShardReader, build_index
from meloformer.hid import HIDConfig, Vocab
from meloformer.hid.encode import encode_file
from meloformer.hid.grammar import GrammarState
from meloformer.hid.song import META_FIELDS
from meloformer.hid.vocab import BOS, EOS, Family
from meloformer.model.batch import IGNORE
from meloformer.model.config import ModelConfig
from meloformer.model.plan import Planner, build_plan, resolve_executor
from meloformer.train.loader import PlanDataset, make_loader
from meloformer.train.stream import DataPosition, epoch_order, plan_epoch


@pytest.fixture(scope="module")
def encodings():
    return {name: encode_file(FIXTURES / name) for name in ALL_FIXTURES}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("train-data"), copies=2, split_every=4)


def test_index_reads_only_the_split_and_reader_round_trips(tmp_path, encodings):
    names = list(ALL_FIXTURES)
    write_shards(tmp_path / "shards", names, ["train", "val", "train", "train", "val"], 2)
    index = build_index(tmp_path)
    assert len(index) == 3 and len(index.files) == 3
    reader = ShardReader(index, cache=1)
    for i, name in zip(range(3), ["drywetmidi_sor_7-8.mid", "groove_rock_6-8.mid",
                                  "miditok_multitrack_drums.mid"], strict=True):
        got, want = reader.song(i), encodings[name]
        assert got.n_bars == want.n_bars and got.n_tracks == want.n_tracks
        for field in ("ids", "track", "bar", "type", "pos", "program"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_index_errors_name_the_directory(tmp_path):
    with pytest.raises(ShardError, match=str(tmp_path)):
        build_index(tmp_path)


def _parses(vocab, enc):
    """Every token is legal and carries the metadata the grammar assigns it."""
    state = GrammarState(vocab)
    for i, token in enumerate(enc.ids):
        meta = tuple(int(x) for x in state.step(int(token)))
        assert meta == tuple(int(getattr(enc, f)[i]) for f in META_FIELDS), i


def _check_crop(enc, out, max_len):
    assert len(out.ids) <= max_len
    assert out.ids[0] == BOS
    header = (out.type == Family.TRACK)
    assert header.sum() == (enc.type == Family.TRACK).sum()  # every track opening kept
    assert set(np.unique(out.track)) == set(np.unique(enc.track))  # all tracks kept
    # The instrument tracks hold exactly the original's tokens of a window of whole bars.
    notes = ~header & (out.track > 0) & (out.ids != EOS)
    enotes = (enc.type != Family.TRACK) & (enc.track > 0) & (enc.ids != EOS)
    assert out.bar[notes].min() == 0 and out.bar[notes].max() == out.n_bars - 1
    matches = [b0 for b0 in range(enc.n_bars) if np.array_equal(
        enc.ids[enotes & (enc.bar >= b0) & (enc.bar < b0 + out.n_bars)], out.ids[notes])]
    assert matches, "cropped tracks are not a window of whole bars"
    assert (out.ids[-1] == EOS) == (matches[0] + out.n_bars == enc.n_bars)


@pytest.mark.parametrize("max_len", [256, 1024, 4096])
def test_crop_keeps_a_bar_window_of_every_track(encodings, max_len):
    vocab = Vocab(HIDConfig())
    for seed in range(3):
        for enc in encodings.values():
            out = crop(enc, max_len, np.random.default_rng(seed))
            if len(enc.ids) <= max_len:
                assert out is enc
            else:
                _check_crop(enc, out, max_len)
                _parses(vocab, out)  # the conductor restates TS and tempo in bar 0


def test_crop_is_deterministic_and_windows_vary(encodings):
    enc = encodings["drywetmidi_sor_7-8.mid"]
    a = crop(enc, 512, np.random.default_rng(1))
    b = crop(enc, 512, np.random.default_rng(1))
    np.testing.assert_array_equal(a.ids, b.ids)
    starts = {tuple(crop(enc, 512, np.random.default_rng(s)).ids[:40]) for s in range(8)}
    assert len(starts) > 1


def test_crop_rejects_a_budget_below_the_header(encodings):
    with pytest.raises(ValueError, match="header"):
        crop(encodings["miditok_multitrack_drums.mid"], 10, np.random.default_rng(0))


def test_ranks_get_disjoint_equal_shares(data_dir):
    index = build_index(data_dir)
    parts = [epoch_order(index, 3, 0, r, 3) for r in range(3)]
    assert len({len(p) for p in parts}) == 1
    flat = np.concatenate(parts)
    assert len(set(flat.tolist())) == len(flat) == len(index) // 3 * 3
    assert not np.array_equal(epoch_order(index, 3, 0), epoch_order(index, 3, 1))


@pytest.mark.parametrize("pack", [False, True])
def test_plan_covers_each_song_once_with_static_shapes(data_dir, pack):
    index = build_index(data_dir)
    buckets = (512, 1024)
    plans = plan_epoch(index, DataPosition(), seed=1, batch_size=2, buckets=buckets,
                       pack=pack, chunk_songs=3)
    songs = [s for p in plans for s in p.songs]
    assert sorted(songs) == list(range(len(index)))
    assert all(len(p.rows) == 2 and p.length in buckets for p in plans)
    capped = lambda s: min(int(index.n_tokens[s]), buckets[-1])
    assert all(sum(capped(s) for s in row) <= p.length for p in plans for row in p.rows)
    assert all(len(row) == 1 for p in plans for row in p.rows) or pack


def test_replan_after_batch_size_change_loses_and_repeats_nothing(data_dir):
    index = build_index(data_dir)
    kw = dict(seed=5, buckets=(512, 1024), pack=False, chunk_songs=4)
    first = plan_epoch(index, DataPosition(), batch_size=1, **kw)
    pos = DataPosition()
    for p in first[:3]:
        pos = pos.advance(p)
    rest = plan_epoch(index, pos, batch_size=2, **kw)
    songs = [s for p in first[:3] for s in p.songs] + [s for p in rest for s in p.songs]
    assert sorted(songs) == list(range(len(index)))


def _batches(dataset, workers):
    return [m for m, _ in make_loader(dataset, 1, workers)]


TINY = ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1, length_bucket=128)


def test_loader_output_is_independent_of_workers(data_dir):
    index = build_index(data_dir)
    plans = plan_epoch(index, DataPosition(), seed=2, batch_size=2, buckets=(256, 512),
                       pack=True, chunk_songs=8)
    dataset = PlanDataset(index, plans, 512, seed=2, planner=Planner(TINY))
    a, b = _batches(dataset, 0), _batches(dataset, 2)
    assert len(a) == len(plans) - 1
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.batch.ids, y.batch.ids)
        assert torch.equal(x.batch.targets, y.batch.targets)
        assert torch.equal(x.plan.mask, y.plan.mask)
    for plan, micro in zip(plans[1:], a, strict=True):
        batch = micro.batch
        assert batch.shape == (2, 512)
        assert (batch.targets[plan.n_real :] == IGNORE).all()
        assert batch.doc.max() == max(len(r) for r in plan.rows) - 1
        assert micro.plan.n_targets == int((batch.targets != IGNORE).sum())


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_loader_plans_equal_the_models_own(data_dir, device):
    """The worker-built MaskPlan is the plan the model would build itself: same layout and
    mask (sdpa for a CPU model; flex, bucketed, for a CUDA one, built here on the CPU)."""
    index = build_index(data_dir)
    plans = plan_epoch(index, DataPosition(), seed=3, batch_size=2, buckets=(256, 512),
                       pack=True, chunk_songs=8)
    micro, _ = PlanDataset(index, plans, 512, seed=3, planner=Planner(TINY, device))[0]
    want = build_plan(micro.batch, TINY, resolve_executor("auto", device), device)
    got = micro.plan
    assert got.executor == ("flex" if device == "cuda" else "sdpa")
    assert torch.equal(got.layout.clock, want.layout.clock)
    if device == "cuda":
        assert got.length % TINY.length_bucket == 0 and got.block_size == (128, 128)
        for name, value in want.blocks.items():
            assert torch.equal(got.blocks[name], value), name
    else:
        assert torch.equal(got.mask, want.mask)


def test_crop_of_a_bar_longer_than_the_budget_keeps_every_track(encodings):
    enc = encodings["miditok_multitrack_drums.mid"]
    out = crop(enc, 25, np.random.default_rng(0))  # every bar of this song has >= 13 tokens
    assert len(out.ids) <= 25 and out.n_bars == 1
    bar_tokens = out.track[out.type == Family.BAR]
    assert set(bar_tokens.tolist()) == set(range(1, enc.n_tracks + 1))  # each track's bar


@pytest.mark.parametrize("max_len", [20, 27, 34, 60, 90])
def test_a_trimmed_bar_ends_on_whole_notes_and_parses(encodings, max_len):
    """When no single bar fits, each track's bar is cut at a note boundary: the cut used to
    fall inside a note (`... VEL_24 FILL_END` in infill examples, a PITCH without its VEL)."""
    vocab = Vocab(HIDConfig())
    for name in ("groove_rock_6-8.mid", "miditok_multitrack_drums.mid",
                 "freedoom_E1M8_3-4.mid"):
        try:
            out = crop(encodings[name], max_len, np.random.default_rng(1))
        except ValueError as e:  # not even one opener per track fits
            assert "cannot open the bar" in str(e) or "no room" in str(e)
            continue
        if out.n_bars != 1:
            continue
        state = GrammarState(vocab)
        for t in out.ids:  # raises on a token the grammar does not allow there
            assert state.allowed()[int(t)], (name, int(t))
            state.step(int(t))
        for t in np.unique(out.track[out.track > 0]):
            last = out.type[out.track == t][-1]
            drums = (out.ids[out.track == t][0] == vocab.index["DRUMS"])
            assert last not in (Family.POSITION, Family.VELOCITY), (name, t)
            assert drums or last != Family.PITCH, (name, t)  # a melodic PITCH needs its DUR
