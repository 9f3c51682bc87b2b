"""Flow data: discover -> preprocess (one task per shard, fanned out) -> validate.

It writes exactly the outs dvc.yaml declares for the same stages (tasks.paths.Paths), input
from params.yaml's `raw`, and skips a stage that `dvc repro` would skip, recording each stage
it runs in dvc.lock (tasks.stages). The flow only composes tasks: each returns a small typed
result (Discovered, the shard count, the preprocess summary, the validation report) that the
next one is given.

    python -m flows.data                                  # threads on this machine
    python -m flows.data --dask-workers 4                 # a temporary local Dask cluster
    python -m flows.data --dask-address tcp://host:8786   # a running Dask cluster (README)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, unmapped

import flows  # noqa: F401  (Prefect telemetry off unless set)
from flows.api import require_api
from flows.runners import task_runner
from meloformer.cli import run_cli
from meloformer.data.discover import read_summary
from tasks.discover import discover
from tasks.params import PARAMS_FILE, Params, load_params
from tasks.paths import Paths
from tasks.preprocess import finalize, preprocess_shard, shard_count
from tasks.stages import Stages
from tasks.validate import ValidationReport, validate


@flow(name="data", log_prints=True, validate_parameters=False)
def data(params: Params, paths: Paths, stages: Stages | None = None) -> ValidationReport | None:
    """MIDI under `paths.raw` -> manifest in `paths.interim` -> validated shards in
    `paths.processed`; None when validate was up to date (skipped).

    The shard tasks run on the flow's task runner (one task per whole shard); the other tasks
    run in the flow's process. `stages` decides what runs (default: every stage, no record).
    Parameters are not validated by Prefect: they arrive as the frozen, checked dataclasses.
    """
    stages = stages or Stages()
    if stages.due("discover"):
        print(discover([paths.raw], paths.interim, params.discover).summary.line())
        stages.done("discover")
    if stages.due("preprocess"):
        shards = list(range(shard_count(paths.manifest, params.preprocess)))
        built = preprocess_shard.map(unmapped(paths.manifest), unmapped(paths.processed),
                                     unmapped(params.preprocess), shards)
        built.result()  # a failed shard raises its own error here (finalize would not run)
        print(finalize(paths.manifest, paths.processed, params.preprocess, wait_for=built).line())
        stages.done("preprocess")
    if not stages.due("validate"):
        return None
    report = validate(paths.processed, params.validate, read_summary(paths.discovered))
    print(report.summary())
    stages.done("validate")
    return report


def main(argv: list[str] | None = None) -> None:
    """Run the flow on params.yaml with the dvc.yaml paths, on threads or on Dask."""
    ap = argparse.ArgumentParser(
        prog="python -m flows.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--dask-address", help="scheduler of a running Dask cluster")
    where.add_argument(
        "--dask-workers",
        type=int,
        default=0,
        help="start a local Dask cluster of N worker processes",
    )
    args = ap.parse_args(argv)

    def run() -> ValidationReport | None:
        require_api()
        params = load_params(args.params)
        runner = task_runner(params.preprocess.workers, args.dask_address, args.dask_workers)
        stages = Stages.of(args.params, Path("."))
        report = data.with_options(task_runner=runner)(params, Paths.of(params), stages)
        print(stages.summary())
        return report

    run_cli(run)


if __name__ == "__main__":
    main()
