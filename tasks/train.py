"""Stage train: phased training on the processed shards; checkpoint, logs, metrics, plots.

params.yaml: top-level `model_size`, `preset` and `model:` (attention rules), and the
`train:` section (TrainConfig); a non-null preset overrides the hardware keys of `train:`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import task

from meloformer.model.config import ModelConfig
from meloformer.train import TrainConfig, preset_config
from meloformer.train import train as run_train
from tasks.params import PARAMS_FILE, load_params


@task
def train(
    cfg: TrainConfig, model_cfg: ModelConfig, data_dir: Path, out_dir: Path,
    device: str = "auto", resume: bool = False,
) -> dict:
    """Train; returns the metrics summary (also written to out_dir/metrics/train.json)."""
    return run_train(cfg, model_cfg, data_dir, out_dir, device=device, resume=resume)


def configs(params) -> tuple[TrainConfig, ModelConfig]:
    """The run's TrainConfig (train: + preset) and ModelConfig (model_size + model:)."""
    return preset_config(params.preset, params.train), params.model.config(params.model_size)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.train --data_dir data/processed --out models/train."""
    ap = argparse.ArgumentParser(prog="python -m tasks.train")
    ap.add_argument("--data_dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    cfg, model_cfg = configs(load_params(args.params))
    print(run_train(cfg, model_cfg, args.data_dir, args.out, args.device, args.resume))


if __name__ == "__main__":
    main()
