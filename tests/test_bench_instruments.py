"""python -m bench.instruments end to end on a tiny checkpoint and a small corpus: the sets it
picks, the table, the JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO
from train_helpers import make_dataset

from bench.instruments import default_sets, val_by_instruments
from meloformer.hid import Vocab


def test_bench_instruments_scores_each_set_against_its_own_songs(tiny_checkpoint, tmp_path):
    root = make_dataset(tmp_path / "data", copies=6, split_every=2)
    groups = val_by_instruments(root, Vocab())
    sets = default_sets(groups)
    assert sets and all(len(groups[s]) >= 3 for s in sets)
    assert [len(groups[s]) for s in sets] == sorted((len(groups[s]) for s in sets), reverse=True)
    chosen = sets[0]
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bench.instruments", "--checkpoint", str(tiny_checkpoint),
         "--data", str(root), "--out", str(out), "--samples", "1",
         "--sets", ",".join(map(str, chosen))],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert f"--instruments {','.join(map(str, chosen))}: 1 samples vs {len(groups[chosen])}" \
        in done.stdout
    (row,) = json.loads((out / "instruments.json").read_text())["sets"]
    assert row["programs"] == list(chosen) and row["samples"] == 1
    assert row["real_songs"] == len(groups[chosen])
    assert set(row["music"]) >= {"note_density", "empty_beat_rate", "last_bar_ratio"}
    assert list(out.glob("*/sample-000.mid"))
