"""Training throughput (tokens/s) of `small`: the sparse MeloFormer mask vs its dense twin, and
what the per-batch mask plan costs beside the step.

    python -m bench.train [--json OUT] [--lengths T ...] [--rows B] [--steps N] [--device D]
                          [--mask-shape B T] [--no-mask-step]

Throughput table: same process, same batches (real multitrack songs cropped to T by a window
of whole bars, as bench/attention.py uses; several packed when none is long enough), same
optimizer; each row times N optimizer steps (forward, backward, AdamW) after 2 warm-up steps,
over a MaskPlan built beforehand (as the loader workers build it). On CPU the sparse model
runs its SDPA executor (the boolean form of the same mask); on CUDA, `auto` (flex) in bf16
autocast. Default lengths: 1024 2048 on CPU, 8192 on CUDA.

Mask table (default B=8, T=8192): per executor's plan (flex: the CUDA plan, 128-blocks,
bucketed; sdpa: the CPU plan, dense bool mask), build time on the CPU and ATen op count
(every op dispatched, counted by a TorchDispatchMode) of meloformer.model.plan.build_plan, as
the loader builds it, also at B=1, T/4 to show which counts grow with B and T (the plan as
forward built it before issue 12 was measured against it: docs/results.md "Mask plan"); and
one training step of the sparse model at --mask-step-rows rows and T on the device (no
warm-up; skip with --no-mask-step) to put the build beside. On CPU the default is 1 row: the
SDPA step with a boolean mask materialises (B, H, L, L) scores, which at B=8, T=8192 exceed a
24 GB machine; the step at B rows is then taken as B times the one-row step (the step is
linear in B).
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.common import load_songs, song_row, write_json
from meloformer.device import autocast_dtype
from meloformer.model import Batch, MeloFormer, ModelConfig, Planner, build_plan
from meloformer.train import LossModule, MicroBatch, TrainConfig, build_optimizer, train_step


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


def measure(fn) -> tuple[float, int]:
    """(seconds, ATen ops) of one call; the time is taken on a second, uncounted call."""
    with CountOps() as count:
        fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0, count.n


def mask_table(songs, B: int, T: int) -> list[dict]:
    """Build time and op count of each executor's plan, at (B, T) and (1, T/4)."""
    cfg = ModelConfig.from_name("small")
    rows = []
    for kind, device in (("flex", "cuda"), ("sdpa", "cpu")):
        row = {"plan": f"{kind} ({device})", "B": B, "T": T}
        for shape, tag in (((1, T // 4), "_small"), ((B, T), "")):
            batch = make_batch(songs, shape[1], shape[0])
            seconds, ops = measure(partial(build_plan, batch, cfg, kind, device))
            row |= {f"s{tag}": seconds, f"ops{tag}": ops}
        rows.append(row)
    return rows


def print_mask_table(rows: list[dict], step: dict | None) -> None:
    B, T = rows[0]["B"], rows[0]["T"]
    print(f"\nMask plan per micro-batch, built on the CPU ({torch.get_num_threads()} threads); "
          f"ops = ATen ops dispatched")
    print(f"{'plan':<12}{'ops':>8}{'ops (B=1,T=' + str(T // 4) + ')':>18}{'s':>9}"
          f"{'plan/step':>11}")
    for r in rows:
        share = f"{r['s'] / _step_at(step, B):.1%}" if step else "-"
        print(f"{r['plan']:<12}{r['ops']:>8}{r['ops_small']:>18}{r['s']:>9.3f}{share:>11}")
    print(f"(ops and seconds at B={B}, T={T}; the bracketed column: ops at B=1)")
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
                               "mask_step": step, "summary": summary(rows, masks, step)})


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


def summary(rows: list[dict], masks: list[dict], step: dict | None) -> list[dict]:
    """The rows bench/gpu.sh tabulates: sparse vs dense training tokens/s per length, and
    (with the step beside it) the mask plan's build time against the step's time: speedup =
    step / plan, the loader workers one step's plan needs is 1 / speedup."""
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
            "case": f"mask plan {m['plan']} B={m['B']} T={m['T']} ({m['ops']} ATen ops) vs "
                    f"the step",
            "sparse": m["s"],
            "baseline": _step_at(step, m["B"]),
            "unit": "s (CPU)",
            "speedup": _step_at(step, m["B"]) / m["s"],
        }
        for m in (masks if step else ())
    ]
    return out


if __name__ == "__main__":
    main()
