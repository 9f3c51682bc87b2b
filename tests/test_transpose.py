"""Transposition (hid/transpose.py, train.transpose): the token-level shift equals encoding the
shifted score, chord names move with it, drums stay, and the loader draws it per (epoch, song)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from train_helpers import ALL_FIXTURES, FIXTURES, write_shards

from meloformer.data.shards import SHARD_DIR, ShardReader, build_index
from meloformer.hid import DRUM_PROGRAM, Family, Vocab, transpose, transpose_range
from meloformer.hid.encode import score_bytes
from meloformer.hid.tokens import encode_score
from meloformer.model.config import ModelConfig
from meloformer.model.plan import Planner
from meloformer.train.config import TrainConfig
from meloformer.train.loader import PlanDataset
from meloformer.train.stream import DataPosition, plan_epoch

VOCAB = Vocab()
TINY = ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1, length_bucket=128)
ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _shifted_score(score, k):
    """The oracle: every melodic note of the Score moved by k (drums stay)."""
    drums = np.array([score.programs[t] == DRUM_PROGRAM for t in score.track], dtype=bool)
    return replace(score, pitch=np.where(drums, score.pitch, score.pitch + k))


def _root_and_quality(name: str) -> tuple[int, str]:
    body = name.removeprefix("CHORD_")
    root = max((r for r in ROOTS if body.startswith(r)), key=len)
    return ROOTS.index(root), body[len(root):]


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_a_shift_equals_encoding_the_shifted_score(name):
    score = score_bytes((FIXTURES / name).read_bytes())
    enc = encode_score(score, VOCAB)
    lo, hi = transpose_range(enc, VOCAB)
    for k in sorted({lo, -5, -1, 1, 7, hi} & set(range(lo, hi + 1))):
        got = transpose(enc, k, VOCAB)
        want = encode_score(_shifted_score(score, k), VOCAB)
        notes = got.type != Family.CHORD
        assert np.array_equal(got.ids[notes], want.ids[notes]), k
        for field in ("track", "bar", "type", "pos", "program"):
            assert np.array_equal(getattr(got, field), getattr(enc, field))
        assert np.array_equal(transpose(got, -k, VOCAB).ids, enc.ids)  # and back
    with pytest.raises(ValueError, match="would leave 0..127"):
        transpose(enc, hi + 1, VOCAB)


def test_chord_names_move_with_the_song():
    enc = encode_score(score_bytes((FIXTURES / "pop909_004.mid").read_bytes()), VOCAB)
    chords = np.flatnonzero(enc.type == Family.CHORD)
    names = [VOCAB.tokens[i] for i in enc.ids[chords]]
    assert len(set(names) - {"CHORD_N"}) >= 3
    for k in (-3, 5):
        moved = transpose(enc, k, VOCAB)
        for before, after in zip(names, (VOCAB.tokens[i] for i in moved.ids[chords]), strict=True):
            if before == "CHORD_N":
                assert after == "CHORD_N"
                continue
            (r0, q0), (r1, q1) = _root_and_quality(before), _root_and_quality(after)
            assert (r1, q1) == ((r0 + k) % 12, q0), (before, after)


def test_drum_notes_stay():
    enc = encode_score(score_bytes((FIXTURES / "groove_rock_6-8.mid").read_bytes()), VOCAB)
    drums = enc.program == DRUM_PROGRAM
    assert (drums & (enc.type == Family.PITCH)).any()
    assert np.array_equal(transpose(enc, 4, VOCAB).ids[drums], enc.ids[drums])


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("transpose-data")
    write_shards(root / SHARD_DIR, list(ALL_FIXTURES), ["train"] * len(ALL_FIXTURES))
    return build_index(root)


def _rows(index, epoch: int, shift: int) -> list[np.ndarray]:
    plans = plan_epoch(index, DataPosition(epoch=epoch), seed=3, batch_size=1,
                       buckets=(10368,), pack=False, chunk_songs=8)
    ds = PlanDataset(index, plans, 10368, seed=3, planner=Planner(TINY), vocab=VOCAB,
                     transpose=shift)
    return {int(p.rows[0][0]): ds[i][0].batch.ids[0].numpy() for i, p in enumerate(plans)}


def test_the_loader_shifts_each_song_by_its_own_draw(index):
    plain, first, again, later = (_rows(index, e, s) for e, s in ((0, 0), (0, 6), (0, 6), (1, 6)))
    reader = ShardReader(index)
    shifts = set()
    for song, row in plain.items():
        enc = reader.song(song)
        n = len(enc.ids)
        assert np.array_equal(row[:n], enc.ids)  # 0: the plain row
        assert np.array_equal(first[song], again[song])  # the draw is the seed's
        melodic = (enc.type == Family.PITCH) & (enc.program != DRUM_PROGRAM)
        delta = set((first[song][:n][melodic] - enc.ids[melodic]).tolist())
        assert len(delta) <= 1 and all(-6 <= d <= 6 for d in delta)
        assert np.array_equal(first[song][:n][~melodic & (enc.type != Family.CHORD)],
                              enc.ids[~melodic & (enc.type != Family.CHORD)])
        shifts |= delta
    assert len(shifts) >= 2  # songs draw different shifts
    assert any(not np.array_equal(first[s], later[s]) for s in first)  # and anew each epoch


def test_the_setting_is_checked():
    with pytest.raises(ValueError, match="transpose"):
        TrainConfig(transpose=13)
