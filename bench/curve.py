"""A training run's curve: val bits/note of each checkpoint it kept (train.keep_every), as a
table of steps, training tokens and val loss, measured the way the evaluate stage measures.

    python -m bench.curve runs/reference2/checkpoints --data runs/dev/processed \\
        [--out runs/reference2/curve.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from meloformer.device import autocast_dtype, use_cpu_threads
from meloformer.evaluate import EvaluateConfig, cropped, family_loss, validation_songs
from meloformer.train import LAST, load_checkpoint, load_trained


def checkpoints(folder: Path) -> list[Path]:
    """The kept step-*.pt checkpoints in step order, then last.pt (when present)."""
    kept = sorted(folder.glob("step-*.pt"))
    return kept + [p for p in [folder / LAST] if p.exists()]


def curve(folder: Path, data: Path, cfg: EvaluateConfig) -> list[dict]:
    """One row per checkpoint: step, training tokens, val loss (nats/token) and bits/note on
    the same `cfg.max_songs` val songs (first cfg.max_tokens tokens each)."""
    songs = cropped(validation_songs(data, cfg.max_songs, cfg.seed), cfg.max_tokens, cfg.seed)
    dtype = autocast_dtype(cfg.precision, torch.device("cpu"))
    rows = []
    for path in checkpoints(folder):
        ckpt = load_checkpoint(path)
        model, record = load_trained(path)
        loss = family_loss(model, songs, record.vocab().family_of, cfg.batch_size, dtype)
        rows.append({"checkpoint": path.name, "step": int(ckpt["step"]),
                     "tokens": int(ckpt["tokens"]), "val_loss": loss["loss"],
                     "bits_per_note": loss["bits_per_note"]})
        print(f"{path.name:<18}{rows[-1]['step']:>8}{rows[-1]['tokens'] / 1e6:>10.2f}"
              f"{loss['loss']:>10.3f}{loss['bits_per_note']:>10.2f}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a run's checkpoints/ folder")
    ap.add_argument("--data", type=Path, required=True, help="preprocessed data (val split)")
    ap.add_argument("--out", type=Path, help="also write the rows here as JSON")
    args = ap.parse_args()
    use_cpu_threads()
    print(f"{'checkpoint':<18}{'step':>8}{'tokens M':>10}{'val loss':>10}{'bits/note':>10}")
    rows = curve(args.folder, args.data, EvaluateConfig())
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
