"""Attention-rule ablation: the same short training run under each rule variant, compared by
validation loss (docs/results.md, "Rule ablation").

    python -m bench.ablation --data_dir DIR --out DIR [--steps 300] [--seeds 1337 7]
                             [--variants default conductor-window ...] [--json OUT]

DIR is a preprocessed dataset (`python -m meloformer.preprocess`); the dev corpus gives a
65-song val split. Every run uses the `cpu` preset (1024 tokens, batch 2), learning rate 1e-3
with 20 warm-up steps, and the same data order for a given seed; a run whose checkpoint exists
is not trained again. Val loss is over the first 128 val songs, each cropped to 1024 tokens.
This measures quality, not speed: about 3.5 minutes a run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.common import print_table, write_json
from meloformer.evaluate import cropped, family_loss, validation_songs
from meloformer.hid import HIDConfig, vocab_for
from meloformer.model import ModelConfig
from meloformer.train import TrainConfig, load_model, resolve, train

# ModelConfig overrides of each variant ("default" is the shipped configuration).
VARIANTS: dict[str, dict] = {
    "default": {},
    "conductor-window": {"conductor_full": False},
    "type-rule": {"type_rule": True},
    "ss-history": {"summary_track_history": True},
    "empty-summaries": {"summarize_empty": True},
    "dense": {"attention": "dense"},
}


def run(name: str, seed: int, args) -> Path:
    """Train one variant (unless its checkpoint exists); returns its checkpoint."""
    out = Path(args.out) / f"{name}-s{seed}"
    checkpoint = out / "checkpoints" / "last.pt"
    if not checkpoint.exists():
        base = TrainConfig(
            max_steps=args.steps, epochs=1000, learning_rate=1e-3, warmup_steps=20, seed=seed
        )
        cfg = resolve("cpu", base=base)
        model_cfg = ModelConfig.from_name(args.size, **VARIANTS[name])
        train(cfg, model_cfg, Path(args.data_dir), out, device="cpu")
    return checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="preprocessed dataset with a val split")
    parser.add_argument("--out", required=True, help="one run directory per variant and seed")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", default="small")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    vocab = vocab_for(HIDConfig())
    songs = cropped(validation_songs(Path(args.data_dir), 128), 1024, 0)
    rows = []
    for seed in args.seeds:
        for name in args.variants:
            model = load_model(run(name, seed, args), "cpu")
            with torch.no_grad():
                loss = family_loss(model, songs, vocab.family_of)["loss"]
            rows.append({"variant": name, "seed": seed, "val_loss": loss})
    base = {r["seed"]: r["val_loss"] for r in rows if r["variant"] == "default"}
    for r in rows:
        if r["seed"] in base:
            r["vs_default"] = r["val_loss"] - base[r["seed"]]
    print(
        f"{args.size}, {args.steps} steps, val: {len(songs)} songs, "
        f"{sum(len(s.ids) for s in songs)} tokens"
    )
    print_table(rows, ["variant", "seed", "val_loss", "vs_default"])
    if args.json:
        write_json(args.json, {"bench": "ablation", "rows": rows})


if __name__ == "__main__":
    main()
