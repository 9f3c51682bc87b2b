"""Flow pipeline: data -> training -> generate -> evaluate -> report, writing exactly the
dvc.yaml outs, and publishing the run's Prefect artifacts (tasks/artifacts.py).

    python -m flows.pipeline                              # one run, on params.yaml
    python -m flows.pipeline --serve --cron "0 3 * * *"   # a scheduled deployment (flow.serve)

Every task writes the paths dvc.yaml declares (the params check's marker included), so
`dvc commit -f` records a run made here and a later `dvc repro` finds nothing to do.
Scheduling needs a Prefect server (`prefect server start`, PREFECT_API_URL): the temporary
one Prefect starts per process cannot run schedules.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow
from prefect.schedules import Cron, Interval, Schedule
from prefect.task_runners import ThreadPoolTaskRunner

from flows.data import data
from flows.training import training
from tasks.artifacts import publish_report
from tasks.cli import run_cli
from tasks.evaluate import EvalSummary, evaluate
from tasks.generate import generate
from tasks.params import check_params, load_params
from tasks.report import report


@dataclass(frozen=True)
class Paths:
    """The dvc.yaml outs, relative to the project root (one place for the flow)."""

    raw: Path = Path("data/raw")
    """The default of params.yaml `raw` (the flow uses the param)."""
    interim: Path = Path("data/interim")
    processed: Path = Path("data/processed")
    model: Path = Path("models/train")
    samples: Path = Path("data/samples")
    metrics: Path = Path("metrics")
    report: Path = Path("data/report")

    @property
    def checkpoint(self) -> Path:
        return self.model / "checkpoints" / "last.pt"

    @property
    def page(self) -> Path:
        """The report stage's listening page."""
        return self.report / "index.html"

    @property
    def params_ok(self) -> Path:
        """The params stage's marker."""
        return self.interim / "params.ok"

    def under(self, root: Path) -> Paths:
        """The same layout below another project root (tests run in a temp copy)."""
        return Paths(**{f.name: root / getattr(self, f.name) for f in fields(self)})


# File writes can hit transient I/O trouble (network disks, a full /tmp): retry those tasks.
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5}


@flow(name="pipeline", log_prints=True)
def pipeline(params_file: Path = Path("params.yaml"), root: Path = Path(".")) -> EvalSummary:
    """The whole chain on params_file (read at run time, so schedules pick up edits) under root.

    Returns the evaluation's headline (every metric is in metrics/eval.json).
    """
    p = Paths(raw=Path(load_params(params_file).raw)).under(root)
    print(check_params(params_file, p.params_ok))  # before anything is written
    params = load_params(params_file)
    # The subflows get the checked, frozen Params: skip Prefect's pydantic validation, which
    # in a served run's process fails to resolve the postponed `Params` annotation.
    data.with_options(validate_parameters=False)(params, [p.raw], p.interim, p.processed)
    training.with_options(validate_parameters=False)(params, p.processed, p.model, p.metrics)
    gen = generate.with_options(**IO_RETRIES)
    gen(p.checkpoint, p.samples, params.generate)
    ev = evaluate.with_options(**IO_RETRIES)
    metrics = ev(p.checkpoint, p.processed, p.samples, p.metrics, params.evaluate)
    summary = EvalSummary.of(metrics)
    print(summary.line())
    page = report.with_options(**IO_RETRIES)(p.samples, p.metrics, p.page)
    publish_report(metrics, p.samples, page)
    return summary


FIRST_RUN_S = 10.0


def schedule(cron: str, interval: float | None) -> Schedule:
    """The deployment's schedule: `cron`, or every `interval` seconds from FIRST_RUN_S on."""
    if interval is None:
        return Cron(cron)
    start = datetime.now(UTC) + timedelta(seconds=FIRST_RUN_S)
    return Interval(timedelta(seconds=interval), anchor_date=start)


def main(argv: list[str] | None = None) -> None:
    """Run once, or --serve a scheduled deployment of the pipeline."""
    ap = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--serve", action="store_true", help="register a deployment and serve it")
    ap.add_argument("--cron", default="0 3 * * *", help="schedule for --serve (cron syntax)")
    ap.add_argument("--interval", type=float, metavar="SECONDS",
                    help="--serve every SECONDS instead of --cron, the first run "
                    f"{FIRST_RUN_S:.0f} s after serving starts")
    ap.add_argument("--name", default="meloformer-nightly")
    args = ap.parse_args(argv)

    def run() -> None:
        runner = ThreadPoolTaskRunner(max_workers=load_params(args.params).preprocess.workers)
        flow_ = pipeline.with_options(task_runner=runner)
        if args.serve:
            # limit=1: runs share the workspace's files, so a late run waits for the last one
            flow_.serve(name=args.name, schedule=schedule(args.cron, args.interval), limit=1,
                        parameters={"params_file": str(args.params)})
        else:
            flow_(args.params)

    run_cli(run)


if __name__ == "__main__":
    main()
