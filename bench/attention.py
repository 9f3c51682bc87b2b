"""Attention benchmark: MeloFormer's sparse attention (compiled flex + BlockMask, bar-major)
against dense causal SDPA, on real multitrack songs, with block densities.

    python -m bench.attention [--device cpu|cuda] [--json OUT]

CPU: forward only (flex has no CPU backward). CUDA: forward + backward, bf16.
density = non-empty blocks / causal blocks of T (summary rows and columns included), split
into quadrants: rr (regular queries x regular keys), rs (regular x summary), sr (summary x
regular), ss (summary x summary); bound = the least density any key order could reach with
these query blocks (each block reads at least the union of its rows' keys); summ = summary
slot order; mask_s = building layout + BlockMask. Default blocks: 128 and 64 (the CUDA
sizes) and, on CPU, 16 (ModelConfig.cpu_block_size).

free_s / ceiling: the same flex call with every non-empty block marked full, so the kernel
computes exactly the same tiles but never evaluates the mask_mod (the output is wrong; only the
time matters). ceiling = sdpa_s / free_s is the most any cheaper mask_mod could give at this
block density: the part of the target that the kernel, not the mask, decides. On by default
on CPU; --ceiling on CUDA (one more compile per row, which bench/gpu.sh's budget leaves out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, noop_mask

from bench.common import load_songs, print_table, real_batch, timeit, write_json
from meloformer.model import (
    ModelConfig,
    block_mask,
    build_plan,
    flex_block_size,
    flex_compiled,
    from_block_maps,
    mask_features,
    meloformer_mask,
    segment_dense_mask,
    summary_order,
)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
COLUMNS = [
    "T",
    "block",
    "summ",
    "L",
    "mask_s",
    "density",
    "bound",
    "rr",
    "rs",
    "sr",
    "ss",
    "full",
    "flex_s",
    "sdpa_s",
    "speedup",
    "free_s",
    "ceiling",
    "dens_mean",
    "dens_min",
    "dens_max",
]


def sparse_mask(batch, cfg: ModelConfig):
    """Layout and BlockMask of one batch, as the training loader builds them for flex: the
    MaskPlan on the CPU, then moved to the batch's device and wrapped."""
    plan = build_plan(batch.to("cpu"), cfg, "flex", batch.device).to(batch.device)
    return plan.layout, block_mask(plan, cfg)


def densities(block_mask, T: int, block: int) -> dict:
    """Non-empty and full blocks relative to the causal blocks of T, with the quadrants
    (regular rows/columns are the first T // block blocks; T is a multiple of block)."""
    nb = -(-T // block)
    causal = nb * (nb + 1) / 2
    dense = block_mask.to_dense()[0, 0].bool()
    quadrants = {
        "rr": dense[:nb, :nb],
        "rs": dense[:nb, nb:],
        "sr": dense[nb:, :nb],
        "ss": dense[nb:, nb:],
    }
    out = {name: float(part.sum()) / causal for name, part in quadrants.items()}
    return out | {
        "density": float(dense.sum()) / causal,
        "full": int(block_mask.full_kv_num_blocks.sum()),
    }


def key_bound(lay, cfg: ModelConfig, T: int, block: int) -> float:
    """Lower bound on `density` for this query blocking: every query block must read at
    least the union of its rows' allowed keys, even if keys could be packed perfectly per
    query block. Sum of union sizes x block / causal area of T (same unit as density)."""
    mask = segment_dense_mask(meloformer_mask(lay, cfg), mask_features(lay, cfg), lay.clock)
    rows = mask[0, 0]  # (L, L) in execution order
    keys = sum(int(rows[q0 : q0 + block].any(0).sum()) for q0 in range(0, lay.length, block))
    nb = T // block
    return keys * block / (nb * (nb + 1) / 2 * block * block)


def all_full(block_mask: BlockMask) -> BlockMask:
    """The same non-empty blocks, every one marked full: the kernel runs the same tiles but
    never calls the mask_mod (a timing device for the ceiling column, not a mask)."""
    nonempty = block_mask.to_dense()[:, 0].bool()  # (B, nq, nk)
    return from_block_maps(nonempty, nonempty, block_mask.BLOCK_SIZE, noop_mask)


def time_pair(lay, block_mask, cfg: ModelConfig, T: int, args) -> dict:
    """Best times of flex (sparse), flex without mask evaluation (free) and causal SDPA on
    random q/k/v of the benchmark shape."""
    dev, dtype = args.device, DTYPES[args.dtype]
    H, KV, D = cfg.n_head, cfg.n_kv_head, cfg.head_dim
    backward = dev == "cuda"

    def tensors(n):
        return [
            torch.randn(1, h, n, D, device=dev, dtype=dtype, requires_grad=backward)
            for h in (H, KV, KV)
        ]

    sparse, causal = tensors(lay.length), tensors(T)

    def run_flex(mask=block_mask):
        out = flex_compiled(*sparse, block_mask=mask, enable_gqa=True)
        if backward:
            out.sum().backward()

    def run_sdpa():
        out = F.scaled_dot_product_attention(*causal, is_causal=True, enable_gqa=True)
        if backward:
            out.sum().backward()

    repeats = args.repeats if T <= 8192 else max(1, args.repeats // 2)
    with torch.set_grad_enabled(backward):
        flex_s, sdpa_s = timeit(run_flex, repeats, dev), timeit(run_sdpa, repeats, dev)
        row = {"flex_s": flex_s, "sdpa_s": sdpa_s, "speedup": sdpa_s / flex_s}
        if args.ceiling:
            free = all_full(block_mask)
            row["free_s"] = timeit(lambda: run_flex(free), repeats, dev)
            row["ceiling"] = sdpa_s / row["free_s"]
    return row | {"backward": backward}


def survey(songs, T: int, cfg: ModelConfig, device: str) -> dict:
    """Density over every benchmark song long enough for T (bar-window crops)."""
    values = []
    for song in songs:
        if len(song) >= T:
            lay, blocks = sparse_mask(real_batch([song], T, device), cfg)
            block = flex_block_size(cfg, device)
            values.append(densities(blocks, T, block)["density"])
    if not values:
        return {}
    return {"dens_mean": statistics.mean(values), "dens_min": min(values), "dens_max": max(values)}


def model_step(songs, T: int, args) -> list[dict]:
    """Training tokens/s of a whole model (fwd + bwd + AdamW), sparse executor vs dense."""
    from meloformer.model import MeloFormer

    dev = args.device
    sparse = "flex" if dev == "cuda" else "sdpa"
    batch = real_batch(songs, T, dev)
    rows = []
    for executor in (sparse, "dense"):
        torch.manual_seed(0)
        model = MeloFormer(ModelConfig.from_name(args.model, attention=executor)).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev == "cuda")

        def step(model=model, opt=opt):
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                loss = model.loss(batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        seconds = timeit(step, args.repeats, dev)
        rows.append(
            {
                "model": args.model,
                "T": T,
                "executor": executor,
                "step_s": seconds,
                "tok_per_s": T / seconds,
            }
        )
    rows[0]["speedup"] = rows[1]["step_s"] / rows[0]["step_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096, 8192, 16384])
    parser.add_argument("--blocks", type=int, nargs="+", help="default: 128 64 (+16 on CPU)")
    parser.add_argument("--size", default="base", help="model size whose heads are used")
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument(
        "--ceiling",
        action=argparse.BooleanOptionalAction,
        help="also time flex without mask evaluation (default: on CPU only)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bound-max", type=int, default=8192, help="key bound up to this T")
    parser.add_argument("--model", help="also time a training step of this model size")
    parser.add_argument("--model-length", type=int, default=8192)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    # One compiled graph per (length, block) row: past dynamo's default limit of 8, flex
    # would silently fall back to eager (unfused, and far slower) for the later rows.
    torch._dynamo.config.recompile_limit = 64
    args.ceiling = args.device == "cpu" if args.ceiling is None else args.ceiling
    args.dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    args.blocks = args.blocks or ([128, 64] if args.device == "cuda" else [128, 64, 16])
    songs = load_songs()
    rows, model_rows = [], []
    for T in args.lengths:
        batch = real_batch(songs, T, args.device)
        for block in args.blocks:
            try:
                rows.append(attention_row(songs, batch, T, block, args))
            except (RuntimeError, AssertionError, ValueError) as e:  # OOM, compile: go on
                rows.append({"T": T, "block": block, "error": f"{type(e).__name__}: {e}"[:300]})
                print(f"T={T} block={block}: {rows[-1]['error']}", file=sys.stderr)
                continue
            print_table(rows[-1:], COLUMNS)
            save(args, rows, model_rows)  # after every row: a timeout keeps what was measured
    kind = f"fwd+bwd {args.dtype}" if args.device == "cuda" else f"fwd {args.dtype}"
    print(f"\nattention ({args.size} heads, {args.device}, {kind}):")
    print_table(rows, COLUMNS)
    if args.model:
        model_rows = model_step(songs, args.model_length, args)
        print(f"\ntraining step ({args.device}):")
        print_table(model_rows, ["model", "T", "executor", "step_s", "tok_per_s", "speedup"])
        save(args, rows, model_rows)


def attention_row(songs, batch, T: int, block: int, args) -> dict:
    """Mask build time, densities and timings of one (length, block size)."""
    cfg = ModelConfig.from_name(args.size, block_size=block, cpu_block_size=block)
    start = time.perf_counter()
    lay, block_mask = sparse_mask(batch, cfg)
    row = {"T": T, "block": block, "summ": summary_order(cfg, block), "L": lay.length}
    row["mask_s"] = time.perf_counter() - start
    row |= densities(block_mask, T, block)
    if args.bound_max >= T:
        row["bound"] = key_bound(lay, cfg, T, block)
    row |= time_pair(lay, block_mask, cfg, T, args)
    return row | survey(songs, T, cfg, args.device)


def save(args, rows: list[dict], model_rows: list[dict]) -> None:
    """Write the JSON (--json) with the summary rows bench/gpu.sh tabulates."""
    if args.json:
        payload = {
            "bench": "attention",
            "device": args.device,
            "rows": rows,
            "model_rows": model_rows,
            "summary": summary(rows, model_rows),
        }
        write_json(args.json, payload)


def summary(rows: list[dict], model_rows: list[dict]) -> list[dict]:
    """Rows for bench/gpu.sh's final table: case, sparse, baseline, unit, speedup, density."""
    unit = "s fwd+bwd" if any(r.get("backward") for r in rows) else "s fwd"
    out = [
        {
            "bench": "attention",
            "case": f"T={r['T']} block={r['block']}",
            "sparse": r["flex_s"],
            "baseline": r["sdpa_s"],
            "unit": unit,
            "speedup": r["speedup"],
            "density": r["density"],
        }
        if "error" not in r
        else {"bench": "attention", "case": f"T={r['T']} block={r['block']} {r['error']}"}
        for r in rows
    ]
    if model_rows:
        sparse, dense = model_rows
        out.append(
            {
                "bench": "train-step",
                "case": f"{sparse['model']} T={sparse['T']}",
                "sparse": sparse["tok_per_s"],
                "baseline": dense["tok_per_s"],
                "unit": "tok/s",
                "speedup": sparse["speedup"],
            }
        )
    return out


if __name__ == "__main__":
    main()
