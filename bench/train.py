"""Training throughput (tokens/s) of `small`: the sparse MeloFormer mask vs its dense twin.

    python bench/train.py [--json OUT] [--lengths T ...] [--rows B] [--steps N] [--device D]

Same process, same batches (real multitrack songs cropped to T by a window of whole bars, as
bench/attention.py uses; several packed when none is long enough), same optimizer; each row
times N optimizer steps (forward, backward, AdamW) after 2 warm-up steps. On CPU the sparse
model runs its SDPA executor (the boolean form of the same mask); on CUDA, `auto` (flex) in
bf16 autocast. Default lengths: 1024 2048 on CPU, 8192 on CUDA.
"""

from __future__ import annotations

import sys

# Python put bench/ first on sys.path; move it last so a bench script's name (tokenize.py)
# cannot shadow a standard-library module.
sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from common import load_songs, song_row, write_json  # noqa: E402

from meloformer.model.batch import Batch  # noqa: E402
from meloformer.model.config import ModelConfig  # noqa: E402
from meloformer.model.transformer import MeloFormer  # noqa: E402
from meloformer.train.config import TrainConfig  # noqa: E402
from meloformer.train.optim import build_optimizer  # noqa: E402
from meloformer.train.step import LossModule, train_step  # noqa: E402


def make_batch(songs, length: int, rows: int) -> Batch:
    """`rows` rows of `length` tokens, each from a different rotation of the songs."""
    return Batch.from_encodings(
        [song_row(songs[r % len(songs) :] + songs[: r % len(songs)], length) for r in range(rows)],
        length,
    )


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
    return {
        "attention": attention,
        "T": batch.shape[1],
        "B": batch.shape[0],
        "seconds_per_step": seconds / steps,
        "tokens_per_s": real * steps / seconds,
        "loss": res.loss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--lengths", type=int, nargs="+", help="default: 1024 2048 (CPU), 8192 (CUDA)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    lengths = args.lengths or ([8192] if device.type == "cuda" else [1024, 2048])
    sparse = "sdpa" if device.type == "cpu" else "auto"
    songs, rows = load_songs(), []
    for length in lengths:
        batch = make_batch(songs, length, args.rows)
        rows += [bench(kind, batch, args.steps, device) for kind in (sparse, "dense")]
    print(f"MeloFormer small, training step on {device} ({torch.get_num_threads()} threads)")
    print(f"{'T':>6}{'B':>4}  {'attention':<10}{'s/step':>9}{'tokens/s':>11}{'vs dense':>10}")
    for sp, de in zip(rows[::2], rows[1::2], strict=True):
        for r in (sp, de):
            ratio = r["tokens_per_s"] / de["tokens_per_s"]
            print(
                f"{r['T']:>6}{r['B']:>4}  {r['attention']:<10}{r['seconds_per_step']:>9.3f}"
                f"{r['tokens_per_s']:>11.0f}{ratio:>9.2f}x"
            )
    if args.json:
        write_json(args.json, {"device": str(device), "rows": rows, "summary": summary(rows)})


def summary(rows: list[dict]) -> list[dict]:
    """The rows bench/gpu.sh tabulates: sparse vs dense training tokens/s per length."""
    return [
        {
            "bench": "train",
            "case": f"small T={sp['T']} B={sp['B']} {sp['attention']}",
            "sparse": sp["tokens_per_s"],
            "baseline": de["tokens_per_s"],
            "unit": "tok/s",
            "speedup": sp["tokens_per_s"] / de["tokens_per_s"],
        }
        for sp, de in zip(rows[::2], rows[1::2], strict=True)
    ]


if __name__ == "__main__":
    main()
