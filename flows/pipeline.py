"""Flow pipeline: params -> data -> training -> generate -> evaluate -> report, writing exactly
the dvc.yaml outs (tasks.paths.Paths), and publishing the run's Prefect artifacts.

    python -m flows.pipeline                              # one run, on params.yaml
    python -m flows.pipeline --serve --cron "0 3 * * *"   # a scheduled deployment (flow.serve)
    python -m flows.pipeline --serve --interval 3600      # every hour, the first in 10 s

A run skips every stage `dvc repro` would skip (DVC's own status of the stage against
dvc.lock) and records each stage it runs in dvc.lock, as `dvc commit -f` would, so a scheduled
run on unchanged data and params does nothing and says so, and a later `dvc repro` finds
nothing to do. Scheduling needs a Prefect server (`prefect server start`, PREFECT_API_URL):
the temporary one Prefect starts per process cannot run schedules.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow
from prefect.schedules import Cron, Interval, Schedule
from prefect.task_runners import ThreadPoolTaskRunner

import flows  # noqa: F401  (Prefect telemetry off unless set)
from flows.api import quiet_capacity_line, require_api
from flows.data import data
from flows.training import training
from meloformer.cli import run_cli
from tasks.artifacts import publish_report
from tasks.evaluate import EvalSummary, evaluate
from tasks.generate import generate
from tasks.params import check_params, load_params
from tasks.paths import Paths
from tasks.report import report
from tasks.stages import Stages

# File writes can hit transient I/O trouble (network disks, a full /tmp): retry those tasks.
IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5}


@flow(name="pipeline", log_prints=True)
def pipeline(params_file: Path = Path("params.yaml"), root: Path = Path(".")) -> EvalSummary:
    """The whole chain on params_file (read at run time, so schedules pick up edits) under root,
    each stage only when `dvc repro` would run it.

    Returns the evaluation's headline (every metric is in metrics/eval.json).
    """
    params_file, root = Path(params_file), Path(root)  # served runs pass them unvalidated
    params = load_params(params_file)  # a bad value stops here, before anything is written
    p, stages = Paths.of(params, root), Stages.of(params_file, root)
    if stages.due("params"):
        print(check_params(params_file, p.params_ok))
        stages.done("params")
    # The subflows get the checked, frozen Params and the run's Stages (its decisions so far).
    data(params, p, stages)
    training(params, p, stages)
    if stages.due("generate"):
        generate.with_options(**IO_RETRIES)(p.checkpoint, p.samples, params.generate)
        stages.done("generate")
    if stages.due("evaluate"):
        ev = evaluate.with_options(**IO_RETRIES)
        ev(p.checkpoint, p.processed, p.samples, p.metrics, params.evaluate)
        stages.done("evaluate")
    metrics = json.loads((p.metrics / "eval.json").read_text())
    summary = EvalSummary.of(metrics)
    print(summary.line())
    if stages.due("report"):
        report.with_options(**IO_RETRIES)(p.samples, p.metrics, p.page)
        stages.done("report")
    publish_report(metrics, p.samples, p.page)
    print(stages.summary())
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
    ap = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--serve", action="store_true", help="register a deployment and serve it")
    ap.add_argument("--cron", default="0 3 * * *", help="schedule for --serve (cron syntax)")
    ap.add_argument("--interval", type=float, metavar="SECONDS",
                    help="--serve every SECONDS instead of --cron, the first run "
                    f"{FIRST_RUN_S:.0f} s after serving starts")
    ap.add_argument("--name", default="meloformer-nightly")
    args = ap.parse_args(argv)

    def run() -> None:
        require_api()
        runner = ThreadPoolTaskRunner(max_workers=load_params(args.params).preprocess.workers)
        # No pydantic validation of the parameters: in a served run's process it failed to
        # resolve the postponed `Path` annotation ("PipelineModel is not fully defined");
        # the flow converts them itself.
        flow_ = pipeline.with_options(task_runner=runner, validate_parameters=False)
        if args.serve:
            quiet_capacity_line()
            # limit=1: runs share the workspace's files, so a late run waits for the last one
            flow_.serve(name=args.name, schedule=schedule(args.cron, args.interval), limit=1,
                        parameters={"params_file": str(args.params)})
        else:
            flow_(args.params)

    run_cli(run)


if __name__ == "__main__":
    main()
