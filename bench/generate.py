"""Decoding speed of the small model: KV cache vs full re-forward, at 1k and 2k context.

    python -m bench.generate [--json OUT] [--device cpu|cuda] [--batch 1] [--steps 64]

Each row: prefill a real multitrack song's first C tokens, then decode the next tokens of the
same song one at a time (teacher forcing: the model work of generation, without the sampling
choices) with the cache, and the same steps by re-running the whole model (the old way, and
Museformer's). Both paths run in this process on the same weights; the table prints them side
by side with the speedup. A last row times end-to-end constrained sampling from scratch.

The step before decoding went through the model's own Block.forward (a frozen copy, removed
since) was measured against it: docs/results.md "Decoding".
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import write_json
from meloformer.generate import (
    Cached,
    Conditions,
    FullForward,
    Request,
    SamplingConfig,
    from_scratch,
    generate,
)
from meloformer.hid import HIDConfig, encode_file, vocab_for
from meloformer.model import MeloFormer, ModelConfig

SONG = Path(__file__).resolve().parents[1] / "tests/fixtures/miditok_multitrack_drums.mid"
# The longest song of the dev corpus (227 bars, 10 tracks, 24,530 tokens): --long contexts.
LONG_SONG = (Path(__file__).resolve().parents[2] / "shared/data/midi-dev/freedoom"
             / "freedoom2_D_ROMERO.mid")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(source, ids: np.ndarray, meta: np.ndarray, context: int, steps: int,
                device: torch.device, warmup: int = 2) -> float:
    """Tokens/s of `steps` one-token steps after a `context`-token prefill and `warmup`
    untimed steps (compilation, allocator)."""
    source.prefill(ids[:, :context], meta[:, :context])
    for i in range(context, context + warmup):
        source.decode_one_token(ids[:, i : i + 1], meta[:, i : i + 1])
    sync(device)
    t0 = time.perf_counter()
    for i in range(context + warmup, context + warmup + steps):
        source.decode_one_token(ids[:, i : i + 1], meta[:, i : i + 1])
    sync(device)
    return steps * ids.shape[0] / (time.perf_counter() - t0)


def cached_vs_full(model: MeloFormer, ids: np.ndarray, meta: np.ndarray, context: int,
                   steps: int, compile: bool) -> float:
    """Largest |cached - full forward| over the logits of a prefill and `steps` decode steps,
    relative to the largest |full forward| logit (the oracle check, on this device/dtype)."""
    length = context + steps + 1
    cached = Cached(model, ids.shape[0], length, length // 2 + 1, compile=compile)
    full = FullForward(model)
    diff = scale = 0.0
    for i in [None, *range(context, context + steps)]:
        if i is None:
            a = cached.prefill(ids[:, :context], meta[:, :context])
            b = full.prefill(ids[:, :context], meta[:, :context])
        else:
            step = (ids[:, i : i + 1], meta[:, i : i + 1])
            a, b = cached.decode_one_token(*step), full.decode_one_token(*step)
        # Read now: a CUDA-graphed step's output is overwritten by the next replay.
        diff = max(diff, float((a.float() - b.float()).abs().max()))
        scale = max(scale, float(b.float().abs().max()))
    return diff / scale


def long_context(model: MeloFormer, contexts: list[int], steps: int, device: torch.device,
                 baseline: bool) -> list[dict]:
    """Prefill tokens/s, then decode tokens/s of `steps` teacher-forced steps, at each
    context of LONG_SONG (a context past the song is cut to what leaves room for the steps),
    with the process's peak resident memory after each. The current step runs first at
    every context (ascending: the peak so far is that row's), then, with `baseline`, the
    whole-range step (whose peak is then at least the current one's)."""
    modes = [("gathered", True)] + ([("whole range", False)] if baseline else [])
    ids, meta = song_arrays(LONG_SONG)  # read once for every mode
    return [row | {"mode": name} for name, sparse in modes for row in
            _long_rows(model, ids, meta, contexts, steps, device, sparse)]


def song_arrays(path: Path, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A song's ids (B, L) and metas (B, L, 5), int64, the same song in each of `batch` rows."""
    song = encode_file(path)
    meta = np.stack([song.track, song.bar, song.type, song.pos, song.program], -1)
    return (np.repeat(song.ids[None].astype(np.int64), batch, 0),
            np.repeat(meta[None].astype(np.int64), batch, 0))


def _long_rows(model: MeloFormer, ids: np.ndarray, meta: np.ndarray, contexts: list[int],
               steps: int, device: torch.device, sparse: bool) -> list[dict]:
    rows = []
    for context in sorted(contexts):
        C = min(context, ids.shape[1] - steps - 2)
        source = Cached(model, 1, C + steps + 2, (C + steps + 2) // 2 + 1, sparse=sparse)
        t0 = time.perf_counter()
        source.prefill(ids[:, :C], meta[:, :C])
        sync(device)
        prefill = C / (time.perf_counter() - t0)
        source.decode_one_token(ids[:, C : C + 1], meta[:, C : C + 1])  # warm-up
        t0 = time.perf_counter()
        for i in range(C + 1, C + 1 + steps):
            source.decode_one_token(ids[:, i : i + 1], meta[:, i : i + 1])
        sync(device)
        rows.append({"context": C, "prefill_tok_s": prefill,
                     "decode_tok_s": steps / (time.perf_counter() - t0),
                     "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20})
    return rows


def end_to_end(model: MeloFormer, batch: int, device: torch.device, compile: bool) -> float:
    """Tokens/s of constrained sampling from scratch (grammar + sampling + cache)."""
    vocab = vocab_for(HIDConfig())
    req = Request(from_scratch(vocab, [128, 33, 0, 73]), Conditions(n_bars=16, max_tokens=1024),
                  SamplingConfig(top_p=0.95, seed=0), n_samples=batch)
    sync(device)
    t0 = time.perf_counter()
    songs = generate(model, vocab, req, compile=compile)
    sync(device)
    return sum(len(s.ids) for s in songs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--full-steps", type=int, default=4, help="full re-forward steps timed")
    ap.add_argument("--contexts", default="1024,2048")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--compile", action="store_true", help="compiled decode step (GPU)")
    ap.add_argument("--long", default="",
                    help="also prefill/decode at these contexts of the corpus's longest song, "
                         "e.g. 8192,16384,25000 (needs ../shared/data/midi-dev)")
    ap.add_argument("--long-steps", type=int, default=32, help="decode steps timed per --long row")
    ap.add_argument("--long-baseline", action="store_true",
                    help="also time --long with the whole-range step (before gathering)")
    ap.add_argument("--check", action="store_true",
                    help="first check cached decode == full forward (exit 1 if not)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig.from_name("small")).to(device, getattr(torch, args.dtype))
    model.eval()
    ids, meta = song_arrays(SONG, args.batch)
    rows, check = [], None
    if args.check:  # bf16 logits carry ~3 significant digits; fp32 agree to ~1e-6
        tol = 2e-2 if args.dtype == "bfloat16" else 1e-4
        rel = cached_vs_full(model, ids, meta, 64, 8, args.compile)
        check = {"max_rel_diff": rel, "tolerance": tol, "ok": rel <= tol}
        print(f"cached decode vs full forward: max |diff| / max |logit| = {rel:.2e} "
              f"(tolerance {tol:.0e}): {'ok' if check['ok'] else 'FAILED'}")
    for context in (int(c) for c in args.contexts.split(",")):
        length = context + args.steps + 3
        cached = Cached(model, args.batch, length, length // 2 + 1, compile=args.compile)
        fast = timed_steps(cached, ids, meta, context, args.steps, device)
        slow = timed_steps(FullForward(model, "sdpa"), ids, meta, context, args.full_steps,
                           device, warmup=1)
        rows.append({"context": context, "cached_tok_s": fast, "full_tok_s": slow,
                     "speedup": fast / slow})
    long_rows = None
    if args.long:
        if LONG_SONG.exists():
            long_rows = long_context(model, [int(c) for c in args.long.split(",")],
                                     args.long_steps, device, args.long_baseline)
        else:
            print(f"--long skipped: {LONG_SONG} not found")
    e2e = end_to_end(model, args.batch, device, args.compile)
    report = {"model": "small", "device": str(device), "dtype": args.dtype,
              "compile": args.compile,
              "batch": args.batch, "threads": torch.get_num_threads(), "rows": rows,
              "end_to_end_tok_s": e2e, "check": check, "long": long_rows}
    print(f"small, {device} ({args.dtype}), batch {args.batch}, compile {args.compile}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'context':>8} {'cached tok/s':>13} {'full tok/s':>11} {'speedup':>8}")
    for r in rows:
        print(f"{r['context']:>8} {r['cached_tok_s']:>13.1f} "
              f"{r['full_tok_s']:>11.2f} {r['speedup']:>7.1f}x")
    print(f"end-to-end constrained sampling from scratch: {e2e:.1f} tok/s")
    if long_rows:
        print(f"\n{LONG_SONG.name}, batch 1: prefill, then {args.long_steps} decode steps")
        print(f"{'step':>12} {'context':>8} {'prefill tok/s':>14} {'decode tok/s':>13} "
              f"{'peak RSS GB':>12}")
        for r in long_rows:
            print(f"{r['mode']:>12} {r['context']:>8} {r['prefill_tok_s']:>14.0f} "
                  f"{r['decode_tok_s']:>13.1f} {r['peak_rss_gb']:>12.2f}")
    if args.json:
        write_json(args.json, {**report, "summary": summary(report)})
    if check is not None and not check["ok"]:
        sys.exit(1)


def summary(report: dict) -> list[dict]:
    """The rows bench/gpu.sh tabulates: cached ("sparse") vs full re-forward ("baseline")."""
    case = f"small b{report['batch']}{' compiled' if report['compile'] else ''}"
    rows = [{"bench": "generate", "case": f"{case} ctx {r['context']}",
             "sparse": r["cached_tok_s"], "baseline": r["full_tok_s"], "unit": "tok/s",
             "speedup": r["speedup"]} for r in report["rows"]]
    if report["check"]:  # "speedup" here = tolerance / error: >= 1 passes
        c = report["check"]
        rows.append({"bench": "generate", "case": f"{case} cached==full {report['dtype']} "
                     f"{'ok' if c['ok'] else 'FAILED'}", "sparse": c["max_rel_diff"],
                     "baseline": c["tolerance"], "unit": "rel diff",
                     "speedup": c["tolerance"] / max(c["max_rel_diff"], 1e-12)})
    return rows


if __name__ == "__main__":
    main()
