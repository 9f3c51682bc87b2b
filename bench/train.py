"""Training throughput (tokens/s) of `small`: the sparse MeloFormer mask vs its dense twin, and
what the per-batch mask plan costs beside the step.

    python -m bench.train [--json OUT] [--lengths T ...] [--rows B] [--steps N] [--device D]
                          [--mask-shape B T] [--no-mask-step]

Throughput table: same process, same batches (real multitrack songs cropped to T by a window
of whole bars, as bench/attention.py uses; several packed when none is long enough), same
optimizer; each row is the median of N timed optimizer steps (forward, backward, AdamW) after
2 warm-up steps, the variants of one length timed in turn, step by step,
over a MaskPlan built beforehand (as the loader workers build it). Modes: fp32 eager (the
baseline) and the training default (`precision: auto`, compiled blocks). On CPU the sparse
model runs its sdpa executor (rows in clock order, the causal kernel with the mask on top),
and beside it `sdpa bool`, the same executor as it was before (the boolean mask, every key
block computed); on CUDA, `auto` (flex). Default lengths: 1024 2048 on CPU, 8192 on CUDA.

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
import statistics
import time
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.common import load_songs, song_row, write_json
from meloformer.device import autocast_dtype
from meloformer.model import Batch, MeloFormer, ModelConfig, Planner, build_plan
from meloformer.train import LossModule, MicroBatch, TrainConfig, build_optimizer, train_step

PLAIN = "bool"  # the attention label of the sdpa executor before the clock order


def make_batch(songs, length: int, rows: int) -> Batch:
    """`rows` rows of `length` tokens, each from a different rotation of the songs."""
    return Batch.from_encodings(
        [song_row(songs[r % len(songs) :] + songs[: r % len(songs)], length) for r in range(rows)],
        length,
    )


@dataclass(frozen=True)
class Variant:
    """One row of the throughput table: an executor in a precision/compile mode."""

    attention: str
    precision: str = "fp32"
    compile: bool = False
    plain: bool = False  # the sdpa executor before the clock order (see `runner`)


def runner(v: Variant, batch: Batch, device: torch.device):
    """A ready training step of `small` for variant `v` (blocks compiled as the training loop
    does; `plain`: attend with the boolean mask and no causal flag, every key block computed,
    as the sdpa executor did before the clock order). Returns (step, row): step() runs one
    optimizer step and returns its loss; row holds the variant's labels."""
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("small", attention=v.attention)
    model = MeloFormer(cfg).to(device)
    if v.plain:  # drop the causal kernel's mask: attend() then takes SDPA with the bool mask
        wrapped = model.attention_plan
        model.attention_plan = lambda plan: replace(wrapped(plan), bias=None)
    dtype = autocast_dtype(v.precision, device)
    if v.compile:
        for block in model.blocks:
            block.compile()
    opt = build_optimizer(model, TrainConfig(compile=False))
    module = LossModule(model)
    micro = [MicroBatch(batch, Planner(cfg, device.type)(batch))]
    if device.type == "cuda":
        micro = [m.pin_memory() for m in micro]
    row = {"attention": f"{v.attention} {PLAIN}" if v.plain else v.attention,
           "mode": f"{'bf16' if dtype else 'fp32'} {'compiled' if v.compile else 'eager'}",
           "T": batch.shape[1], "B": batch.shape[0]}
    return (lambda: train_step(module, opt, micro, 1e-4, 1.0, device, dtype=dtype).loss), row


def bench(variants: list[Variant], batch: Batch, steps: int, device: torch.device,
          warmup: int = 2) -> list[dict]:
    """Tokens/s of each variant: `warmup` steps each (allocator, kernels, compile), then
    `steps` rounds of one timed step of every variant in turn, so that a slow spell of a
    shared machine falls on all of them alike; each row is its median step."""
    torch._dynamo.reset()  # no graph carried over from an earlier length
    runs = [runner(v, batch, device) for v in variants]
    for step, _ in runs:
        for _ in range(warmup):
            step()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(steps):
        for (step, row), spent in zip(runs, times, strict=True):
            _sync(device)
            t0 = time.perf_counter()
            row["loss"] = step()
            _sync(device)
            spent.append(time.perf_counter() - t0)
    real = int(batch.lengths.sum())
    rows = []
    for (_, row), spent in zip(runs, times, strict=True):
        median = statistics.median(spent)
        rows.append(row | {"seconds_per_step": median, "tokens_per_s": real / median})
    return rows


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
        kinds = [(sparse, False), (sparse, True), ("dense", False)]
        if device.type != "cpu":  # the clock order is the CPU executor's
            kinds.remove((sparse, True))
        rows += bench([Variant(kind, precision, compile, plain)
                       for precision, compile in modes for kind, plain in kinds],
                      batch, args.steps, device)
    print_throughput(rows, device)
    if args.no_mask_table:
        if args.json:
            write_json(args.json, {"device": str(device), "rows": rows})
        return
    B, T = args.mask_shape
    masks = mask_table(songs, B, T)
    step_rows = args.mask_step_rows or (B if device.type == "cuda" else 1)
    step = None if args.no_mask_step else bench(
        [Variant(sparse, compile=args.compile)], make_batch(songs, T, step_rows), 1, device,
        warmup=0 if device.type == "cpu" else 1)[0]
    print_mask_table(masks, step)
    if args.json:
        write_json(args.json, {"device": str(device), "rows": rows, "mask": masks,
                               "mask_step": step, "summary": summary(rows, masks, step)})


def print_throughput(rows: list[dict], device: torch.device) -> None:
    """One line per row: its speed against the fp32-eager row of the same attention and
    length, and its step time against the dense row of the same mode and length."""
    print(f"MeloFormer small, training step on {device} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f}; median step")
    print(f"{'T':>6}{'B':>4}  {'mode':<15}{'attention':<10}{'s/step':>9}{'tokens/s':>11}"
          f"{'vs fp32 eager':>15}{'sparse/dense time':>19}")
    for r in rows:
        base = _find(rows, r["T"], "fp32 eager", r["attention"])
        dense = _find(rows, r["T"], r["mode"], "dense")
        print(f"{r['T']:>6}{r['B']:>4}  {r['mode']:<15}{r['attention']:<10}"
              f"{r['seconds_per_step']:>9.3f}{r['tokens_per_s']:>11.0f}"
              f"{r['tokens_per_s'] / base['tokens_per_s']:>14.2f}x"
              f"{r['seconds_per_step'] / dense['seconds_per_step']:>18.2f}")


def _find(rows: list[dict], T: int, mode: str, attention: str) -> dict:
    return next(r for r in rows if (r["T"], r["mode"], r["attention"]) == (T, mode, attention))


def summary(rows: list[dict], masks: list[dict], step: dict | None) -> list[dict]:
    """The rows bench/gpu.sh tabulates: sparse vs dense training tokens/s per length, and
    (with the step beside it) the mask plan's build time against the step's time: speedup =
    step / plan, the loader workers one step's plan needs is 1 / speedup."""
    out = [
        {
            "bench": "train",
            "case": f"small T={sp['T']} B={sp['B']} {sp['mode']} {sp['attention']}",
            "sparse": sp["tokens_per_s"],
            "baseline": de["tokens_per_s"],
            "unit": "tok/s",
            "speedup": sp["tokens_per_s"] / de["tokens_per_s"],
        }
        for sp in rows if sp["attention"] != "dense"
        for de in [_find(rows, sp["T"], sp["mode"], "dense")]
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
