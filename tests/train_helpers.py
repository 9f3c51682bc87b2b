"""Shared helpers of the training tests: tiny shards from the fixture MIDIs, a tiny model."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from meloformer.data.shards import ShardKey, SongWriter
from meloformer.hid.config import HIDConfig
from meloformer.hid.encode import encode_file
from meloformer.model.config import ModelConfig
from meloformer.train.config import TrainConfig
from meloformer.train.vocabulary import VocabRecord

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def write_shards(shard_dir: Path, files: list[str], splits: list[str], per_shard: int = 4):
    """Encode fixture MIDIs `files` (names in tests/fixtures) into shards of `per_shard` songs,
    with the real shard writer, and the vocabulary record of meta.json beside the shards dir.
    Returns the Encodings in order."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    write_meta(shard_dir.parent)
    encs = [encode_file(FIXTURES / f) for f in files]
    for k in range(0, len(files), per_shard):
        key = ShardKey(k // per_shard, "cfg", "codec", "vocab", "in")
        writer = SongWriter(shard_dir, key, HIDConfig())
        for i in range(k, min(k + per_shard, len(files))):
            writer.add(files[i], f"h{i}", splits[i], encs[i])
        writer.commit()
    return encs


def write_meta(data_dir: Path) -> None:
    """The vocabulary record of meta.json (the default HIDConfig) in data_dir."""
    record = VocabRecord.of(HIDConfig())
    (data_dir / "meta.json").write_text(json.dumps(
        {"vocab": {"hash": record.hash, "size": record.size}, "hid": asdict(record.hid)}))


def tiny_model() -> ModelConfig:
    """A model small enough to train a few steps in well under a second on CPU."""
    return ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1, attention="sdpa")


def tiny_train(**changes) -> TrainConfig:
    """CPU-sized TrainConfig; `changes` override fields."""
    base = dict(max_seq_len=256, batch_size=2, gradient_accumulation_steps=1, num_workers=0,
                phase2_step=0, phase3_step=0, compile=False, log_every=1, save_every=2,
                warmup_steps=2, epochs=1, chunk_songs=16, seed=7, learning_rate=1e-3)
    return TrainConfig(**{**base, **changes})


ALL_FIXTURES = (
    "drywetmidi_sor_7-8.mid", "freedoom_E1M8_3-4.mid", "groove_rock_6-8.mid",
    "miditok_multitrack_drums.mid", "pop909_004.mid",
)


def make_dataset(root: Path, copies: int = 2, split_every: int = 0) -> Path:
    """Shards of the fixtures repeated `copies` times under root/data (every `split_every`-th
    song goes to `val` when > 0). Returns the data dir."""
    files = list(ALL_FIXTURES) * copies
    splits = ["val" if split_every and i % split_every == 0 else "train"
              for i in range(len(files))]
    write_shards(root / "data" / "shards", files, splits)
    return root / "data"
