"""The steering report (evaluate/steering.py): its statistics on rows with known answers,
so it fails when a control is ignored, and one small end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_controls import BINS, SONGS, VOCAB

from meloformer.evaluate.steering import _share, spearman, steering_report, summarise
from meloformer.hid.controls import EMPTY
from meloformer.model import MeloFormer, ModelConfig


def test_spearman():
    assert spearman([0, 1, 2, 3], [1.0, 2.0, 5.0, 9.0]) == pytest.approx(1.0)
    assert spearman([0, 1, 2, 3], [9.0, 5.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([0, 0, 1, 1], [1.0, 1.0, 2.0, 2.0]) == pytest.approx(1.0)


def test_wilson_interval():
    got = _share([True] * 50 + [False] * 50)
    assert got["share"] == 0.5 and got["ci95"] == pytest.approx([0.404, 0.596], abs=1e-3)


def test_a_followed_control_scores_high_and_an_ignored_one_does_not():
    rng = np.random.default_rng(0)
    followed = [{"level": k, "value": k + rng.random(), "bin": k} for k in range(5)
                for _ in range(64)]
    base = [{"level": None, "value": 2.3, "bin": 2} for _ in range(64)]
    got = summarise(followed + base)
    assert got["spearman_rho"] > 0.9 and got["exact"]["share"] == 1.0
    assert got["levels"]["mid"]["baseline_exact"]["share"] == 1.0
    assert got["levels"]["lowest"]["baseline_exact"]["share"] == 0.0
    ignored = [{"level": k, "value": float(v), "bin": int(v)} for k in range(5)
               for v in rng.integers(0, 5, 64)]
    got = summarise(ignored + base)
    assert abs(got["spearman_rho"]) < 0.15 and got["exact"]["share"] < 0.35
    empty = [{"level": 0, "value": 0.0, "bin": EMPTY}] * 10
    assert summarise(empty)["levels"]["lowest"]["empty_share"] == 1.0


def test_report_runs_end_to_end():
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1)).eval()
    songs = [enc for _, enc in SONGS[:1]]
    got = steering_report(model, VOCAB, BINS, songs, kinds=("density",))["density"]
    assert sum(v["bars"] for v in got["levels"].values()) == got["bars"] > 0
    assert set(got["contrast"]) == {"changed", "stayed"}
    assert got["contrast"]["changed"]["bars"] + got["contrast"]["stayed"]["bars"] > 0
