"""params.yaml -> frozen config dataclasses. The only module that reads the YAML.

`Params` has one field per top-level section, named like the section, the dvc stage and the
tasks/ module. To add a section: add a field whose type is the section's frozen dataclass
(nested dataclasses, tuples and scalars are converted recursively); nothing else changes.
Unknown keys are errors, so a typo in params.yaml fails loudly instead of using a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meloformer.data.config import DiscoverConfig, PreprocessConfig, ValidateConfig
from meloformer.evaluate.evaluate import EvaluateConfig
from meloformer.generate.run import GenerateConfig
from meloformer.model.config import ModelConfig
from meloformer.train.config import TrainConfig

PARAMS_FILE = Path("params.yaml")
_MODEL = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


@dataclass(frozen=True)
class ModelSection:
    """The `model:` section: the attention rules and executor, applied on top of `model_size`.

    Each field is the ModelConfig field of the same name, with its default (docs/model.md
    states the rules), so `dvc exp run -S model.cross_window=2` is an experiment.
    """

    attention: str = _MODEL["attention"]
    fine_offsets: tuple[int, ...] = _MODEL["fine_offsets"]
    cross_window: int = _MODEL["cross_window"]
    conductor_full: bool = _MODEL["conductor_full"]
    summary_track_history: bool = _MODEL["summary_track_history"]
    summarize_empty: bool = _MODEL["summarize_empty"]
    type_rule: bool = _MODEL["type_rule"]

    def __post_init__(self) -> None:
        self.config("small")  # ModelConfig checks the values (ValueError -> ParamsError)

    def config(self, size: str) -> ModelConfig:
        """The ModelConfig of named size `size` with these rules."""
        return ModelConfig.from_name(size, **dataclasses.asdict(self))


class ParamsError(ValueError):
    """params.yaml has an unknown key or a value of the wrong type (the message names it)."""


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml."""

    model_size: str = "small"
    """A MODEL_SIZES key (meloformer.model.config): small, base, large, xlarge."""
    preset: str | None = "cpu"
    """A meloformer.train.config.PRESETS key, or None; it overrides train's hardware keys."""
    model: ModelSection = field(default_factory=ModelSection)
    discover: DiscoverConfig = field(default_factory=DiscoverConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read params.yaml into Params.

    Raises:
        ParamsError: naming the file and the dotted key at fault.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    return build(Params, data, str(path))


def build(cls: type, data: Any, where: str) -> Any:
    """An instance of dataclass `cls` from a mapping, checking keys and value types.

    Args:
        cls: a dataclass type.
        data: the mapping read from YAML.
        where: dotted location for error messages ("params.yaml:preprocess.hid").
    """
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamsError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    values = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ValueError as e:  # the dataclass's own range checks
        raise ParamsError(f"{where}: {e}") from e


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Check one value against its annotation; recurse into dataclasses and tuples."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if ok is None:
        raise ParamsError(f"{where}: unsupported annotation {hint!r}")
    if not ok:
        raise ParamsError(f"{where}: expected {hint.__name__}, got {value!r}")
    return float(value) if hint is float else value
