"""The Prefect data flow under prefect_test_harness: discover -> map(preprocess) -> validate."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.data import data
from meloformer.data.config import PreprocessConfig
from tasks.params import Params
from tasks.preprocess import shard_count

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "raw" / "sample"


@pytest.fixture(scope="module")
def harness():
    """A throwaway Prefect backend for this module's flow runs."""
    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_data_flow_fans_out_over_shards_and_writes_the_dvc_outs(harness, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in sorted(SAMPLE.glob("freedoom/*.mid"))[:7]:
        shutil.copy(path, raw)
    params = replace(Params(), preprocess=PreprocessConfig(workers=2, shard_size=3))
    interim, processed = tmp_path / "interim", tmp_path / "processed"
    report = data(params, [raw], interim, processed)
    assert report.success
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["totals"] == {**meta["totals"], "discovered": 7, "ok": 7, "rejected": 0}
    assert (
        len(meta["shards"]) == 3 == shard_count.fn(interim / "manifest.parquet", params.preprocess)
    )
    for out in ("shards/shard-00002.parquet", "rejects.parquet", "validation.json"):
        assert (processed / out).is_file(), out
