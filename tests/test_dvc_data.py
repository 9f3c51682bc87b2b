"""params.yaml and dvc.yaml: the params reader, and `dvc repro validate` in a fresh git copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_cmd

from meloformer.model.config import ModelConfig
from tasks.params import Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def test_params_yaml_loads_and_every_dvc_param_key_exists():
    params = load_params(REPO / "params.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {"discover", "preprocess", "validate", "train", "generate", "evaluate"} <= set(stages)
    for name, stage in stages.items():
        assert (REPO / "tasks" / f"{name}.py").is_file(), name  # stage = tasks module
        for key in stage.get("params", []):  # report reads none
            if isinstance(key, dict):  # `- params.yaml:` tracks the whole file
                continue
            section, _, field = key.partition(".")
            value = getattr(params, section)
            assert not field or hasattr(value, field), key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("preprocess: {shard_sise: 3}", "unknown keys ['shard_sise']"),
        ("preprocess: {hid: {resolution: twelve}}", "preprocess.hid.resolution: expected int"),
        ("discover: {val_fraction: 0.7, test_fraction: 0.5}", "room for train"),
        ("preproces: {}", "unknown keys ['preproces']"),
        ("model: {crosswindow: 2}", "params.yaml: model: unknown keys ['crosswindow']"),
        ("model: {attention: fast}", "params.yaml: model.attention: must be one of"),
        ("model: {fine_offsets: 4}", "model.fine_offsets: expected a list"),
    ],
)
def test_params_errors_name_the_key(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_params(tmp_path / "params.yaml")


def test_missing_sections_take_the_defaults(tmp_path):
    (tmp_path / "params.yaml").write_text("validate: {max_reject_rate: 0.5}\n")
    params = load_params(tmp_path / "params.yaml")
    assert params.discover == Params().discover and params.validate.max_reject_rate == 0.5


def test_model_section_sets_the_rules_on_top_of_the_size(tmp_path):
    assert Params().model.config("base") == ModelConfig.from_name("base")  # same defaults
    (tmp_path / "params.yaml").write_text(
        "model_size: base\nmodel: {cross_window: 2, fine_offsets: [1, 4], type_rule: true}\n"
    )
    params = load_params(tmp_path / "params.yaml")
    cfg = params.model.config(params.model_size)
    assert cfg.n_layer == 12 and cfg.cross_window == 2
    assert cfg.fine_offsets == (1, 4) and cfg.type_rule


def test_dvc_repro_validate_from_a_fresh_clone(clone):
    repo, env = clone
    dvc = [sys.executable, "-m", "dvc"]
    run_cmd([*dvc, "repro", "validate"], repo, env)
    report = json.loads((repo / "data/processed/validation.json").read_text())
    meta = json.loads((repo / "data/processed/meta.json").read_text())
    assert report["success"] and report["failed"] == 0
    assert meta["totals"]["discovered"] == len(list((REPO / "data/raw").rglob("*.mid")))
    assert "up to date" in run_cmd([*dvc, "status", "validate"], repo, env)  # no .pyc noise
    again = run_cmd([*dvc, "repro", "validate"], repo, env)
    assert "didn't change, skipping" in again and "Running stage" not in again
    assert not list((repo / "data/raw").rglob("*.parquet"))  # code never writes under raw
