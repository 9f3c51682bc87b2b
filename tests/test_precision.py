"""The hardware rules of meloformer.device (bf16 detection, autocast, threads) and what they
change: bf16 training follows fp32's loss, and cached decoding runs under bf16 autocast."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from meloformer.device import (
    autocast_dtype,
    cpu_threads,
    decode_dtype,
    native_bf16,
    use_cpu_threads,
)
from meloformer.generate import Conditions, Request, SamplingConfig, generate
from meloformer.generate.generate import Cached
from meloformer.generate.script import from_scratch
from meloformer.hid import HIDConfig, Vocab
from meloformer.hid.vocab import EOS
from meloformer.model import MeloFormer, ModelConfig
from meloformer.train.config import TrainConfig

CPU = torch.device("cpu")


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux /proc/cpuinfo")
def test_native_bf16_is_read_off_the_cpu():
    """Detected, not assumed: it agrees with the CPU's own flags."""
    assert native_bf16(CPU) == bool(cpu_flags() & {"amx_tile", "avx512_bf16"})


def test_precision_rules():
    assert autocast_dtype("fp32", CPU) is None
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    assert autocast_dtype("auto", CPU) == (torch.bfloat16 if native_bf16(CPU) else None)
    assert decode_dtype("auto", CPU) is None  # bf16 decoding is slower on CPU (measured)
    assert decode_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="compile"):
        TrainConfig(compile="maybe")


def test_threads_follow_the_affinity_mask(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert use_cpu_threads() == cpu_threads()
        if hasattr(os, "sched_getaffinity"):
            assert cpu_threads() == len(os.sched_getaffinity(0))
        assert use_cpu_threads(1) == 1  # a value given wins
    finally:
        torch.set_num_threads(before)


def test_cached_decoding_under_bf16_autocast():
    """The KV cache takes the autocast dtype (an fp32 cache under autocast fails with "Index
    put requires the source and destination dtypes match"), and bf16 sampling writes songs."""
    torch.manual_seed(0)
    vocab = Vocab(HIDConfig())
    model = MeloFormer(ModelConfig(n_layer=2, n_embd=64, n_head=4, n_kv_head=2,
                                   vocab_size=len(vocab))).eval()
    source = Cached(model, 1, 256, 129, dtype=torch.bfloat16)
    assert source.cache.kv.k.dtype is torch.bfloat16
    req = Request(from_scratch(vocab, (0,)), Conditions(n_bars=2, max_tokens=256),
                  SamplingConfig(seed=3), 2)
    songs = generate(model, vocab, req, dtype=torch.bfloat16)
    assert all(len(s.ids) > 8 and s.ids[-1] == EOS for s in songs)


@pytest.mark.slow
def test_bf16_training_follows_fp32(tmp_path):
    """60 steps on the bundled sample: bf16 autocast and fp32 end within 2 % of each other."""
    from train_helpers import write_meta

    from meloformer.data.shards import ShardKey, SongWriter
    from meloformer.hid.encode import encode_file
    from meloformer.train import train

    files = sorted(Path("data/raw/sample").rglob("*.mid"))[:24]
    data = tmp_path / "data"
    writer = SongWriter(data / "shards", ShardKey(0, "c", "c", "v", "i"), HIDConfig())
    for i, f in enumerate(files):
        writer.add(str(f), f"h{i}", "train", encode_file(f))
    writer.commit()
    write_meta(data)
    model = ModelConfig(n_layer=2, n_embd=128, n_head=2, n_kv_head=1, attention="sdpa")
    losses = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(max_seq_len=512, batch_size=2, gradient_accumulation_steps=1,
                          num_workers=0, phase2_step=0, phase3_step=0, compile=False,
                          log_every=10, save_every=100, warmup_steps=10, epochs=100,
                          max_steps=60, seed=7, learning_rate=2e-3, precision=precision)
        out = train(cfg, model, data, tmp_path / precision)
        losses[precision] = np.mean([row[1] for row in _history(tmp_path / precision)[-10:]])
        assert out["steps"] == 60
    assert abs(losses["bf16"] - losses["fp32"]) / losses["fp32"] < 0.02, losses


def _history(out: Path) -> list[list[float]]:
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    return ckpt["history"].tolist()
