"""Integrity: shards whose bytes changed since preprocessing and damaged checkpoints are refused
in one line naming the file and what to do (issue 21)."""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from test_preprocess import run as preprocess_run
from test_preprocess import sample_files

from meloformer.data.preprocess import META_FILE
from meloformer.data.shards import SHARD_DIR, ShardError, build_index, songs_files
from meloformer.evaluate.evaluate import validation_songs
from meloformer.train.checkpoint import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    """A preprocessed dir of 12 sample files (3 shards), built once; tests copy it."""
    out = tmp_path_factory.mktemp("integrity") / "out"
    preprocess_run(sample_files(12), out)
    return out


def copy_of(processed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(processed, tmp_path / "out"))


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_meta_records_each_shards_sha256_and_an_intact_corpus_indexes(processed):
    meta = json.loads((processed / META_FILE).read_text())
    files = songs_files(processed / SHARD_DIR)
    assert [e["file"] for e in meta["shards"]] == [f"{SHARD_DIR}/{f.name}" for f in files]
    assert all(len(e["sha256"]) == 64 for e in meta["shards"])
    assert len(build_index(processed, "train")) > 0


def test_a_shard_with_one_changed_byte_is_refused_for_training_and_evaluation(processed,
                                                                             tmp_path):
    out = copy_of(processed, tmp_path)
    victim = songs_files(out / SHARD_DIR)[1]
    flip(victim, victim.stat().st_size // 2)
    for call in (lambda: build_index(out, "train"), lambda: validation_songs(out, 4)):
        with pytest.raises(ShardError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and str(victim) in message
        assert "changed since preprocessing" in message and "rerun preprocess" in message


def test_a_missing_or_unlisted_shard_is_refused(processed, tmp_path):
    out = copy_of(processed, tmp_path)
    files = songs_files(out / SHARD_DIR)
    files[-1].unlink()
    with pytest.raises(ShardError, match="it is gone: rerun preprocess"):
        build_index(out)
    shutil.copy(files[0], out / SHARD_DIR / "shard-00099.parquet")
    with pytest.raises(ShardError, match="shard-00099.parquet: not listed"):
        build_index(out)


def test_a_corpus_preprocessed_before_hashes_were_recorded_is_not_checked(processed, tmp_path):
    out = copy_of(processed, tmp_path)
    meta = json.loads((out / META_FILE).read_text())
    for entry in meta["shards"]:
        del entry["sha256"]
    (out / META_FILE).write_text(json.dumps(meta))
    victim = songs_files(out / SHARD_DIR)[0]
    victim.write_bytes(victim.read_bytes())  # same bytes, new mtime: nothing to refuse anyway
    assert len(build_index(out, "train")) > 0


# --- checkpoints ---


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path) -> Path:
    return Path(shutil.copy(tiny_checkpoint, tmp_path / "last.pt"))


def one_line_refusal(path: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    assert "weights_only" not in message and "Traceback" not in message, message
    assert all(w in message for w in words), message
    return message


def tensor_offset(path: Path) -> int:
    """Byte offset of the middle of the largest tensor record in a checkpoint archive."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as f:  # local header: 30 bytes + name + extra, then the data
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
    return info.header_offset + 30 + name_len + extra_len + info.file_size // 2


def test_a_flipped_byte_in_the_weights_is_refused_not_loaded(ckpt):
    flip(ckpt, tensor_offset(ckpt))
    one_line_refusal(ckpt, "damaged checkpoint", "CRC-32", "train again")


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.01])
def test_a_checkpoint_cut_short_is_refused(ckpt, keep):
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: int(len(data) * keep)])
    one_line_refusal(ckpt, "damaged checkpoint")


def test_any_flipped_byte_is_refused_or_changes_nothing(ckpt, tiny_checkpoint):
    """A flip in zip padding or an unread header field is harmless; anything else is refused."""
    original = load_checkpoint(tiny_checkpoint)
    size = ckpt.stat().st_size
    for at in range(0, size, max(1, size // 150)):
        shutil.copy(tiny_checkpoint, ckpt)
        flip(ckpt, at)
        try:
            loaded = load_checkpoint(ckpt)
        except CheckpointError:
            one_line_refusal(ckpt)
            continue
        assert loaded.keys() == original.keys(), at
        for k, v in original["model"].items():
            assert torch.equal(loaded["model"][k], v), (at, k)


def test_pickled_objects_are_refused_without_torchs_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "meloformer-checkpoint-1", "x": argparse.Namespace(a=1)}, path)
    one_line_refusal(path, "objects other than tensors", "Namespace")
