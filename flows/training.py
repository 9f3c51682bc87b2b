"""Flow training: the train stage on the validated shards (writes the dvc.yaml `train` outs,
tasks.paths.Paths), skipped when `dvc repro` would skip it (tasks.stages).

`python -m flows.training` runs it on params.yaml with the dvc.yaml paths.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

import flows  # noqa: F401  (Prefect telemetry off unless set)
from flows.api import require_api
from meloformer.cli import run_cli
from tasks.artifacts import TrainProgress
from tasks.params import PARAMS_FILE, Params, load_params
from tasks.paths import Paths
from tasks.stages import Stages
from tasks.train import TrainSummary, configs, train


@flow(name="training", log_prints=True, validate_parameters=False)
def training(params: Params, paths: Paths, stages: Stages | None = None,
             device: str = "auto") -> TrainSummary | None:
    """Shards in `paths.processed` -> checkpoint, logs and tb in `paths.model`; train.json,
    train_config.json and the loss curve in `paths.metrics`. Continues an interrupted run.
    None when the stage was up to date (skipped); `stages` default: it runs, no record."""
    stages = stages or Stages()
    if not stages.due("train"):
        return None
    cfg, model_cfg = configs(params)
    with TrainProgress(paths.model / "train.log"):  # a progress artifact while it runs
        summary = train(cfg, model_cfg, paths.processed, paths.model, device,
                        metrics_dir=paths.metrics)
    print(summary.line())
    stages.done("train")
    return summary


def main() -> None:
    """Run the flow on params.yaml with the dvc.yaml paths."""

    def run() -> TrainSummary | None:
        require_api()
        params = load_params(PARAMS_FILE)
        return training(params, Paths.of(params), Stages.of(PARAMS_FILE, Path(".")))

    run_cli(run)


if __name__ == "__main__":
    main()
