"""The train stage adapter and the CLI's config layering (defaults < preset < flags)."""

from __future__ import annotations

import pytest
from train_helpers import make_dataset, tiny_model, tiny_train

from meloformer.train.__main__ import build_parser, model_config, train_config
from meloformer.train.config import PRESETS, TrainConfig
from tasks import train as train_task
from tasks.params import ModelSection, Params, TrainSection


def test_task_trains_and_writes_the_dvc_outs(tmp_path):
    data = make_dataset(tmp_path, copies=1)
    summary = train_task.train.fn(tiny_train(max_steps=2), tiny_model(), data, tmp_path / "out",
                                  device="cpu")
    assert summary.steps == 2
    for out in ("checkpoints/last.pt", "metrics/train.json", "metrics/plots/train_loss.tsv"):
        assert (tmp_path / "out" / out).is_file()


def test_task_configs_a_written_train_key_wins_over_the_preset():
    params = Params(preset="cpu", model_size="small", model=ModelSection(cross_window=3),
                    train=TrainSection(learning_rate=1e-4, max_seq_len=4096))
    cfg, model_cfg = train_task.configs(params)
    assert cfg.max_seq_len == 4096 and cfg.learning_rate == 1e-4  # written: wins
    assert cfg.batch_size == PRESETS["cpu"]["batch_size"]  # left null: the preset's
    assert model_cfg.n_layer == 6 and model_cfg.cross_window == 3
    no_preset, _ = train_task.configs(Params(preset=None, train=TrainSection(batch_size=3)))
    assert no_preset.batch_size == 3 and no_preset.max_seq_len == TrainConfig().max_seq_len


def test_cli_flags_override_the_preset():
    args = build_parser().parse_args(
        ["--data_dir", "d", "--output_dir", "o", "--preset", "h100", "--batch_size", "3",
         "--model_size", "base", "--model", "attention=sdpa", "--no-pack"])
    cfg = train_config(args)
    assert cfg.batch_size == 3 and cfg.max_seq_len == 8192 and cfg.pack is False
    assert model_config(args.model_size, args.model).attention == "sdpa"
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        model_config("small", ["n_layer"])
    with pytest.raises(ValueError, match="unknown fields"):
        model_config("small", ["n_lay=2"])
