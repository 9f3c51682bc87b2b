"""Attention benchmark: MeloFormer's sparse attention (compiled flex + BlockMask, bar-major)
against dense causal SDPA, on real multitrack songs, with block densities.

    python bench/attention.py [--device cpu|cuda] [--json OUT]

CPU: forward only (flex has no CPU backward). CUDA: forward + backward, bf16.
density = non-empty blocks / causal blocks of T (summary rows and columns included);
rr_density = the regular x regular part only; mask_s = building layout + BlockMask.
"""

from __future__ import annotations

import sys

# Python put bench/ first on sys.path; move it last so a bench script's name (tokenize.py)
# cannot shadow a standard-library module.
sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import load_songs, print_table, real_batch, timeit, write_json  # noqa: E402

from meloformer.model.attention import build_masks, flex_compiled  # noqa: E402
from meloformer.model.config import ModelConfig  # noqa: E402

COLUMNS = [
    "T",
    "block",
    "L",
    "mask_s",
    "density",
    "rr_density",
    "full",
    "flex_s",
    "sdpa_s",
    "speedup",
    "dens_mean",
    "dens_min",
    "dens_max",
]


def sparse_mask(batch, cfg: ModelConfig):
    """Layout and BlockMask of one batch, exactly as MeloFormer.plan builds them for flex."""
    lay, block_mask, _ = build_masks(batch, cfg, "flex")
    return lay, block_mask


def densities(block_mask, T: int, block: int) -> dict:
    """Non-empty and full blocks relative to the causal blocks of T."""
    nb = -(-T // block)
    causal = nb * (nb + 1) / 2
    dense = block_mask.to_dense()[0, 0].bool()
    full = int(block_mask.full_kv_num_blocks.sum())
    return {
        "density": float(dense.sum()) / causal,
        "rr_density": float(dense[:nb, :nb].sum()) / causal,
        "full": full,
    }


def time_pair(lay, block_mask, cfg: ModelConfig, T: int, args) -> dict:
    """Best time of flex (sparse) and causal SDPA on random q/k/v of the benchmark shape."""
    dev, dtype = args.device, torch.bfloat16 if args.device == "cuda" else torch.float32
    H, KV, D = cfg.n_head, cfg.n_kv_head, cfg.head_dim
    backward = dev == "cuda"

    def tensors(n):
        return [
            torch.randn(1, h, n, D, device=dev, dtype=dtype, requires_grad=backward)
            for h in (H, KV, KV)
        ]

    sparse, causal = tensors(lay.length), tensors(T)

    def run_flex():
        out = flex_compiled(*sparse, block_mask=block_mask, enable_gqa=True)
        if backward:
            out.sum().backward()

    def run_sdpa():
        out = F.scaled_dot_product_attention(*causal, is_causal=True, enable_gqa=True)
        if backward:
            out.sum().backward()

    repeats = args.repeats if T <= 8192 else max(1, args.repeats // 2)
    with torch.set_grad_enabled(backward):
        flex_s, sdpa_s = timeit(run_flex, repeats, dev), timeit(run_sdpa, repeats, dev)
    return {"flex_s": flex_s, "sdpa_s": sdpa_s, "speedup": sdpa_s / flex_s, "backward": backward}


def survey(songs, T: int, cfg: ModelConfig, device: str) -> dict:
    """Density over every benchmark song long enough for T (bar-window crops)."""
    values = []
    for song in songs:
        if len(song) >= T:
            lay, blocks = sparse_mask(real_batch([song], T, device), cfg)
            values.append(densities(blocks, T, cfg.block_size)["density"])
    if not values:
        return {}
    return {"dens_mean": statistics.mean(values), "dens_min": min(values), "dens_max": max(values)}


def model_step(songs, T: int, args) -> list[dict]:
    """Training tokens/s of a whole model (fwd + bwd + AdamW), sparse executor vs dense."""
    from meloformer.model.transformer import MeloFormer

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
    parser.add_argument("--blocks", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--size", default="base", help="model size whose heads are used")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="also time a training step of this model size")
    parser.add_argument("--model-length", type=int, default=8192)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    songs = load_songs()
    rows, model_rows = [], []
    for T in args.lengths:
        batch = real_batch(songs, T, args.device)
        for block in args.blocks:
            rows.append(attention_row(songs, batch, T, block, args))
            print_table(rows[-1:], COLUMNS)
            save(args, rows, model_rows)  # after every row: a timeout keeps what was measured
    kind = "fwd+bwd bf16" if args.device == "cuda" else "fwd fp32"
    print(f"\nattention ({args.size} heads, {args.device}, {kind}):")
    print_table(rows, COLUMNS)
    if args.model:
        model_rows = model_step(songs, args.model_length, args)
        print(f"\ntraining step ({args.device}):")
        print_table(model_rows, ["model", "T", "executor", "step_s", "tok_per_s", "speedup"])
        save(args, rows, model_rows)


def attention_row(songs, batch, T: int, block: int, args) -> dict:
    """Mask build time, densities and timings of one (length, block size)."""
    cfg = ModelConfig.from_name(args.size, block_size=block)
    start = time.perf_counter()
    lay, block_mask = sparse_mask(batch, cfg)
    row = {"T": T, "block": block, "L": lay.length, "mask_s": time.perf_counter() - start}
    row |= densities(block_mask, T, block)
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
    unit = "s fwd+bwd" if rows and rows[0].get("backward") else "s fwd"
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
