"""The params.yaml keys of infilling and controls take effect. `dvc exp run -S key=value` only
rewrites params.yaml and reruns the stages that declare the key's section, so a key takes
effect when (1) its stage declares the section and (2) the config the stage reads from the
edited file changes what it runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES

from meloformer.data.profile import CorpusProfile
from meloformer.generate.run import build_script, density_defaults
from meloformer.generate.script import Forced, Free
from meloformer.hid import HIDConfig
from meloformer.hid.encode import vocab_for
from meloformer.hid.vocab import Family
from tasks import train as train_task
from tasks.params import load_params

REPO = Path(__file__).resolve().parents[1]
VOCAB = vocab_for(HIDConfig())


def edited(tmp_path: Path, section: str, **values) -> Path:
    """params.yaml with `section.key: value` written, as `dvc exp run -S` writes it."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data[section].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("stage, section", [("train", "train"), ("generate", "generate")])
def test_the_stage_declares_its_section(stage, section):
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert section in stages[stage]["params"]


@pytest.mark.parametrize("key, value", [("infill_rate", 0.5), ("control_rate", 0.25),
                                        ("transpose", 5), ("keep_every", 1500)])
def test_train_rates_reach_the_train_config(tmp_path, key, value):
    shipped, _ = train_task.configs(load_params(REPO / "params.yaml"))
    cfg, _ = train_task.configs(load_params(edited(tmp_path, "train", **{key: value})))
    assert getattr(shipped, key) == 0 and getattr(cfg, key) == value


def test_generate_prompt_infill_and_controls_change_the_run(tmp_path):
    shipped = load_params(REPO / "params.yaml").generate
    cfg = load_params(edited(
        tmp_path, "generate", prompt=str(FIXTURES / "pop909_004.mid"), infill=["0:1-2"],
        density=["0:1-2=high"], polyphony=["0:1-2=lowest"])).generate
    scratch, _ = build_script(VOCAB, shipped)
    script, n_bars = build_script(VOCAB, cfg)  # the prompt's song, bars 1-2 of track 0 a fill
    assert script != scratch and n_bars is not None
    forced = [t for run in script if isinstance(run, Forced) for t in run.tokens]
    assert Family.FILL in {int(VOCAB.family_of[t]) for t in forced}
    conditions = cfg.request(script, n_bars).conditions
    assert conditions.density == ("0:1-2=high",)
    assert conditions.polyphony == ("0:1-2=lowest",)


def test_generate_bring_in_lets_a_silent_prompt_track_come_in(tmp_path):
    prompt = str(FIXTURES / "pop909_004.mid")
    kept = load_params(edited(tmp_path, "generate", prompt=None)).generate
    asked = load_params(edited(tmp_path, "generate", bring_in=[0, 1, 2])).generate
    assert kept.bring_in is None and asked.bring_in == (0, 1, 2)
    # pop909_004's bars 4..7: some track rests there, so the kept prompt holds it back
    resting = [[run.resting for run in build_script(VOCAB, cfg, Path(prompt), prompt_bars=8)[0]
                if isinstance(run, Free)] for cfg in (kept, asked)]
    assert any(resting[0]) and not any(resting[1])


def test_generate_scratch_density_sets_every_bar(tmp_path):
    shipped = load_params(REPO / "params.yaml").generate
    free = load_params(edited(tmp_path, "generate", scratch_density="free")).generate
    two = {"instruments": (0, 0)}
    profile = CorpusProfile("4/4", 120.0, (0, 0), ("4/4",), (0,), (((0, 0), (1, 3)),))
    asked = density_defaults(replace(shipped, **two), None, profile)[0].density
    assert shipped.scratch_density == "auto" and asked == ("0:0-15=low", "1:0-15=high")
    assert density_defaults(replace(free, **two), None, profile)[0].density is None
