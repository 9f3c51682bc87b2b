"""Ship a trained model: a checkpoint cut to what generation and fine-tuning read (weights,
model config, vocabulary record, corpus profile, how far it trained), in bf16.

    python -m meloformer.train.export CHECKPOINT OUT.pt [--meta DATA/meta.json]

The result loads like any checkpoint (load_trained, train.init_from; torch.load
weights_only=True): the bf16 weights are cast back to the model's fp32 when loaded. The
optimizer state, RNG and data position stay behind: a shipped model is a start, not a run to
continue (fine-tuning from it starts a fresh optimizer and run key).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from meloformer.data import read_profile
from meloformer.train.checkpoint import learned, load_checkpoint, save_checkpoint

KEEP = ("model_config", "vocab", "profile", "learned", "step", "tokens", "train_config")


def export_model(checkpoint: Path, out: Path, dtype: torch.dtype = torch.bfloat16,
                 meta: Path | None = None) -> int:
    """Write the shipped form of `checkpoint` to `out`; returns its size in bytes.

    Tied tensors (the LM head is the embedding) are written once. `meta`: the training data's
    meta.json, whose corpus profile the file gets in place of the checkpoint's own (the data
    as preprocessed now: a profile field added since the run reaches the shipped model
    without retraining); None keeps the checkpoint's.

    Raises:
        CheckpointError: the checkpoint is unreadable.
    """
    ckpt = load_checkpoint(Path(checkpoint))
    weights, seen = {}, {}
    for name, tensor in ckpt["model"].items():
        key = (tensor.data_ptr(), tensor.shape)
        if key not in seen:
            seen[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
        weights[name.removeprefix("_orig_mod.")] = seen[key]
    kept = {k: ckpt[k] for k in KEEP if ckpt.get(k) is not None}
    if learned(ckpt) is not None:  # said outright, not left to the rates of train_config
        kept["learned"] = learned(ckpt)
    if meta is not None:
        profile = read_profile(Path(meta))
        kept["profile"] = profile.to_dict() if profile else kept.get("profile")
    save_checkpoint(Path(out), {"model": weights, **kept, "complete": True})
    return Path(out).stat().st_size


def main(argv: list[str] | None = None) -> None:
    from meloformer.cli import run_cli

    ap = argparse.ArgumentParser(prog="python -m meloformer.train.export",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--meta", type=Path, help="meta.json of the training data: its corpus "
                    "profile replaces the checkpoint's")
    args = ap.parse_args(argv)
    size = run_cli(lambda: export_model(args.checkpoint, args.out, meta=args.meta))
    print(f"{args.out}: {size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
