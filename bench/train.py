"""Training throughput (tokens/s) of `small`: the sparse MeloFormer mask vs its dense twin.

    python bench/train.py [--json OUT] [--steps N] [--device cpu|cuda]

Same process, same batches (fixture MIDIs cropped to T by the training crop), same optimizer;
each row times N optimizer steps (forward, backward, AdamW) after 2 warm-up steps. On CPU the
sparse model runs its SDPA executor (the boolean form of the same mask); on CUDA, `auto`.
"""

from __future__ import annotations

import os
import sys

# Run as a script, bench/ leads sys.path and bench/tokenize.py would shadow the stdlib module.
if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from meloformer.hid.encode import encode_file  # noqa: E402
from meloformer.model.batch import Batch  # noqa: E402
from meloformer.model.config import ModelConfig  # noqa: E402
from meloformer.model.transformer import MeloFormer  # noqa: E402
from meloformer.train.config import TrainConfig  # noqa: E402
from meloformer.train.crop import crop  # noqa: E402
from meloformer.train.optim import build_optimizer  # noqa: E402
from meloformer.train.step import LossModule, train_step  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def make_batch(length: int, rows: int) -> Batch:
    """`rows` fixture songs cropped to `length` tokens (all tracks kept), padded to length."""
    encs = [encode_file(p) for p in sorted(FIXTURES.glob("*.mid"))]
    encs = sorted(encs, key=len, reverse=True)[:rows]
    rng = np.random.default_rng(0)
    return Batch.from_encodings([[crop(e, length, rng)] for e in encs], length)


def bench(attention: str, batch: Batch, steps: int, device: torch.device) -> dict:
    """Tokens/s of `steps` training steps of `small` with the given executor."""
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig.from_name("small", attention=attention)).to(device)
    opt = build_optimizer(model, TrainConfig(compile=False))
    module = LossModule(model)
    real = int(batch.lengths.sum())
    for _ in range(2):  # warm-up: allocator, kernels, compile on CUDA
        train_step(module, opt, [batch], 1e-4, 1.0, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        res = train_step(module, opt, [batch], 1e-4, 1.0, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"attention": attention, "T": batch.shape[1], "B": batch.shape[0],
            "seconds_per_step": seconds / steps, "tokens_per_s": real * steps / seconds,
            "loss": res.loss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    sparse = "sdpa" if device.type == "cpu" else "auto"
    rows = []
    for length in (1024, 2048):
        batch = make_batch(length, args.rows)
        rows += [bench(kind, batch, args.steps, device) for kind in (sparse, "dense")]
    print(f"MeloFormer small, training step on {device} ({torch.get_num_threads()} threads)")
    print(f"{'T':>6}{'B':>4}  {'attention':<10}{'s/step':>9}{'tokens/s':>11}{'vs dense':>10}")
    for sp, de in zip(rows[::2], rows[1::2], strict=True):
        for r in (sp, de):
            ratio = r["tokens_per_s"] / de["tokens_per_s"]
            print(f"{r['T']:>6}{r['B']:>4}  {r['attention']:<10}{r['seconds_per_step']:>9.3f}"
                  f"{r['tokens_per_s']:>11.0f}{ratio:>9.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
