"""Phased training of MeloFormer on the preprocessed shards (see loop.train)."""

from meloformer.train.checkpoint import CheckpointError, load_checkpoint, model_config_from
from meloformer.train.config import PRESETS, TrainConfig, preset_config
from meloformer.train.loop import TooManyBadSteps, train

__all__ = [
    "PRESETS", "CheckpointError", "TooManyBadSteps", "TrainConfig", "load_checkpoint",
    "model_config_from", "preset_config", "train",
]
