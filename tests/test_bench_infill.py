"""python -m bench.infill end to end on a tiny checkpoint and a small corpus: both tables,
the JSON."""

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
        [sys.executable, "-m", "bench.infill", "--checkpoint", str(tiny_checkpoint),
         "--processed", str(root), "--songs", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "bits_per_note_with_context" in done.stdout and "base_exact" in done.stdout
    record = json.loads(out.read_text())
    assert record["infill"]["spans"] >= 1 and record["infill"]["notes"] > 0
    assert set(record["metric_gap"]) >= {"pitch_class_entropy", "polyphony", "note_density"}
    for kind in ("density", "polyphony"):
        report = record["steering"][kind]
        # Every filled bar is counted once, under the level it was asked for.
        assert sum(v["bars"] for v in report["levels"].values()) == report["bars"] > 0
        for v in report["levels"].values():
            lo, hi = v["exact"]["ci95"]
            assert lo <= v["exact"]["share"] <= hi
            assert v["exact"]["share"] <= v["within_one"]["share"]


def test_fill_metric_gap_samples_at_top_p_095(monkeypatch):
    """fill_metric_gap documents top-p 0.95 and used to sample at 1.0."""
    import numpy as np
    from test_infill import SONGS

    from bench import infill_eval as module

    seen = []

    def fake_generate(model, vocab, req, **kw):
        seen.append(req.sampling.top_p)
        return [module.infill_layout(req_song, spans, vocab)
                for req_song, spans in [(SONGS[0][1], [module.Span(0, 0, 0)])]]

    monkeypatch.setattr(module, "generate", fake_generate)
    monkeypatch.setattr(module, "eval_span", lambda song, rng: module.Span(0, 0, 0))
    module.fill_metric_gap(None, [SONGS[0][1]], Vocab(), seed=0)
    assert seen == [0.95]
    assert np.isfinite(0.95)
