"""DDP under torchrun on CPU (gloo): two ranks at micro-batch 1 follow the same losses as one
process at micro-batch 2 (same global batch), and only rank 0 writes outputs."""

from __future__ import annotations

import subprocess
import sys

from train_helpers import write_shards

from meloformer.train import load_checkpoint
from meloformer.train.__main__ import main

MODEL = ["--model", "n_layer=1", "--model", "n_embd=64", "--model", "n_head=2",
         "--model", "n_kv_head=1", "--model", "attention=sdpa"]


def _args(data, out, batch):
    return ["--data_dir", str(data), "--output_dir", str(out), "--preset", "cpu",
            "--max_seq_len", "512", "--batch_size", str(batch), "--max_steps", "4",
            "--warmup_steps", "1", "--learning_rate", "0.003", "--device", "cpu",
            "--precision", "fp32", "--no-compile", *MODEL]


def test_two_ranks_match_one_process_at_the_same_global_batch(tmp_path):
    # Identical songs: whichever rank gets which, every global batch has the same content.
    write_shards(tmp_path / "data" / "shards", ["groove_rock_6-8.mid"] * 8, ["train"] * 8)
    data = tmp_path / "data"
    one = main(_args(data, tmp_path / "one", 2))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "2", "-m", "meloformer.train", *_args(data, tmp_path / "two", 1)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    want = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")["history"]
    got = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["history"]
    assert one["steps"] == 4 and got.shape == want.shape
    assert (got[:, 1] - want[:, 1]).abs().max() < 1e-4  # loss
    assert (got[:, 3] - want[:, 3]).abs().max() < 1e-4 * want[:, 3].max()  # gradient scale
    assert (got[1:, 1] != got[0, 1]).any()  # the model did learn between steps
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("world 2") == 1  # rank 0 alone logs
