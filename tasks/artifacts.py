"""Prefect artifacts of a pipeline run, under fixed keys so the UI and `prefect artifact ls`
show their history: the report (markdown: metrics table + samples with links), the metrics
(table) and training progress (a progress artifact updated while the train task runs)."""

from __future__ import annotations

import contextvars
import re
import threading
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from meloformer.report import metric_rows, number

REPORT_KEY = "meloformer-report"
METRICS_KEY = "meloformer-eval-metrics"
PROGRESS_KEY = "meloformer-train-progress"


def report_markdown(metrics: dict, samples: Path, page: Path) -> str:
    """The run's metrics as a markdown table, then each sample with links to its files."""
    lines = [f"# MeloFormer run\n\nListening page: [{page}]({page.resolve().as_uri()})\n",
             "## Evaluation\n", "| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {number(value)} |" for name, value in metric_rows(metrics)]
    lines.append("\n## Samples\n")
    for mid in sorted(Path(samples).glob("sample-*.mid")):
        links = [f"[{kind}]({mid.with_suffix(suffix).resolve().as_uri()})"
                 for kind, suffix in (("MIDI", ".mid"), ("audio", ".ogg"),
                                      ("piano roll", ".png"))
                 if mid.with_suffix(suffix).is_file()]
        lines.append(f"- {mid.stem}: " + " · ".join(links))
    return "\n".join(lines) + "\n"


@task
def publish_report(metrics: dict, samples: Path, page: Path) -> tuple[UUID, UUID]:
    """The markdown report and the metrics table artifacts of this run."""
    markdown = create_markdown_artifact(report_markdown(metrics, samples, page), key=REPORT_KEY,
                                        description="evaluation metrics and the samples")
    rows = [{"metric": name, "value": value} for name, value in metric_rows(metrics)]
    table = create_table_artifact(rows, key=METRICS_KEY, description="metrics/eval.json")
    return markdown, table


STEPS_TOTAL = re.compile(r", (\d+) steps \(")  # the run's first train.log line
STEP_DONE = re.compile(r"Step (\d+): ")


class TrainProgress:
    """A progress artifact (0-100 %, steps done / total) kept current while training runs,
    read from the lines train.log gains (the library knows nothing of Prefect).

    Use around the train task, inside a flow: `with TrainProgress(log): train(...)`.
    """

    def __init__(self, log: Path, every_s: float = 2.0) -> None:
        self.log, self.every_s = Path(log), every_s
        self.offset = self.log.stat().st_size if self.log.exists() else 0  # appends only
        self.total, self.percent = 0, 0.0
        self.stop = threading.Event()

    def __enter__(self) -> TrainProgress:
        self.id = create_progress_artifact(0.0, key=PROGRESS_KEY,
                                           description="training: steps done / total")
        ctx = contextvars.copy_context()  # the thread talks to this run's Prefect API
        self.thread = threading.Thread(target=ctx.run, args=(self.watch,), daemon=True)
        self.thread.start()
        return self

    def watch(self) -> None:
        while not self.stop.wait(self.every_s):
            self.poll()

    def poll(self) -> None:
        """Read the new log lines; update the artifact when the percentage moved."""
        if not self.log.exists():
            return
        with self.log.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        data = data[:data.rfind(b"\n") + 1]  # whole lines only: the last may be half written
        self.offset += len(data)
        text = data.decode(errors="replace")
        for line in text.splitlines():
            if found := STEPS_TOTAL.search(line):
                self.total = int(found.group(1))
            elif (found := STEP_DONE.search(line)) and self.total:
                self.set(100.0 * min(int(found.group(1)), self.total) / self.total)

    def set(self, percent: float) -> None:
        if percent != self.percent:
            self.percent = percent
            update_progress_artifact(self.id, percent)

    def __exit__(self, kind, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.poll()
        if kind is None:
            self.set(100.0)  # done, whatever the last logged step was
