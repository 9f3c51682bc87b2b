"""Stage train: phased training on the processed shards; checkpoint, logs, metrics, plots.

params.yaml: top-level `model_size`, `preset` and `model:` (attention rules), and the
`train:` section; a key written in `train:` wins over the preset (tasks.params.Params).
Under DVC the stage continues an interrupted run (same resolved config and data) and starts
fresh otherwise, saying which in train.log.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.model import ModelConfig
from meloformer.train import TrainConfig
from meloformer.train import train as run_train
from tasks.params import PARAMS_FILE, load_params


@dataclass(frozen=True)
class TrainSummary:
    """What a training run reports (the full summary is in metrics/train.json)."""

    steps: int
    epochs_done: int
    tokens: int
    final_loss: float
    bad_steps: int

    @classmethod
    def of(cls, summary: dict) -> TrainSummary:
        return cls(int(summary["steps"]), int(summary["epochs_done"]), int(summary["tokens"]),
                   float(summary["final_loss"]), int(summary["bad_steps"]))

    def line(self) -> str:
        return (f"train: {self.steps} steps, {self.epochs_done} epochs, {self.tokens:,} tokens, "
                f"final loss {self.final_loss:.4f}, {self.bad_steps} bad steps")


@task
def train(
    cfg: TrainConfig, model_cfg: ModelConfig, data_dir: Path, out_dir: Path,
    device: str = "auto", resume: bool | str = "auto", metrics_dir: Path | None = None,
) -> TrainSummary:
    """Train (continuing an interrupted run of the same config and data, by default)."""
    return TrainSummary.of(run_train(cfg, model_cfg, data_dir, out_dir, device=device,
                                     resume=resume, metrics_dir=metrics_dir))


def configs(params) -> tuple[TrainConfig, ModelConfig]:
    """The run's TrainConfig (defaults < preset < train:) and ModelConfig (size + model:)."""
    return params.train_config(), params.model_config()


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.train --data_dir data/processed --out models/train
    --metrics metrics."""
    ap = argparse.ArgumentParser(prog="python -m tasks.train")
    ap.add_argument("--data_dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, help="dir for train.json and plots/ "
                    "(default OUT/metrics)")
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--fresh", action="store_true", help="never continue a checkpoint")
    args = ap.parse_args(argv)

    def run() -> None:
        cfg, model_cfg = configs(load_params(args.params))
        summary = run_train(cfg, model_cfg, args.data_dir, args.out, args.device,
                            resume=False if args.fresh else "auto", metrics_dir=args.metrics)
        print(TrainSummary.of(summary).line())

    run_cli(run)


if __name__ == "__main__":
    main()
