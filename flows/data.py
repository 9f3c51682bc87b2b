"""Flow data: discover -> preprocess (one task per shard, in parallel) -> validate.

It writes exactly the outs dvc.yaml declares for the same stages, so `dvc commit` can record a
run made here. `python -m flows.data` runs it on params.yaml with the dvc.yaml paths.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from meloformer.data.discover import MANIFEST_FILE
from meloformer.data.validate import ValidationReport
from tasks.discover import discover
from tasks.params import Params, load_params
from tasks.preprocess import finalize, preprocess_shard, shard_count
from tasks.validate import validate


@flow(name="data", log_prints=True)
def data(params: Params, raw: list[Path], interim: Path, processed: Path) -> ValidationReport:
    """MIDI under `raw` -> manifest in `interim` -> validated shards in `processed`."""
    print(discover(raw, interim, params.discover).line())
    manifest = interim / MANIFEST_FILE
    shards = list(range(shard_count(manifest, params.preprocess)))
    built = preprocess_shard.map(
        unmapped(manifest), unmapped(processed), unmapped(params.preprocess), shards
    )
    summary = finalize(manifest, processed, params.preprocess, wait_for=built)
    print(summary.line())
    report = validate(processed, params.validate, params.discover.split_fractions)
    print(report.summary())
    return report


if __name__ == "__main__":
    params = load_params()
    runner = ThreadPoolTaskRunner(max_workers=params.preprocess.workers)
    data.with_options(task_runner=runner)(
        params, [Path("data/raw")], Path("data/interim"), Path("data/processed")
    )
