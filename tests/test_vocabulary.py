"""One owner of the vocabulary: meta.json -> training -> checkpoint -> generate/evaluate."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from train_helpers import make_dataset, tiny_model, tiny_train

from meloformer.hid import HIDConfig
from meloformer.train import load_checkpoint, load_trained, train
from meloformer.train.vocabulary import (
    VocabError,
    VocabRecord,
    check_corpus,
    corpus_vocab,
    meta_path,
)

WIDE = HIDConfig(velocity_bins=64)  # a vocabulary other than the default (larger)


def _set_meta(data_dir, record: VocabRecord) -> None:
    meta_path(data_dir).write_text(json.dumps(
        {"vocab": {"hash": record.hash, "size": record.size}, "hid": asdict(record.hid)}))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-step model trained on shards whose meta.json records the WIDE vocabulary."""
    root = tmp_path_factory.mktemp("vocab")
    data = make_dataset(root, copies=1, split_every=2)
    _set_meta(data, VocabRecord.of(WIDE))
    train(tiny_train(max_steps=1), tiny_model(), data, root / "out", device="cpu")
    return data, root / "out" / "checkpoints" / "last.pt"


def test_training_builds_the_model_from_meta_and_stores_it(trained):
    data, ckpt_path = trained
    wide = VocabRecord.of(WIDE)
    assert wide.size != tiny_model().vocab_size  # params' (default) size is not used
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["model_config"]["vocab_size"] == wide.size
    assert VocabRecord.from_dict(ckpt["vocab"], "ckpt") == wide
    model, record = load_trained(ckpt_path)
    assert record == wide and record.vocab().config == WIDE
    assert model.cfg.vocab_size == len(record.vocab())


def test_shards_of_another_vocabulary_are_refused_in_one_line(trained, tmp_path):
    data, ckpt_path = trained
    _, record = load_trained(ckpt_path)
    check_corpus(record, data)  # same vocabulary: accepted
    other = make_dataset(tmp_path, copies=1)  # default vocabulary
    with pytest.raises(VocabError) as err:
        check_corpus(record, other)
    message = str(err.value)
    assert "\n" not in message and record.hash in message
    assert VocabRecord.of(HIDConfig()).hash in message


def test_meta_errors_name_the_file(tmp_path):
    with pytest.raises(VocabError, match="meta.json"):
        corpus_vocab(tmp_path)
    meta_path(tmp_path).write_text(json.dumps(
        {"vocab": {"hash": "0" * 16, "size": 5}, "hid": asdict(HIDConfig())}))
    with pytest.raises(VocabError, match=str(tmp_path)):
        corpus_vocab(tmp_path / "shards")
