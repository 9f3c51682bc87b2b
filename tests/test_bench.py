"""bench/gpu.sh, dry run on CPU: every benchmark it lists runs to the end and lands in the
final table, so the script is ready the day a GPU machine is lent. No timing is asserted."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cmd


def test_gpu_script_dry_run_on_cpu_without_the_corpus(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash not installed")
    env = {
        **os.environ,
        "QUICK": "1",
        # The dry run checks that every bench runs to the end, not how fast: on a loaded
        # 2-core CI machine the per-bench limits (sized for a GPU) get 5x room.
        "LIMIT_SCALE": "5",
        "DEVICE": "cpu",
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        # A fresh clone has no dev corpus: the benches fall back to the bundled sample.
        "MELOFORMER_CORPUS": str(tmp_path / "no-corpus"),
    }
    out = run_cmd(["bash", "bench/gpu.sh"], REPO, env)
    table = out[out.index("== all GPU benchmarks") :]
    for bench in ("attention", "train", "generate"):
        summary = json.loads(Path(tmp_path, f"{bench}.json").read_text())["summary"]
        assert summary and all(row["bench"] == bench and row["speedup"] > 0 for row in summary)
        assert f"\n{bench} " in table
