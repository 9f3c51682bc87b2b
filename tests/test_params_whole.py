"""The params stage checks params.yaml whole: every value a stage would refuse is refused by
`python -m tasks.params` first, in one format ("<file>: <section>.<key>: <reason>"), before it
writes its marker, so DVC (every stage depends on the marker) deletes no stage's outs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import FIXTURES, REPO

from tasks.params import ParamsError, check

# One bad value per key a stage validates: (dotted key, value, words of the reason).
BAD = [
    ("generate.n_samples", 0, "must be >= 1, got 0"),
    ("generate.temperature", -1.0, "must be >= 0"),
    ("generate.top_k", -1, "must be >= 0"),
    ("generate.top_p", 0.0, "must be in (0, 1]"),
    ("generate.n_bars", 0, "must be in 1..4096, got 0"),
    ("generate.max_tokens", 4, "must be >= 8, got 4"),
    ("generate.threads", -1, "must be >= 0"),
    ("generate.precision", "fp16", "must be one of"),
    ("generate.tempo", 0.0, "must be a positive BPM"),
    ("generate.time_signature", "3-4", "expected NUMERATOR/DENOMINATOR"),
    ("generate.time_signature", "7/3", "not in the vocabulary"),
    ("generate.chords", ["Xmaj"], "not in the vocabulary"),
    ("generate.instruments", [200], "program 200 outside 0..128"),
    ("generate.infill", ["0-1"], "expected TRACK:FIRST-LAST"),
    ("generate.infill", ["0:1-2"], "infill needs a prompt"),
    ("generate.prompt", "nope.mid", "no MIDI file at 'nope.mid'"),
    ("generate.density", ["0:0"], "LEVEL"),
    ("generate.polyphony", ["0:0-1=loud"], "loud"),
    ("generate.audio", "loud", "expected bool, got 'loud'"),
    ("evaluate.max_songs", 0, "must be >= 1, got 0"),
    ("evaluate.max_tokens", 0, "must be >= 1, got 0"),
    ("evaluate.batch_size", 0, "must be >= 1, got 0"),
    ("evaluate.max_distance", 0, "must be >= 1, got 0"),
    ("evaluate.precision", "fp16", "must be one of"),
    ("train.learning_rate", -1e-3, "must be > 0, got -0.001"),
    ("train.learning_rate", "fast", "expected float, got 'fast'"),
    ("train.batch_size", 0, "must be >= 1, got 0"),
    ("train.num_workers", -1, "must be >= 0, got -1"),
    ("train.min_lr_ratio", 2.0, "must be in [0, 1]"),
    ("train.beta1", 1.0, "must be in [0, 1)"),
    ("train.infill_rate", 1.5, "must be in [0, 1], got 1.5"),
    ("train.control_rate", -0.1, "must be in [0, 1]"),
    ("train.compile", "sometimes", "must be true, false or auto"),
    ("train.precision", "fp16", "must be one of"),
    ("train.buckets", [0.5], "ending in 1"),
    ("train.init_from", "models/none.pt", "no checkpoint at"),
    ("model.attention", "fast", "must be one of"),
    ("model.cross_window", -1, "must be >= 0, got -1"),
    ("model.fine_offsets", [0], "must all be >= 1"),
    ("model.n_kv_head", 3, "must divide n_head"),
    ("model.summary_order", "diagonal", "must be one of"),
    ("discover.extensions", ["mid"], "starting with '.'"),
    ("discover.val_fraction", 1.0, "must be in [0, 1)"),
    ("discover.workers", 0, "must be >= 1, got 0"),
    ("preprocess.workers", 0, "must be >= 1, got 0"),
    ("preprocess.shard_size", 0, "must be >= 1, got 0"),
    ("preprocess.timeout_s", 0.0, "must be > 0"),
    ("validate.max_reject_rate", 2.0, "must be in [0, 1]"),
    ("validate.split_tolerance", -1.0, "must be >= 0"),
    ("preprocess.hid.resolution", 0, "must be in 1..96, got 0"),
    ("preprocess.hid.velocity_bins", 200, "must be in 1..127"),
    ("preprocess.hid.tempo_min", 0.0, "must be > 0"),
    ("preprocess.hid.tempo_bins", 1, "must be >= 2"),
    ("model_size", "huge", "must be one of"),
    ("preset", "nonsense", "must be null or one of"),
]


def shipped() -> dict:
    """The repository's params.yaml, trained from scratch (its init_from lies in the repo)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["init_from"] = None
    return params


def with_value(params: dict, key: str, value) -> dict:
    *sections, name = key.split(".")
    node = params
    for section in sections:
        node = node[section]
    node[name] = value
    return params


def test_the_shipped_params_pass():
    assert "ok" in check(REPO / "params.yaml")


@pytest.mark.parametrize(("key", "value", "reason"), BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_each_bad_value_is_refused_naming_its_key(tmp_path, key, value, reason):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value(shipped(), key, value)))
    ok = tmp_path / "interim" / "params.ok"
    with pytest.raises(ParamsError) as refused:
        check(path, ok)
    message = str(refused.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message and "\n" not in message, message
    assert not ok.exists()  # refused before the marker every stage depends on is written


def test_a_prompt_beside_params_yaml_passes(tmp_path):
    """Files named in params are looked for beside params.yaml, where the stages run."""
    (tmp_path / "song.mid").write_bytes((FIXTURES / "pop909_004.mid").read_bytes())
    params = with_value(shipped(), "generate.prompt", "song.mid")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_value(params, "generate.infill", ["0:1-2"])))
    assert "ok" in check(path)
    path.write_text(yaml.safe_dump(with_value(params, "generate.infill", ["0:500-501"])))
    with pytest.raises(ParamsError, match=r"generate\.infill: .*bars"):
        check(path)


def test_every_stage_waits_for_the_params_marker():
    """So a refused params.yaml leaves every stage's outs as they are."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    marker = stages["params"]["outs"][0]
    assert all(marker in stage["deps"] for name, stage in stages.items() if name != "params")


def test_the_params_stage_says_it_in_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(with_value(shipped(), "generate.n_bars", 0)))
    # tasks/ runs from the checkout (it is not installed): the checkout on the path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "tasks.params", "--params", "params.yaml",
                           "--ok", "params.ok"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == "error: params.yaml: generate.n_bars: must be in 1..4096, got 0"
    assert not (tmp_path / "params.ok").exists()


def test_params_pickle_with_their_generated_sections():
    """TrainSection and ModelSection are generated; they are found by name, so Params crosses
    process boundaries (Prefect task inputs, worker processes)."""
    import pickle

    from tasks.params import load_params

    params = load_params(REPO / "params.yaml")
    again = pickle.loads(pickle.dumps(params))
    assert again == params and again.model_config() == params.model_config()
