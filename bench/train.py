"""Training throughput (tokens/s) of `small`: the sparse MeloFormer mask vs its dense twin, and
what the per-batch mask plan costs, before and after it moved off the step (issue 12).

    python bench/train.py [--json OUT] [--lengths T ...] [--rows B] [--steps N] [--device D]
                          [--mask-shape B T] [--no-mask-step]

Throughput table: same process, same batches (real multitrack songs cropped to T by a window
of whole bars, as bench/attention.py uses; several packed when none is long enough), same
optimizer; each row times N optimizer steps (forward, backward, AdamW) after 2 warm-up steps,
over a MaskPlan built beforehand (as the loader workers build it). On CPU the sparse model
runs its SDPA executor (the boolean form of the same mask); on CUDA, `auto` (flex) in bf16
autocast. Default lengths: 1024 2048 on CPU, 8192 on CUDA.

Mask table (default B=8, T=8192): per executor's plan (flex: the CUDA plan, 128-blocks,
bucketed; sdpa: the CPU plan, dense bool mask), build time on the CPU and ATen op count
(every op dispatched, counted by a TorchDispatchMode) of
  - before: the plan as MeloFormer.plan built it inside forward until issue 12 (segment pairs
    32 query segments at a time, the dense mask row by row);
  - after: meloformer.model.plan.build_plan, as the loader builds it;
also at B=1, T/4, to show which counts grow with B and T; and one training step of the sparse
model at --mask-step-rows rows and T on the device (no warm-up; skip with --no-mask-step) to
put the build beside. On CPU the default is 1 row: the SDPA step with a boolean mask
materialises (B, H, L, L) scores, which at B=8, T=8192 exceed a 24 GB machine; the step at
B rows is then taken as B times the one-row step (the step is linear in B).
"""

from __future__ import annotations

import sys

# Python put bench/ first on sys.path; move it last so a bench script's name cannot
# shadow a standard-library module (tokenize.py once did).
sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

import torch  # noqa: E402
from common import load_songs, song_row, write_json  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from meloformer.device import autocast_dtype  # noqa: E402
from meloformer.model.batch import Batch  # noqa: E402
from meloformer.model.block_mask import _representatives, _segment_pairs, segment_block_mask  # noqa: E402
from meloformer.model.cells import find_cells  # noqa: E402
from meloformer.model.config import ModelConfig  # noqa: E402
from meloformer.model.layout import build_layout  # noqa: E402
from meloformer.model.masks import mask_features, meloformer_mask  # noqa: E402
from meloformer.model.plan import Planner, build_plan, flex_block_size, summary_order  # noqa: E402
from meloformer.model.transformer import MeloFormer  # noqa: E402
from meloformer.train.config import TrainConfig  # noqa: E402
from meloformer.train.loader import MicroBatch  # noqa: E402
from meloformer.train.optim import build_optimizer  # noqa: E402
from meloformer.train.step import LossModule, train_step  # noqa: E402


def make_batch(songs, length: int, rows: int) -> Batch:
    """`rows` rows of `length` tokens, each from a different rotation of the songs."""
    return Batch.from_encodings(
        [song_row(songs[r % len(songs) :] + songs[: r % len(songs)], length) for r in range(rows)],
        length,
    )


def bench(attention: str, batch: Batch, steps: int, device: torch.device, warmup: int = 2,
          compile: bool = False, precision: str = "fp32") -> dict:
    """Tokens/s of `steps` training steps of `small` with the given executor (`compile`:
    each block compiled, as the training loop does; `precision`: the autocast knob)."""
    torch.manual_seed(0)
    torch._dynamo.reset()  # each run compiles afresh: no graph carried over between rows
    cfg = ModelConfig.from_name("small", attention=attention)
    model = MeloFormer(cfg).to(device)
    dtype = autocast_dtype(precision, device)
    if compile:
        for block in model.blocks:
            block.compile()
    opt = build_optimizer(model, TrainConfig(compile=False))
    module = LossModule(model)
    micro = [MicroBatch(batch, Planner(cfg, device.type)(batch))]
    if device.type == "cuda":
        micro = [m.pin_memory() for m in micro]
    real = int(batch.lengths.sum())
    for _ in range(warmup):  # allocator, kernels, compile
        train_step(module, opt, micro, 1e-4, 1.0, device, dtype=dtype)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        res = train_step(module, opt, micro, 1e-4, 1.0, device, dtype=dtype)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {
        "attention": attention,
        "mode": f"{'bf16' if dtype else 'fp32'} {'compiled' if compile else 'eager'}",
        "T": batch.shape[1],
        "B": batch.shape[0],
        "seconds_per_step": seconds / steps,
        "tokens_per_s": real * steps / seconds,
        "loss": res.loss,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class CountOps(TorchDispatchMode):
    """Counts every ATen op dispatched (each one a kernel launch on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def plan_before(batch: Batch, cfg: ModelConfig, kind: str, device: str):
    """The plan as MeloFormer.plan built it inside forward before issue 12 (same tables, the
    mask_mod over 32 query segments at a time, the dense mask one row at a time)."""
    cells = find_cells(batch, summarize_empty=cfg.summarize_empty)
    if kind == "sdpa":
        lay = build_layout(batch, cells, multiple=8)
        mask_mod, features = meloformer_mask(lay, cfg), mask_features(lay, cfg)
        reps = _representatives(features, lay.clock, lay.length)
        some, _ = _segment_pairs(mask_mod, reps, every=False, rows=32)
        diagonal = torch.eye(lay.length, dtype=torch.bool)
        rows = []
        for b in range(batch.shape[0]):
            counts = torch.bincount(reps.seg[b], minlength=some.shape[1])
            rule = some[b].repeat_interleave(counts, dim=1).repeat_interleave(counts, dim=0)
            rows.append((rule & (lay.clock[b, None, :] <= lay.clock[b, :, None])) | diagonal)
        return torch.stack(rows)[:, None]
    block = flex_block_size(cfg, device)
    lay = build_layout(batch, cells, bar_major=cfg.bar_major,
                       multiple=math.lcm(block, cfg.length_bucket),
                       conductor_first=cfg.conductor_full, summary_order=summary_order(cfg, block))
    return segment_block_mask(meloformer_mask(lay, cfg), mask_features(lay, cfg), lay.clock,
                              block, rows=32)


def measure(fn) -> tuple[float, int]:
    """(seconds, ATen ops) of one call; the time is taken on a second, uncounted call."""
    with CountOps() as count:
        fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, count.n


def mask_table(songs, B: int, T: int) -> list[dict]:
    """Before/after build time and op count of each executor's plan, at (B, T) and (1, T/4)."""
    cfg = ModelConfig.from_name("small")
    rows = []
    for kind, device in (("flex", "cuda"), ("sdpa", "cpu")):
        row = {"plan": f"{kind} ({device})", "B": B, "T": T}
        for shape, tag in (((1, T // 4), "_small"), ((B, T), "")):
            batch = make_batch(songs, shape[1], shape[0])
            before = measure(partial(plan_before, batch, cfg, kind, device))
            after = measure(partial(build_plan, batch, cfg, kind, device))
            row |= {f"before_s{tag}": before[0], f"before_ops{tag}": before[1],
                    f"after_s{tag}": after[0], f"after_ops{tag}": after[1]}
        rows.append(row)
    return rows


def print_mask_table(rows: list[dict], step: dict | None) -> None:
    B, T = rows[0]["B"], rows[0]["T"]
    print(f"\nMask plan per micro-batch, built on the CPU ({torch.get_num_threads()} threads); "
          f"ops = ATen ops dispatched")
    print(f"{'plan':<12}{'ops before':>12}{'ops after':>11}{'(B=1,T=' + str(T // 4) + ')':>16}"
          f"{'s before':>10}{'s after':>9}{'after/step':>12}")
    for r in rows:
        small = f"{r['before_ops_small']}/{r['after_ops_small']}"
        share = f"{r['after_s'] / _step_at(step, B):.1%}" if step else "-"
        print(f"{r['plan']:<12}{r['before_ops']:>12}{r['after_ops']:>11}{small:>16}"
              f"{r['before_s']:>10.3f}{r['after_s']:>9.3f}{share:>12}")
    print(f"(ops and seconds at B={B}, T={T}; the bracketed column is before/after ops at B=1)")
    if step:
        print(f"training step, {step['attention']} at B={step['B']}, T={T}: "
              f"{step['seconds_per_step']:.2f} s (one step; no warm-up on CPU, one on CUDA)"
              + (f"; at B={B} taken as {_step_at(step, B):.2f} s (x{B // step['B']})"
                 if step["B"] != B else ""))


def _step_at(step: dict, B: int) -> float:
    """Seconds of a step at B rows, from a step measured at step['B'] rows (linear in B)."""
    return step["seconds_per_step"] * B / step["B"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--lengths", type=int, nargs="+", help="default: 1024 2048 (CPU), 8192 (CUDA)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mask-shape", type=int, nargs=2, default=(8, 8192), metavar=("B", "T"))
    ap.add_argument("--compile", action="store_true", help="compile the blocks (CUDA)")
    ap.add_argument("--mask-step-rows", type=int,
                    help="rows of the step beside the mask plan (default: B on CUDA, 1 on CPU)")
    ap.add_argument("--no-mask-step", action="store_true",
                    help="skip the training step at the mask shape (minutes on CPU)")
    ap.add_argument("--no-mask-table", action="store_true", help="skip the mask plan table")
    args = ap.parse_args()
    device = torch.device(args.device)
    lengths = args.lengths or ([8192] if device.type == "cuda" else [1024, 2048])
    sparse = "sdpa" if device.type == "cpu" else "auto"
    modes = [("fp32", False), ("auto", True)]  # the baseline, then the training default
    songs, rows = load_songs(), []
    for length in lengths:
        batch = make_batch(songs, length, args.rows)
        rows += [bench(kind, batch, args.steps, device, compile=compile, precision=precision)
                 for precision, compile in modes for kind in (sparse, "dense")]
    print_throughput(rows, device)
    if args.no_mask_table:
        if args.json:
            write_json(args.json, {"device": str(device), "rows": rows})
        return
    B, T = args.mask_shape
    masks = mask_table(songs, B, T)
    step_rows = args.mask_step_rows or (B if device.type == "cuda" else 1)
    step = None if args.no_mask_step else bench(
        sparse, make_batch(songs, T, step_rows), 1, device,
        warmup=0 if device.type == "cpu" else 1, compile=args.compile)
    print_mask_table(masks, step)
    if args.json:
        write_json(args.json, {"device": str(device), "rows": rows, "mask": masks,
                               "mask_step": step, "summary": summary(rows, masks)})


def print_throughput(rows: list[dict], device: torch.device) -> None:
    """Rows in groups of four per length: (fp32 eager, default) x (sparse, dense)."""
    print(f"MeloFormer small, training step on {device} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'T':>6}{'B':>4}  {'mode':<15}{'attention':<10}{'s/step':>9}{'tokens/s':>11}"
          f"{'vs fp32 eager':>15}{'sparse/dense time':>19}")
    for i in range(0, len(rows), 4):
        base = rows[i: i + 2]
        for sp, de in (rows[i: i + 2], rows[i + 2: i + 4]):
            for r, b in ((sp, base[0]), (de, base[1])):
                ratio = r["seconds_per_step"] / de["seconds_per_step"]
                print(f"{r['T']:>6}{r['B']:>4}  {r['mode']:<15}{r['attention']:<10}"
                      f"{r['seconds_per_step']:>9.3f}{r['tokens_per_s']:>11.0f}"
                      f"{r['tokens_per_s'] / b['tokens_per_s']:>14.2f}x{ratio:>18.2f}")


def summary(rows: list[dict], masks: list[dict]) -> list[dict]:
    """The rows bench/gpu.sh tabulates: sparse vs dense training tokens/s per length, and
    the mask plan's build time after vs before."""
    out = [
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
    out += [
        {
            "bench": "train",
            "case": f"mask plan {m['plan']} B={m['B']} T={m['T']} ATen ops "
                    f"{m['before_ops']}->{m['after_ops']}",
            "sparse": m["after_s"],
            "baseline": m["before_s"],
            "unit": "s (CPU)",
            "speedup": m["before_s"] / m["after_s"],
        }
        for m in masks
    ]
    return out


if __name__ == "__main__":
    main()
