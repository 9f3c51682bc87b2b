"""bench/infill.py end to end on a tiny checkpoint and a small corpus: both tables, the JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO
from train_helpers import make_dataset

from meloformer.data.controls import control_bins
from meloformer.data.shards import SHARD_DIR, songs_files
from meloformer.hid import Vocab


def test_bench_infill_prints_both_tables(tiny_checkpoint, tmp_path):
    root = make_dataset(tmp_path / "data", copies=2, split_every=3)
    meta = root / "meta.json"
    body = json.loads(meta.read_text())
    bins = control_bins(songs_files(root / SHARD_DIR), Vocab())
    meta.write_text(json.dumps({**body, "control_bins": bins.to_dict()}))
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "infill.py"), "--checkpoint", str(tiny_checkpoint),
         "--processed", str(root), "--songs", "2", "--samples", "1", "--bars", "2",
         "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "bits_per_note_with_context" in done.stdout and "no-control baseline" in done.stdout
    record = json.loads(out.read_text())
    assert record["infill"]["spans"] >= 1 and record["infill"]["notes"] > 0
    assert [r["run"] for r in record["controls"]] == ["with controls", "no-control baseline"]
    assert set(record["metric_gap"]) >= {"pitch_class_entropy", "polyphony", "note_density"}
    for r in record["controls"]:
        assert 0.0 <= r["density_match"] <= 1.0 and 0.0 <= r["polyphony_match"] <= 1.0
