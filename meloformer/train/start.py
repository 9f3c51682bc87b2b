"""How a run starts: its run key, whether an earlier run's checkpoint is continued, and the
weights a fine-tune starts from (train.init_from)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from meloformer.io import json_ready
from meloformer.model import MeloFormer, ModelConfig
from meloformer.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_trained,
    model_config_dict,
)
from meloformer.train.config import TrainConfig
from meloformer.train.vocabulary import VocabError, VocabRecord


def run_key(cfg: TrainConfig, model_cfg: ModelConfig, data_dir: Path) -> str:
    """sha256 of the resolved configs and the bytes of every shard: the same key means the
    same run, so a checkpoint with this key can be continued."""
    h = hashlib.sha256(json.dumps([json_ready(cfg), model_config_dict(model_cfg)],
                                  sort_keys=True).encode())
    root = Path(data_dir) / "shards" if (Path(data_dir) / "shards").is_dir() else Path(data_dir)
    files = [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*.parquet"))]
    if cfg.init_from:  # a fine-tune of other weights is another run
        files.append(("init_from", Path(cfg.init_from)))
    for name, path in files:
        h.update(name.encode())
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def pretrained(path: Path, vocab: VocabRecord, dev: torch.device) -> MeloFormer:
    """The model of checkpoint `path` (its architecture and weights) to fine-tune on data of
    vocabulary `vocab`.

    Raises:
        CheckpointError: unreadable checkpoint.
        VocabError: the checkpoint speaks another vocabulary than the data.
    """
    model, record = load_trained(path, dev)
    if record.hash != vocab.hash:
        raise VocabError(f"train.init_from {path}: its vocabulary {record.hash} "
                         f"({record.size} tokens) differs from the data's {vocab.hash} "
                         f"({vocab.size}): preprocess with the checkpoint's HID config")
    return model.train()


def auto_resume(path: Path, dev: torch.device, key: str) -> tuple[dict | None, str]:
    """(checkpoint to continue or None, the log line saying which and why)."""
    try:
        ckpt = load_checkpoint(path, dev)
    except CheckpointError as e:
        return None, f"starting fresh: {e}"
    if ckpt.get("run_key") != key:
        return None, (f"starting fresh: {path} was made with another config or data "
                      "(run key differs)")
    if ckpt.get("complete"):
        return None, (f"starting fresh: {path} is a finished run (same config and data: "
                      "the code changed, or the rerun was forced)")
    return ckpt, f"continuing the interrupted run in {path} from step {ckpt['step']}"
