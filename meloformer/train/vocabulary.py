"""The vocabulary a model speaks, with one owner at each stage: the corpus's meta.json (written
by preprocess) until training, the checkpoint after it. Training builds the model from the
first and stores it in the second; generation and evaluation read it from the checkpoint and
refuse shards of another vocabulary."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from meloformer.data import meta_path
from meloformer.errors import UserError
from meloformer.hid import HIDConfig, Vocab, vocab_for


class VocabError(UserError, ValueError):
    """meta.json missing or inconsistent, or shards of another vocabulary (names both)."""


@dataclass(frozen=True)
class VocabRecord:
    """A vocabulary as recorded: its HIDConfig, hash and size (`Vocab(hid)` rebuilds it)."""

    hid: HIDConfig
    hash: str
    size: int

    @classmethod
    def of(cls, hid: HIDConfig) -> VocabRecord:
        vocab = vocab_for(hid)
        return cls(hid, vocab.hash, len(vocab))

    def vocab(self) -> Vocab:
        return vocab_for(self.hid)

    def to_dict(self) -> dict[str, Any]:
        """Checkpoint form (plain values: torch.load(weights_only=True) reads it)."""
        return {"hid": asdict(self.hid), "hash": self.hash, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> VocabRecord:
        """The record of `to_dict`, checked: its HIDConfig must rebuild the recorded hash."""
        try:
            record = cls(HIDConfig(**d["hid"]), str(d["hash"]), int(d["size"]))
        except (KeyError, TypeError, ValueError) as e:
            raise VocabError(f"{where}: malformed vocabulary record: {e}") from e
        rebuilt = cls.of(record.hid)
        if (rebuilt.hash, rebuilt.size) != (record.hash, record.size):
            raise VocabError(f"{where}: HIDConfig gives vocabulary {rebuilt.hash} "
                             f"({rebuilt.size} tokens) but records {record.hash} ({record.size})")
        return record


def corpus_vocab(data_dir: Path) -> VocabRecord:
    """The vocabulary the shards under `data_dir` were written with, from meta.json.

    Raises:
        VocabError: no meta.json, or one whose vocab/hid entries are missing or disagree.
    """
    path = meta_path(data_dir)
    try:
        meta = json.loads(path.read_text())
        entry = {"hid": meta["hid"], "hash": meta["vocab"]["hash"], "size": meta["vocab"]["size"]}
    except FileNotFoundError as e:
        raise VocabError(f"{path}: no meta.json (run the preprocess stage)") from e
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise VocabError(f"{path}: no vocab/hid record: {e}") from e
    return VocabRecord.from_dict(entry, str(path))


def checkpoint_vocab(ckpt: dict[str, Any], where: str, vocab_size: int) -> VocabRecord:
    """The vocabulary stored in a loaded checkpoint. A checkpoint from before it was stored
    speaks the default HIDConfig's vocabulary if its size matches (else VocabError)."""
    if "vocab" in ckpt:
        return VocabRecord.from_dict(ckpt["vocab"], where)
    legacy = VocabRecord.of(HIDConfig())
    if legacy.size != vocab_size:
        raise VocabError(f"{where}: no vocabulary record, and vocab_size {vocab_size} is not "
                         f"the default HID vocabulary's {legacy.size}")
    return legacy


def check_corpus(record: VocabRecord, data_dir: Path) -> None:
    """Refuse shards written with another vocabulary (one line naming both hashes)."""
    theirs = corpus_vocab(data_dir)
    if theirs.hash != record.hash:
        raise VocabError(f"{meta_path(data_dir)}: shards use vocabulary {theirs.hash}, the "
                         f"model {record.hash}")
