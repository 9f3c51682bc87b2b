"""Fine-tuning (train.init_from): a run starts from a checkpoint's weights with a fresh
optimizer and run key; its first loss is the pretrained model's loss on the first batch, far
below a fresh model's; a checkpoint of another vocabulary is refused in one line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from train_helpers import make_dataset, tiny_model, tiny_train

from meloformer.data.shards import build_index
from meloformer.hid import HIDConfig, Vocab
from meloformer.model import MeloFormer
from meloformer.train import VocabError, VocabRecord, load_trained, train
from meloformer.train.checkpoint import (
    load_checkpoint,
    load_learned,
    model_config_dict,
    save_checkpoint,
)
from meloformer.train.dist import DistInfo
from meloformer.train.export import export_model
from meloformer.train.feed import DataFeed
from meloformer.train.start import run_key
from meloformer.train.stream import DataState, phase_at
from meloformer.train.vocabulary import corpus_vocab


def _history(out):
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)["history"]


def first_batch_loss(model, cfg, data) -> float:
    """The model's loss on the first micro-batch the training loop would feed it."""
    vocab = corpus_vocab(data)
    feed = DataFeed(build_index(data), cfg, DistInfo(), torch.device("cpu"), model.cfg,
                    vocab.vocab())
    feed.start(DataState(), phase_at(0, cfg))
    (micro,) = feed.take(1)
    with torch.no_grad():
        return float(model.loss(micro.batch, micro.plan))


def test_fine_tuning_starts_from_the_pretrained_loss(tmp_path):
    data = make_dataset(tmp_path, copies=2)
    pre = tmp_path / "pre"
    train(tiny_train(max_steps=80, epochs=100, precision="fp32", learning_rate=5e-3),
          tiny_model(), data, pre)
    shipped = tmp_path / "shipped.pt"
    export_model(pre / "checkpoints" / "last.pt", shipped, torch.float32)
    assert load_learned(shipped) == {"infill": False, "controls": False}  # rates 0
    # As if it had learned to infill: a fine-tune with infill_rate 0 keeps that skill.
    save_checkpoint(shipped, load_checkpoint(shipped) | {"learned": {"infill": True,
                                                                     "controls": False}})
    cfg = tiny_train(max_steps=2, precision="fp32", init_from=str(shipped), seed=11)
    train(cfg, tiny_model(), data, tmp_path / "ft")
    assert load_learned(tmp_path / "ft" / "checkpoints" / "last.pt") == {"infill": True,
                                                                          "controls": False}
    first = float(_history(tmp_path / "ft")[0, 1])
    model, _ = load_trained(shipped)
    want = first_batch_loss(model.train(), cfg, data)
    assert first == pytest.approx(want, rel=0.02)
    train(replace(cfg, init_from=None), tiny_model(), data, tmp_path / "fresh")
    fresh = float(_history(tmp_path / "fresh")[0, 1])
    assert first < 0.8 * fresh, (first, fresh)
    assert run_key(cfg, tiny_model(), data) != run_key(replace(cfg, init_from=None),
                                                       tiny_model(), data)
    # The shipped file is bf16 by default and loads as fp32 weights.
    small = tmp_path / "small.pt"
    export_model(pre / "checkpoints" / "last.pt", small)
    assert small.stat().st_size < shipped.stat().st_size
    assert next(load_trained(small)[0].parameters()).dtype is torch.float32


def test_a_checkpoint_of_another_vocabulary_is_refused(tmp_path):
    data = make_dataset(tmp_path, copies=1)
    other = VocabRecord.of(HIDConfig(velocity_bins=16))
    model = MeloFormer(tiny_model().replace(vocab_size=len(Vocab(other.hid))))
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"model": model.state_dict(), "step": 0,
                           "model_config": model_config_dict(model.cfg),
                           "vocab": other.to_dict()})
    with pytest.raises(VocabError, match=r"train.init_from .*other.pt: its vocabulary"):
        train(tiny_train(max_steps=1, init_from=str(path)), tiny_model(), data,
              tmp_path / "out")


def test_the_params_stage_refuses_a_missing_init_from(tmp_path):
    """Checked before any stage deletes its outs, relative to params.yaml."""
    import yaml

    from tasks.params import ParamsError, check

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["train"]["init_from"] = "models/pretrained/none.pt"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match="train.init_from: no checkpoint at"):
        check(path)
    params["train"]["init_from"] = None
    path.write_text(yaml.safe_dump(params))
    assert "ok" in check(path)
