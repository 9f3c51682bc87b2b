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
from meloformer.errors import ConfigError
from meloformer.flags import add_flags, as_flag, values
from meloformer.model import MODEL_SIZES, ModelConfig
from meloformer.train.config import PRESETS, TrainConfig, resolve
from meloformer.train.dist import shutdown
from meloformer.train.loop import train


def build_parser(prog: str = "python -m meloformer.train") -> argparse.ArgumentParser:
    """The seed's CLI plus --preset, --resume, --device, --model (ModelConfig overrides), and
    one flag per TrainConfig field (`--max_seq_len`, ...; not given: the preset's value, else
    the field's default, which each flag's help states)."""
    ap = argparse.ArgumentParser(prog=prog, description="Train MeloFormer on HID shards.")
    ap.add_argument("--model_size", choices=sorted(MODEL_SIZES), default="small")
    ap.add_argument("--data_dir", type=Path, required=True, help="processed dir with shards/")
    ap.add_argument("--output_dir", type=Path, required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None)
    ap.add_argument("--resume", action="store_true", help="continue from checkpoints/last.pt")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--model", action="append", default=[], metavar="FIELD=VALUE",
                    help="ModelConfig override, e.g. --model attention=sdpa (repeatable)")
    add_flags(ap.add_argument_group("training (TrainConfig; flags win over --preset)"),
              TrainConfig, dashes=False, given_only=True)
    return ap


def _flags() -> dict[str, str]:
    """TrainConfig field -> its flag (the seed's spelling, "--max_seq_len")."""
    return {f.name: f"--{f.name}" for f in fields(TrainConfig)}


def train_config(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """`base` (default TrainConfig()) < the preset < every flag that was given.

    Raises:
        ConfigError: naming the flag whose value is out of range.
    """
    flags = _flags()
    try:
        return resolve(args.preset, values(args, flags, drop_none=True), base)
    except ConfigError as e:
        raise as_flag(e, flags) from e


def model_config(size: str, overrides: list[str]) -> ModelConfig:
    """ModelConfig.from_name(size) with FIELD=VALUE overrides (ints, floats, else strings).

    Raises:
        ConfigError: an override without '=', naming an unknown field, or out of range
            (named as "--model FIELD").
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("--model", "expected FIELD=VALUE", item)
        parsed[key] = _scalar(value)
    try:
        return ModelConfig.from_name(size, **parsed)
    except ConfigError as e:
        raise as_flag(e, {k: f"--model {k}" for k in parsed}) from e


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

    return run_cli(run)


if __name__ == "__main__":
    main()
