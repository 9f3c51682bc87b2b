"""python -m meloformer.train …: parse the seed's flags and train (see loop.py).

The flags layer onto TrainConfig as: defaults (or params.yaml `train:`) < --preset < explicit
flags. Under torchrun every rank runs this; the process group comes from torchrun's
environment. Bad input (a missing --data_dir, a corrupt checkpoint) ends in one line on stderr,
exit 1; SIGINT/SIGTERM saves a checkpoint and exits 128 + the signal number.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from meloformer.cli import run_cli
from meloformer.model.config import MODEL_SIZES, ModelConfig
from meloformer.train.config import PRESETS, TrainConfig, preset_config
from meloformer.train.dist import shutdown
from meloformer.train.loop import TooManyBadSteps, train

# Flags that map one-to-one onto TrainConfig fields (default None = "not given").
FLAGS: dict[str, type] = {
    "max_seq_len": int, "batch_size": int, "gradient_accumulation_steps": int,
    "learning_rate": float, "num_workers": int, "epochs": int, "max_steps": int,
    "warmup_steps": int, "phase2_step": int, "phase3_step": int, "seed": int,
    "log_every": int, "save_every": int, "max_bad_steps": int, "chunk_songs": int,
    "infill_rate": float, "control_rate": float, "precision": str, "threads": int,
    "init_from": str,
}


def build_parser(prog: str = "python -m meloformer.train") -> argparse.ArgumentParser:
    """The seed's CLI plus --preset, --resume, --device, --model (ModelConfig overrides)."""
    ap = argparse.ArgumentParser(prog=prog, description="Train MeloFormer on HID shards.")
    ap.add_argument("--model_size", choices=sorted(MODEL_SIZES), default="small")
    ap.add_argument("--data_dir", type=Path, required=True, help="processed dir with shards/")
    ap.add_argument("--output_dir", type=Path, required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None)
    ap.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="compile the blocks (default: wherever a compiler runs)")
    ap.add_argument("--model", action="append", default=[], metavar="FIELD=VALUE",
                    help="ModelConfig override, e.g. --model attention=sdpa (repeatable)")
    for name, kind in FLAGS.items():
        ap.add_argument(f"--{name}", type=kind, default=None)
    return ap


def train_config(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """`base` with the preset, then every flag that was given, applied."""
    cfg = preset_config(args.preset, base)
    given = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    return cfg.with_overrides(**given)


def model_config(size: str, overrides: list[str]) -> ModelConfig:
    """ModelConfig.from_name(size) with FIELD=VALUE overrides (ints, floats, else strings).

    Raises:
        ValueError: an override without '=' or naming an unknown field.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--model {item!r}: expected FIELD=VALUE")
        parsed[key] = _scalar(value)
    return ModelConfig.from_name(size, **parsed)


def _scalar(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> dict:
    """Run training from command-line arguments; returns the metrics summary."""
    args = build_parser().parse_args(argv)

    def run() -> dict:
        try:
            return train(train_config(args), model_config(args.model_size, args.model),
                         args.data_dir, args.output_dir, device=args.device, resume=args.resume)
        finally:
            shutdown()

    return run_cli(run, TooManyBadSteps, ValueError)


if __name__ == "__main__":
    main()
