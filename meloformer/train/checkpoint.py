"""Checkpoints: one file holding everything a run needs to continue exactly, written
atomically and read back with torch.load(weights_only=True) (tensors and plain containers only,
no pickled objects). It carries the model config and the vocabulary, so generation and
evaluation need no params file: `load_trained` rebuilds the model and its vocabulary from it.

A checkpoint is a zip archive whose every record carries a CRC-32 (torch writes them): loading
checks them all first, so a file cut short or with changed bytes is refused in one line instead
of loading wrong weights or surfacing torch's unpickler advice."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from meloformer.data import CorpusProfile
from meloformer.errors import UserError
from meloformer.io import atomic_path, json_ready
from meloformer.model import MeloFormer, ModelConfig
from meloformer.train.vocabulary import VocabError, VocabRecord, checkpoint_vocab

FORMAT = "meloformer-checkpoint-1"
LAST = "last.pt"


def kept_name(step: int) -> str:
    """The file name of a step's kept checkpoint (train.keep_every): step-0001000.pt."""
    return f"step-{step:07d}.pt"


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable or of another format (the message names it)."""


def model_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The init fields of a ModelConfig as plain values (tuples become lists)."""
    init = {f.name for f in fields(cfg) if f.init}
    return {k: v for k, v in json_ready(cfg).items() if k in init}


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
    """Read a checkpoint written by `save_checkpoint` (weights_only=True), after checking the
    CRC-32 of every record in it.

    Raises:
        CheckpointError: missing or empty file, damaged bytes (cut short, changed), content
            other than tensors and plain containers, or a different format. The message is
            one line with a reason.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint")
    if path.stat().st_size == 0:  # e.g. a copy or a save that never wrote a byte
        raise CheckpointError(f"{path}: cannot load checkpoint: empty file (0 bytes)")
    check_archive(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's text advises weights_only=False: never here
        raise CheckpointError(f"{path}: holds objects other than tensors and plain containers, "
                              f"refused ({_first_line(e, 'Unsupported global')})") from e
    except Exception as e:  # torch raises several types for corrupt files
        raise CheckpointError(f"{path}: cannot load checkpoint ({type(e).__name__}: "
                              f"{_first_line(e)})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    return ckpt


def check_archive(path: Path) -> None:
    """Refuse a checkpoint that is not an intact zip archive (every record's CRC-32 checked).

    Raises:
        CheckpointError: one line naming the file and the damage.
    """
    damaged = f"{path}: damaged checkpoint"
    advice = "restore it from a copy or train again"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as e:  # noqa: BLE001 - a flipped header byte can raise nearly anything
        raise CheckpointError(f"{damaged}, cut short or overwritten ({_first_line(e)}): "
                              f"{advice}") from e
    if bad is not None:
        raise CheckpointError(f"{damaged}: record {bad} fails its CRC-32 check (bytes changed "
                              f"since it was written): {advice}")


def _first_line(e: BaseException, prefer: str = "") -> str:
    """A short one-line reason from an exception's text: the first sentence of the first line
    holding `prefer` if any, else of its first line, at most 160 characters (torch's advice
    follows in later sentences)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    chosen = next((line for line in lines if prefer and prefer in line), lines[0])
    return chosen.split(". ")[0][:160]


def load_trained(path: Path, device: str | torch.device = "cpu"
                 ) -> tuple[MeloFormer, VocabRecord]:
    """The model of a training checkpoint and the vocabulary it was trained on (stored in the
    checkpoint: never taken from params).

    Raises:
        CheckpointError: missing/unreadable file or weights that do not fit the config.
        VocabError: a vocabulary record that is malformed or does not match the model.
    """
    ckpt = load_checkpoint(Path(path), map_location=device)
    model = MeloFormer(model_config_from(ckpt)).to(device)
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the stored config: {e}") from e
    ckpt_vocab = checkpoint_vocab(ckpt, str(path), model.cfg.vocab_size)
    if ckpt_vocab.size != model.cfg.vocab_size:
        raise VocabError(f"{path}: vocab_size {model.cfg.vocab_size} != its vocabulary "
                         f"{ckpt_vocab.hash} ({ckpt_vocab.size} tokens)")
    return model.eval(), ckpt_vocab


def load_profile(path: Path) -> CorpusProfile | None:
    """The corpus profile a checkpoint was trained on (generation's defaults); None for a
    checkpoint from before profiles, or of data preprocessed before them.

    Raises:
        CheckpointError: as load_checkpoint.
    """
    profile = load_checkpoint(Path(path)).get("profile")
    return CorpusProfile.from_dict(profile) if profile else None


# What a model can be asked for beyond plain continuation, and the training rate that
# teaches it (train.<rate> > 0).
SKILLS = {"infill": "infill_rate", "controls": "control_rate"}


def trained_for(train_config: dict[str, Any], inherited: dict[str, bool] | None
                ) -> dict[str, bool]:
    """The skills a run teaches: those its rates train (> 0), plus those of the checkpoint it
    fine-tunes (`inherited`: its `learned`, None for a run from scratch)."""
    return {skill: bool(train_config.get(rate, 0) > 0 or (inherited or {}).get(skill))
            for skill, rate in SKILLS.items()}


def learned(ckpt: dict[str, Any]) -> dict[str, bool] | None:
    """The skills a loaded checkpoint's model was trained for ({"infill": ..., "controls":
    ...}): its `learned` record, else its train_config's rates (a checkpoint from before the
    record, not fine-tuned); None when the checkpoint says nothing of its training."""
    if "learned" in ckpt:
        return dict(ckpt["learned"])
    config = ckpt.get("train_config")
    if not config or config.get("init_from"):
        return None
    return trained_for(config, None)


def load_learned(path: Path) -> dict[str, bool] | None:
    """`learned` of the checkpoint at `path`.

    Raises:
        CheckpointError: as load_checkpoint.
    """
    return learned(load_checkpoint(Path(path)))


def load_model(path: Path, device: str | torch.device = "cpu") -> MeloFormer:
    """A MeloFormer from a training checkpoint (config + weights, torch.load weights_only).

    Raises:
        CheckpointError, VocabError: as load_trained.
    """
    return load_trained(path, device)[0]
