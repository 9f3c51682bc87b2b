"""dvc.yaml and the flows agree on where every file lives: tasks.paths.Paths is the one list."""

from __future__ import annotations

import dataclasses
import inspect
import shlex
from pathlib import Path

import yaml
from conftest import REPO

from tasks.params import Params, load_params
from tasks.paths import Paths


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def entries(stage: dict, *kinds: str) -> list[str]:
    """The paths listed under `kinds` (an entry is a path or a one-key mapping of options)."""
    return [e if isinstance(e, str) else next(iter(e)) for kind in kinds
            for e in stage.get(kind, [])]


def resolve(text: str, params: Params) -> Path:
    """A dvc.yaml path with its ${raw} filled in from params.yaml, as DVC does."""
    return Path(text.replace("${raw}", params.raw))


def test_dvc_yaml_commands_deps_and_outs_are_the_paths_of_paths():
    params = load_params(REPO / "params.yaml")
    expected = Paths.of(params).stages()
    stages = dvc_stages()
    assert sorted(stages) == sorted(expected)
    for name, stage in stages.items():
        outs = [resolve(e, params) for e in entries(stage, "outs", "metrics", "plots")]
        assert sorted(outs) == sorted(expected[name]["outs"]), name
        # data deps: whatever is not code (tasks/, meloformer/) and not a params file
        data = [resolve(e, params) for e in entries(stage, "deps")
                if not e.startswith(("tasks/", "meloformer/"))]
        assert sorted(data) == sorted(expected[name]["deps"]), name
        words = shlex.split(stage["cmd"].replace("${raw}", params.raw))
        given = [Path(w) for w in words[3:] if not w.startswith("--")]  # after python -m x
        assert given == expected[name]["cmd"], name


def test_paths_follow_the_raw_param_and_a_root():
    params = dataclasses.replace(Params(), raw="data/my-midi")
    paths = Paths.of(params, Path("/tmp/project"))
    assert paths.raw == Path("/tmp/project/data/my-midi")
    assert paths.checkpoint == Path("/tmp/project/models/train/checkpoints/last.pt")
    assert Paths(raw=Path("/elsewhere")).under(Path("/tmp/p")).raw == Path("/elsewhere")


def config_classes(cls: type) -> set[type]:
    """cls and every dataclass reachable through its fields' annotations."""
    import typing

    found, todo = set(), [cls]
    while todo:
        c = todo.pop()
        if c in found:
            continue
        found.add(c)
        for hint in typing.get_type_hints(c).values():
            for t in (hint, *typing.get_args(hint)):
                if dataclasses.is_dataclass(t) and isinstance(t, type):
                    todo.append(t)
    return found


def test_the_params_stage_depends_on_every_module_it_validates():
    """A change to any config it builds (and to the train resolver) reruns the check."""
    from meloformer.model import config as model_config
    from meloformer.train import config as train_config

    deps = [REPO / d for d in entries(dvc_stages()["params"], "deps")]
    files = {Path(inspect.getfile(c)) for c in config_classes(Params)}
    modules = {f for f in files if REPO in f.parents}  # TrainSection is made by make_dataclass
    modules |= {Path(model_config.__file__), Path(train_config.__file__)}
    for module in modules:
        assert any(module == d or d in module.parents for d in deps), module
