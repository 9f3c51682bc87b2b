"""Flow training: the train stage on the validated shards (writes the dvc.yaml `train` outs).

`python -m flows.training` runs it on params.yaml with the dvc.yaml paths.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.artifacts import TrainProgress
from tasks.cli import run_cli
from tasks.params import load_params
from tasks.train import TrainSummary, configs, train


@flow(name="training", log_prints=True)
def training(params, data_dir: Path, out_dir: Path, metrics_dir: Path | None = None,
             device: str = "auto") -> TrainSummary:
    """Shards in `data_dir` -> checkpoint, logs and tb in `out_dir`; train.json and the loss
    curve in `metrics_dir` (default out_dir/metrics). Continues an interrupted run."""
    cfg, model_cfg = configs(params)
    with TrainProgress(Path(out_dir) / "train.log"):  # a progress artifact while it runs
        summary = train(cfg, model_cfg, data_dir, out_dir, device, metrics_dir=metrics_dir)
    print(summary.line())
    return summary


if __name__ == "__main__":
    run_cli(lambda: training(load_params(), Path("data/processed"), Path("models/train"),
                             Path("metrics")))
