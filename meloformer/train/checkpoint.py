"""Checkpoints: one file holding everything a run needs to continue exactly, written
atomically and read back with torch.load(weights_only=True) (tensors and plain containers only,
no pickled objects). It carries the model config, so generation needs no params file."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from meloformer.data.atomic import atomic_path
from meloformer.model.config import ModelConfig

FORMAT = "meloformer-checkpoint-1"
LAST = "last.pt"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or of another format (the message names it)."""


def model_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The init fields of a ModelConfig as plain values (tuples become lists)."""
    init = {f.name for f in fields(cfg) if f.init}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items() if k in init}


def model_config_from(ckpt: dict[str, Any]) -> ModelConfig:
    """The ModelConfig stored in a loaded checkpoint."""
    raw = ckpt["model_config"]
    return ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def rng_state() -> dict[str, Any]:
    """Torch RNG states (CPU and every CUDA device) as uint8 tensors."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": list(cuda)}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write `state` (plus the format tag) to `path`.

    Args:
        state: tensors, numbers, strings and lists/dicts of them; at least `model`,
            `model_config` (a model_config_dict) and `step`.
    """
    with atomic_path(Path(path)) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (weights_only=True).

    Raises:
        CheckpointError: missing file, unreadable content or a different format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot load checkpoint: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    return ckpt
