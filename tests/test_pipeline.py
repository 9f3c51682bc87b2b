"""The whole pipeline for a user: presets build, `dvc repro` end to end with experiments, and the
Prefect pipeline flow writing the same outs as dvc.yaml."""

from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cmd
from prefect.testing.utilities import prefect_test_harness

from meloformer.model.config import MODEL_SIZES, ModelConfig
from meloformer.train.config import PRESETS, preset_config
from tasks.params import load_params

# A run small enough for a test: a few songs, a few steps, one short sample.
TINY = {
    "preset": None,
    "train": {
        "max_seq_len": 256, "batch_size": 1, "gradient_accumulation_steps": 1, "num_workers": 0,
        "max_steps": 3, "phase2_step": 0, "phase3_step": 0, "warmup_steps": 1, "epochs": 1,
        "compile": False, "save_every": 3, "log_every": 1,
    },
    "generate": {"n_samples": 1, "max_tokens": 200, "n_bars": 2},
    "evaluate": {"max_songs": 2, "max_tokens": 256, "batch_size": 1},
    "validate": {"max_reject_rate": 0.5, "split_tolerance": 1.0},
    "discover": {"val_fraction": 0.4, "test_fraction": 0.1},  # a val song among a handful
}  # fmt: skip


def test_every_preset_and_model_size_builds():
    params = load_params(REPO / "params.yaml")
    assert params.preset in PRESETS and params.model_size in MODEL_SIZES
    for name in PRESETS:
        cfg = preset_config(name, params.train)
        assert cfg.batch_size >= 1 and cfg.max_seq_len >= 256, name
    for size in MODEL_SIZES:
        assert ModelConfig.from_name(size).n_layer >= 6


def dvc_outs(root: Path) -> list[Path]:
    """Every out, metric and plot path dvc.yaml declares."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                paths.append(root / (entry if isinstance(entry, str) else next(iter(entry))))
    return paths


def make_tiny(root: Path, n_files: int = 8) -> None:
    """Shrink the copy's sample and params to the TINY run."""
    sample = root / "data" / "raw" / "sample"
    keep = sorted(sample.glob("freedoom/*.mid"))[:n_files]
    for path in sample.rglob("*.mid"):
        if path not in keep:
            path.unlink()
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in TINY.items():
        if isinstance(values, dict):
            params[section].update(values)
        else:
            params[section] = values
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_dvc_repro_end_to_end_then_experiments(clone):
    root, env = clone
    make_tiny(root)
    run_cmd(["git", "commit", "-qam", "tiny"], root, env)
    dvc = [sys.executable, "-m", "dvc"]
    run_cmd([*dvc, "repro"], root, env)
    for path in dvc_outs(root):
        assert path.exists(), path
    assert list((root / "data/samples").glob("*.mid")) and list(
        (root / "data/samples").glob("*.png")
    )
    again = run_cmd([*dvc, "repro"], root, env)
    assert "Running stage" not in again  # a second repro runs nothing
    # The README's experiment commands.
    run_cmd(["git", "add", "dvc.lock", "metrics"], root, env)
    run_cmd(["git", "commit", "-qm", "baseline run"], root, env)
    exp = ["exp", "run", "-S", "train.learning_rate=0.001", "-S", "model.cross_window=2"]
    run_cmd([*dvc, *exp], root, env)
    table = list(csv.DictReader(io.StringIO(run_cmd([*dvc, "exp", "show", "--csv"], root, env))))
    assert len(table) >= 2  # the workspace/baseline and the experiment
    loss_cols = [c for c in table[0] if c.startswith("loss.loss")]
    assert loss_cols, list(table[0])
    runs = {(row.get("train.learning_rate"), row.get("model.cross_window")) for row in table}
    assert {("0.0003", "1"), ("0.001", "2")} <= runs
    assert all(row[loss_cols[0]] not in ("", "-", "!") for row in table)


@pytest.mark.slow
def test_prefect_pipeline_writes_the_dvc_outs(clone, monkeypatch):
    root, _ = clone
    make_tiny(root)
    monkeypatch.chdir(root)  # the stages resolve data paths from the project root, as DVC does
    from flows.pipeline import pipeline

    with prefect_test_harness(server_startup_timeout=180):
        metrics = pipeline(Path("params.yaml"), Path("."))
    assert metrics["loss"]["loss"] > 0
    for path in dvc_outs(root):
        assert path.exists(), path
    shutil.rmtree(root / "models")  # keep tmp small


def test_serve_registers_a_scheduled_deployment(monkeypatch):
    """`python -m flows.pipeline --serve --cron ...` hands the schedule to flow.serve."""
    from prefect.flows import Flow

    import flows.pipeline as pipeline_module

    seen: dict = {}
    monkeypatch.setattr(Flow, "serve", lambda self, **kw: seen.update(kw, flow=self.name))
    pipeline_module.main(["--serve", "--cron", "0 3 * * *", "--params", str(REPO / "params.yaml")])
    assert seen == {
        "flow": "pipeline",
        "name": "meloformer-nightly",
        "cron": "0 3 * * *",
        "parameters": {"params_file": str(REPO / "params.yaml")},
    }
