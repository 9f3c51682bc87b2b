"""Training output on rank 0: train.log, TensorBoard scalars, a progress line, and the files
DVC reads (<metrics_dir>/train.json, the resolved config beside it in train_config.json, and
the loss curve <metrics_dir>/plots/train_loss.tsv)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from meloformer.data.progress import Progress
from meloformer.io import write_json, write_text

METRICS_FILE = Path("train.json")
# The resolved config is not a metric: as a file of its own it stays out of `dvc metrics show`.
CONFIG_FILE = Path("train_config.json")
CURVE_FILE = Path("plots") / "train_loss.tsv"


class TrainLogger:
    """Writes a run's logs under `out_dir`; every method is a no-op when `enabled` is False.

    Args:
        out_dir: the run's output directory (train.log, tb/).
        enabled: False on ranks other than 0.
        total_steps: for the progress line.
        metrics_dir: receives METRICS_FILE and CURVE_FILE (default out_dir/metrics).
    """

    def __init__(self, out_dir: Path, enabled: bool, total_steps: int,
                 metrics_dir: Path | None = None) -> None:
        self.out_dir, self.enabled = Path(out_dir), enabled
        self.metrics_dir = Path(metrics_dir) if metrics_dir else self.out_dir / "metrics"
        self.log = logging.getLogger(f"meloformer.train.{id(self)}")
        self.log.propagate = False
        self.tb = None
        self.progress = Progress(total_steps, "train", sys.stderr if enabled else None,
                                 unit="steps")
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log.setLevel(logging.INFO)
        fmt = logging.Formatter("%(asctime)s %(message)s")
        for handler in (logging.FileHandler(self.out_dir / "train.log"),
                        logging.StreamHandler(sys.stdout)):
            handler.setFormatter(fmt)
            self.log.addHandler(handler)
        from torch.utils.tensorboard import SummaryWriter  # only rank 0 pays the import

        self.tb = SummaryWriter(str(self.out_dir / "tb"))

    def line(self, text: str) -> None:
        """One line to train.log and stdout."""
        if self.enabled:
            self.log.info(text)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """TensorBoard scalars under train/<name>, and the progress line."""
        if not self.enabled:
            return
        for name, value in values.items():
            self.tb.add_scalar(f"train/{name}", value, step)
        self.progress(step)

    def write_outputs(self, summary: dict[str, Any], config: dict[str, Any],
                      history: list[tuple]) -> None:
        """train.json (summary), train_config.json (the resolved config) and the loss curve:
        (step, loss, lr, grad norm) rows."""
        if not self.enabled:
            return
        write_json(self.metrics_dir / METRICS_FILE, summary)
        write_json(self.metrics_dir / CONFIG_FILE, config)
        rows = "".join(f"{s}\t{loss:.7f}\t{lr:.6e}\t{g:.6f}\n" for s, loss, lr, g in history)
        write_text(self.metrics_dir / CURVE_FILE, "step\tloss\tlr\tgrad_norm\n" + rows)

    def close(self) -> None:
        """Flush and close every sink."""
        if not self.enabled:
            return
        self.progress.close()
        self.tb.close()
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)
