"""A short sweep before a long run: train a few configurations for the same number of
training tokens on one corpus and compare their val bits/note (the reference run's recipe
is picked from this table: models/pretrained/MODEL_CARD.md).

    python -m bench.sweep --data runs/dev/processed --out runs/sweep --tokens 400000 \\
        --config lr=1e-3 --config lr=2e-3 --config lr=2e-3,accum=4 --config lr=1e-3,len=2048

Each --config is a comma list of lr=, len= (max_seq_len), batch=, accum=, warmup=; every
run uses train.infill_rate and control_rate 0.5, the CPU defaults (bf16, compiled blocks)
and max_steps = tokens / (len x batch x accum). Runs are resumable (each has its own
folder), so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from meloformer.evaluate import cropped, family_loss, validation_songs
from meloformer.model import ModelConfig
from meloformer.train import TrainConfig, load_trained, resolve, train

KEYS = {"lr": ("learning_rate", float), "len": ("max_seq_len", int),
        "batch": ("batch_size", int), "accum": ("gradient_accumulation_steps", int),
        "warmup": ("warmup_steps", int)}


def parse(text: str) -> dict:
    """"lr=1e-3,len=2048" -> TrainConfig fields."""
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        name, kind = KEYS[key.strip()]
        out[name] = kind(value)
    return out


def run(data: Path, out: Path, fields: dict, tokens: int) -> dict:
    """Train one configuration (continuing its folder's run) and score it on val."""
    base = dict(max_seq_len=1024, batch_size=2, gradient_accumulation_steps=1, num_workers=0,
                phase2_step=0, phase3_step=0, log_every=25, save_every=100, epochs=100,
                warmup_steps=50, infill_rate=0.5, control_rate=0.5)
    cfg = TrainConfig(**{**base, **fields})
    per_step = cfg.max_seq_len * cfg.batch_size * cfg.gradient_accumulation_steps
    cfg = resolve(None, {"max_steps": max(1, tokens // per_step)}, base=cfg)
    t0 = time.perf_counter()
    summary = train(cfg, ModelConfig.from_name("small"), data, out, resume=True)
    seconds = time.perf_counter() - t0
    model, record = load_trained(out / "checkpoints" / "last.pt")
    songs = cropped(validation_songs(data, 48, 0), 2048, 0)
    loss = family_loss(model, songs, record.vocab().family_of, 4)
    return {"config": fields, "steps": summary["steps"], "tokens": summary["tokens"],
            "seconds": round(seconds, 1), "final_loss": round(summary["final_loss"], 4),
            "val_bits_per_note": round(loss["bits_per_note"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tokens", type=int, default=400_000)
    ap.add_argument("--config", action="append", required=True)
    args = ap.parse_args()
    rows = []
    for i, text in enumerate(args.config):
        rows.append(run(args.data, args.out / f"run-{i}", parse(text), args.tokens))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nsweep over {args.tokens:,} training tokens each; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'config':<28}{'steps':>7}{'tokens':>10}{'s':>8}{'final loss':>12}"
          f"{'val bits/note':>15}")
    best = int(np.argmin([r["val_bits_per_note"] for r in rows]))
    for i, r in enumerate(rows):
        mark = "  <- best" if i == best else ""
        print(f"{args.config[i]:<28}{r['steps']:>7}{r['tokens']:>10,}{r['seconds']:>8}"
              f"{r['final_loss']:>12}{r['val_bits_per_note']:>15}{mark}")


if __name__ == "__main__":
    main()
