"""Per-bar controls in training (train.control_rate): meta.json bins from the shards, rows
with the realised controls that still fit their planned length, 0 = the plain loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import make_dataset

from meloformer.data.controls import control_bins, read_control_bins
from meloformer.data.shards import SHARD_DIR, ShardReader, build_index, songs_files
from meloformer.hid import Vocab
from meloformer.hid.controls import EMPTY, realised
from meloformer.hid.grammar import GrammarState
from meloformer.hid.infill import restore
from meloformer.hid.vocab import Family
from meloformer.model.cells import fill_section
from meloformer.model.config import ModelConfig
from meloformer.model.plan import Planner
from meloformer.train.config import TrainConfig
from meloformer.train.loader import PlanDataset
from meloformer.train.stream import DataPosition, plan_epoch

VOCAB = Vocab()
TINY = ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1, length_bucket=128)
CONTROL = (Family.DENSITY, Family.POLYPHONY)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("ctl-data"), copies=2, split_every=4)
    bins = control_bins(songs_files(root / SHARD_DIR), VOCAB)
    meta = root / "meta.json"
    body = json.loads(meta.read_text())
    meta.write_text(json.dumps({**body, "control_bins": bins.to_dict()}))
    return root, build_index(root), bins


def test_bins_come_from_the_train_split_and_round_trip(data):
    root, index, bins = data
    assert read_control_bins(root / "meta.json") == bins
    reader = ShardReader(index)
    got = np.concatenate([realised(reader.song(i), VOCAB, bins)["density"]
                          for i in range(len(index))])
    assert len(set(got.tolist())) >= 4  # the train split's bars spread over the bins
    bare = root.parent / "bare"
    bare.mkdir()
    (bare / "meta.json").write_text("{}")
    assert read_control_bins(bare / "meta.json") is None


@pytest.mark.parametrize("infill_rate", [0.0, 1.0])
def test_rows_hold_the_realised_controls_and_fit(data, infill_rate):
    root, index, bins = data
    plans = plan_epoch(index, DataPosition(), seed=4, batch_size=2, buckets=(256, 512),
                       pack=True, chunk_songs=8)
    ds = PlanDataset(index, plans, 512, seed=4, planner=Planner(TINY), infill_rate=infill_rate,
                     vocab=VOCAB, control_rate=1.0, control_bins=bins)
    for i, plan in enumerate(plans):
        micro = ds[i][0]
        assert micro.batch.shape[1] == plan.length
        is_ctl = np.isin(micro.batch.type.numpy(), CONTROL)
        assert is_ctl[: plan.n_real].any()
        if infill_rate:
            assert fill_section(micro.batch)[: plan.n_real].bool().any()
    # One song: its controls are its bars' realised bins, in the grammar's eyes; bars that
    # play carry them (each kept with BAR_KEEP), empty bars none.
    song = plans[0].rows[0][0]
    example = restore(ds._song(plans[0].epoch, song), VOCAB)
    state = GrammarState(VOCAB)
    for tok in example.ids:
        state.step(int(tok))
    keep = ~np.isin(example.type, CONTROL)
    plain = type(example)(**{f: getattr(example, f)[keep] for f in
                             ("ids", "track", "bar", "type", "pos", "program")},
                          n_bars=example.n_bars, n_tracks=example.n_tracks, n_notes=0)
    real = realised(plain, VOCAB, bins)
    seen = 0
    for t, b, d, p in zip(*(real[k] for k in ("track", "bar", "density", "polyphony")),
                          strict=True):
        got = state.controls.get((int(t), int(b)), {})
        if d == EMPTY:
            assert got == {}
        assert got.get("density", d) == d and got.get("polyphony", p) == p
        seen += len(got)
    assert seen > 0


def test_songs_that_fit_keep_every_bar_and_their_end(data):
    """control_rate > 0 used to crop songs to the length measured before the controls were
    inserted (EOS kept in 6 of 40 fitting songs) and infill examples by 16 tokens: the row
    is now planned with the room the example may take (SongIndex.room)."""
    from meloformer.train.infill import example_room

    _, index, bins = data
    index = index.with_room(example_room(index, 1.0, 1.0))
    max_len = int(index.planned.max())  # every song fits its row
    plans = plan_epoch(index, DataPosition(), seed=4, batch_size=2, buckets=(max_len,),
                       pack=False, chunk_songs=8)
    ds = PlanDataset(index, plans, max_len, seed=4, planner=Planner(TINY), infill_rate=0.5,
                     vocab=VOCAB, control_rate=1.0, control_bins=bins)
    reader, eos = ShardReader(index), VOCAB.index["EOS"]
    ds[0]  # opens the dataset's reader
    for s in range(len(index)):
        example = restore(ds._song(0, s), VOCAB)
        keep = ~np.isin(example.type, CONTROL)
        assert example.ids[-1] == eos, s
        assert np.array_equal(example.ids[keep], reader.song(s).ids), s


def test_control_rate_zero_is_the_plain_loader(data):
    _, index, bins = data
    plans = plan_epoch(index, DataPosition(), seed=4, batch_size=2, buckets=(256, 512),
                       pack=False, chunk_songs=8)
    a = PlanDataset(index, plans, 512, seed=4, planner=Planner(TINY))
    b = PlanDataset(index, plans, 512, seed=4, planner=Planner(TINY), vocab=VOCAB,
                    control_rate=0.0, control_bins=bins)
    for i in range(len(plans)):
        assert torch.equal(a[i][0].batch.ids, b[i][0].batch.ids)
        assert torch.equal(a[i][0].batch.targets, b[i][0].batch.targets)


def test_control_rate_is_checked():
    with pytest.raises(ValueError, match=r"control_rate: must be in \[0, 1\], got -0.1"):
        TrainConfig(control_rate=-0.1)
    with pytest.raises(ValueError, match="needs the control bins"):
        PlanDataset(None, [], 512, seed=0, planner=Planner(TINY), vocab=VOCAB,
                    control_rate=0.5)
