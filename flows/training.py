"""Flow training: the train stage on the validated shards (writes the dvc.yaml `train` outs).

`python -m flows.training` runs it on params.yaml with the dvc.yaml paths.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.params import load_params
from tasks.train import configs, train


@flow(name="training", log_prints=True)
def training(params, data_dir: Path, out_dir: Path, device: str = "auto") -> dict:
    """Shards in `data_dir` -> checkpoint, logs, metrics and plots in `out_dir`."""
    cfg, model_cfg = configs(params)
    summary = train(cfg, model_cfg, data_dir, out_dir, device)
    print(summary)
    return summary


if __name__ == "__main__":
    training(load_params(), Path("data/processed"), Path("models/train"))
