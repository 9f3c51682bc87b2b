"""Infill training rows (train.infill_rate): 0 is bit-for-bit the plain loader; 1 makes every
song an infill example that fits its planned row, parses, restores to a crop of the song, and
never has a FILL placeholder as a target; a model trains on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import make_dataset

from meloformer.data.crop import crop
from meloformer.data.shards import ShardReader, build_index
from meloformer.hid import Vocab
from meloformer.hid.grammar import GrammarState
from meloformer.hid.infill import random_span, restore
from meloformer.model.batch import IGNORE
from meloformer.model.cells import fill_section
from meloformer.model.config import ModelConfig
from meloformer.model.plan import Planner
from meloformer.model.transformer import MeloFormer
from meloformer.train.config import TrainConfig
from meloformer.train.infill import GROWTH, MAX_SPAN_BARS
from meloformer.train.loader import PlanDataset
from meloformer.train.stream import DataPosition, plan_epoch

VOCAB = Vocab()
TINY = ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1, length_bucket=128)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    return build_index(make_dataset(tmp_path_factory.mktemp("infill-data"), copies=2,
                                    split_every=4))


def _plans(index, pack):
    return plan_epoch(index, DataPosition(), seed=5, batch_size=2, buckets=(256, 512),
                      pack=pack, chunk_songs=8)


def _items(dataset):
    return [dataset[i][0] for i in range(len(dataset))]


def test_rate_zero_is_the_plain_loader(index):
    plans = _plans(index, pack=True)
    plain = _items(PlanDataset(index, plans, 512, seed=5, planner=Planner(TINY)))
    zero = _items(PlanDataset(index, plans, 512, seed=5, planner=Planner(TINY),
                              infill_rate=0.0, vocab=VOCAB))
    for a, b in zip(plain, zero, strict=True):
        for name in ("ids", "track", "bar", "type", "pos", "program", "doc", "targets"):
            assert torch.equal(getattr(a.batch, name), getattr(b.batch, name)), name
        assert torch.equal(a.plan.mask, b.plan.mask)


@pytest.mark.parametrize("pack", [False, True])
def test_rate_one_makes_infill_rows_that_fit(index, pack):
    plans = _plans(index, pack)
    dataset = PlanDataset(index, plans, 512, seed=5, planner=Planner(TINY), infill_rate=1.0,
                          vocab=VOCAB)
    reader = ShardReader(index)
    fill_id = VOCAB.index["FILL"]
    for plan, micro in zip(plans, _items(dataset), strict=True):
        batch = micro.batch
        assert batch.shape[1] == plan.length  # the rows fit the planner's length
        for r, songs in enumerate(plan.rows[: plan.n_real]):
            section = fill_section(batch)[r].bool()
            for d in range(len(songs)):
                doc = batch.doc[r] == d
                assert (section & doc).any(), "every song of the row is an infill example"
                n_holes = int(((batch.ids[r] == fill_id) & doc).sum())
                assert 1 <= n_holes <= MAX_SPAN_BARS
        assert not (batch.targets == fill_id).any(), "placeholders are inputs only"
        assert ((batch.targets != IGNORE) & fill_section(batch).bool()).any()
    # One song through the same path: it parses as an infill song and restores to exactly
    # the song's crop with GROWTH tokens less budget, from the crop's own RNG stream.
    song_id = plans[0].rows[0][0]
    example = dataset._song(plans[0].epoch, song_id)
    state = GrammarState(VOCAB)
    for tok in example.ids:
        state.step(int(tok))
    plain = restore(example, VOCAB)
    full = reader.song(song_id)
    rng = np.random.default_rng([5, plans[0].epoch, song_id])
    window = crop(full, min(len(full), 512) - GROWTH, rng)
    for name in ("ids", "track", "bar", "type", "pos", "program"):
        assert np.array_equal(getattr(plain, name), getattr(window, name)), name


def test_random_span_stays_in_one_track_and_present_bars(index):
    song = ShardReader(index).song(0)
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(200):
        span = random_span(song, rng, MAX_SPAN_BARS)
        assert 0 <= span.track < song.n_tracks and span.last < song.n_bars
        lengths.add(span.last - span.first + 1)
    assert lengths == set(range(1, MAX_SPAN_BARS + 1))


def test_training_spans_are_drawn_like_evaluation_spans(index):
    """Training drew spans uniformly over bars (27 % empty on the dev corpus), evaluation
    around a random note (3 %): both now draw around a note, so few span bars are empty."""
    from meloformer.hid.controls import cell_stats

    reader, rng = ShardReader(index), np.random.default_rng(0)
    empty = total = 0
    for i in range(len(index)):
        song = reader.song(i)
        st = cell_stats(song, VOCAB)
        cells = zip(st.track.tolist(), st.bar.tolist(), strict=True)
        is_empty = dict(zip(cells, st.empty.tolist(), strict=True))
        for _ in range(20):
            span = random_span(song, rng, 1)  # the note's own bar
            empty += is_empty[(span.track + 1, span.first)]
            total += 1
    assert empty == 0 and total > 0


def test_infill_rate_is_checked():
    with pytest.raises(ValueError, match=r"infill_rate: must be in \[0, 1\], got 1.5"):
        TrainConfig(infill_rate=1.5)
    with pytest.raises(ValueError, match="needs the vocabulary"):
        PlanDataset(None, [], 512, seed=0, planner=Planner(TINY), infill_rate=0.5)


def test_a_model_trains_on_infill_rows(index):
    plans = _plans(index, pack=False)
    dataset = PlanDataset(index, plans, 512, seed=5, planner=Planner(TINY), infill_rate=1.0,
                          vocab=VOCAB)
    torch.manual_seed(0)
    model = MeloFormer(TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    micro = dataset[0][0]
    losses = []
    for _ in range(4):
        loss = model.loss(micro.batch, micro.plan)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_params_yaml_checks_infill_rate(tmp_path):
    from conftest import REPO

    from tasks.params import ParamsError, load_params

    text = (REPO / "params.yaml").read_text()
    assert "  infill_rate: 0.0 " in text
    assert load_params(REPO / "params.yaml").train_config().infill_rate == 0.0
    bad = tmp_path / "params.yaml"
    bad.write_text(text.replace("  infill_rate: 0.0 ", "  infill_rate: 1.5 "))
    with pytest.raises(ParamsError, match=r"train.infill_rate: must be in \[0, 1\], got 1.5"):
        load_params(bad).train_config()
