"""Phased training of MeloFormer on the preprocessed shards (see loop.train), and the
checkpoint it writes: what other stages read of training is exported here (load_trained, the
vocabulary check), so they import no module of this package directly."""

from meloformer.train.checkpoint import (
    LAST,
    SKILLS,
    CheckpointError,
    load_checkpoint,
    load_learned,
    load_model,
    load_profile,
    load_trained,
    model_config_from,
)
from meloformer.train.config import PRESETS, TrainConfig, resolve
from meloformer.train.loader import MicroBatch
from meloformer.train.loop import TooManyBadSteps, train
from meloformer.train.optim import build_optimizer, lr_at
from meloformer.train.step import LossModule, train_step
from meloformer.train.vocabulary import VocabError, VocabRecord, check_corpus

__all__ = [
    "LAST",
    "PRESETS",
    "SKILLS",
    "CheckpointError",
    "LossModule",
    "MicroBatch",
    "TooManyBadSteps",
    "TrainConfig",
    "VocabError",
    "VocabRecord",
    "build_optimizer",
    "check_corpus",
    "load_checkpoint",
    "load_learned",
    "load_model",
    "load_profile",
    "load_trained",
    "lr_at",
    "model_config_from",
    "resolve",
    "train",
    "train_step",
]
