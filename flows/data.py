"""Flow data: discover -> preprocess (one task per shard, fanned out) -> validate.

It writes exactly the outs dvc.yaml declares for the same stages, so `dvc commit` can record a
run made here. The flow only composes tasks: each returns a small typed result (Discovered,
the shard count, the preprocess summary, the validation report) that the next one is given.

    python -m flows.data                                  # threads on this machine
    python -m flows.data --dask-workers 4                 # a temporary local Dask cluster
    python -m flows.data --dask-address tcp://host:8786   # a running Dask cluster (README)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, unmapped

from flows.runners import task_runner
from tasks.discover import discover
from tasks.params import PARAMS_FILE, Params, load_params
from tasks.preprocess import finalize, preprocess_shard, shard_count
from tasks.validate import ValidationReport, validate


@flow(name="data", log_prints=True)
def data(params: Params, raw: list[Path], interim: Path, processed: Path) -> ValidationReport:
    """MIDI under `raw` -> manifest in `interim` -> validated shards in `processed`.

    The shard tasks run on the flow's task runner (one task per whole shard); the other tasks
    run in the flow's process.
    """
    found = discover(raw, interim, params.discover)
    print(found.summary.line())
    shards = list(range(shard_count(found.manifest, params.preprocess)))
    built = preprocess_shard.map(
        unmapped(found.manifest), unmapped(processed), unmapped(params.preprocess), shards
    )
    built.result()  # a failed shard raises its own error here (finalize would just not run)
    print(finalize(found.manifest, processed, params.preprocess, wait_for=built).line())
    report = validate(processed, params.validate, found.summary)
    print(report.summary())
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
    params = load_params(args.params)
    runner = task_runner(params.preprocess.workers, args.dask_address, args.dask_workers)
    data.with_options(task_runner=runner)(
        params, [Path("data/raw")], Path("data/interim"), Path("data/processed")
    )


if __name__ == "__main__":
    main()
