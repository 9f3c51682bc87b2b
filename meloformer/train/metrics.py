"""Training output on rank 0: train.log, TensorBoard scalars, a progress line, and the files
DVC reads (<metrics_dir>/train.json, the resolved config beside it in train_config.json, and
the loss curve <metrics_dir>/plots/train_loss.tsv).

Every step goes to train.log (timestamped) and TensorBoard; the terminal gets the progress bar,
the run's notes (start, phases, warnings, done) and only the step lines the loop marks as shown
(every `log_every` steps), without timestamps and above the bar."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from meloformer.io import write_json, write_text
from meloformer.progress import Progress

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
        first_step: the step a resumed run starts from (the progress rate counts from there).
        metrics_dir: receives METRICS_FILE and CURVE_FILE (default out_dir/metrics).
    """

    def __init__(self, out_dir: Path, enabled: bool, total_steps: int,
                 metrics_dir: Path | None = None, first_step: int = 0) -> None:
        self.out_dir, self.enabled = Path(out_dir), enabled
        self.metrics_dir = Path(metrics_dir) if metrics_dir else self.out_dir / "metrics"
        self.log = logging.getLogger(f"meloformer.train.{id(self)}")  # train.log
        self.term = logging.getLogger(f"meloformer.train.{id(self)}.terminal")  # stdout
        self.log.propagate = self.term.propagate = False
        self.tb = None
        self.progress = Progress(total_steps, "train", sys.stderr if enabled else None,
                                 unit="steps", first=first_step)
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sinks = ((self.log, logging.FileHandler(self.out_dir / "train.log"), "%(asctime)s "),
                 (self.term, logging.StreamHandler(sys.stdout), ""))
        for log, handler, stamp in sinks:
            log.setLevel(logging.INFO)
            handler.setFormatter(logging.Formatter(stamp + "%(message)s"))
            log.addHandler(handler)
        from torch.utils.tensorboard import SummaryWriter  # only rank 0 pays the import

        self.tb = SummaryWriter(str(self.out_dir / "tb"))

    def line(self, text: str, show: bool = True) -> None:
        """One line to train.log, and to stdout (above the progress bar) when `show`."""
        if not self.enabled:
            return
        self.log.info(text)
        if show:
            self.progress.above(lambda: self.term.info(text))

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
        for log in (self.log, self.term):
            for handler in list(log.handlers):
                handler.close()
                log.removeHandler(handler)
