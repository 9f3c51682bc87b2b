"""params.yaml -> frozen config dataclasses. The only module that reads the YAML.

`Params` has one field per top-level section, named like the section, the dvc stage and the
tasks/ module. To add a section: add a field whose type is the section's frozen dataclass
(nested dataclasses, tuples and scalars are converted recursively); nothing else changes.
Unknown keys are errors, so a typo in params.yaml fails loudly instead of using a default.

Every value is checked when the file is read (ranges too, the resolved TrainConfig and
ModelConfig included), and `python -m tasks.params` runs that check as the first DVC stage,
so a bad value stops `dvc repro` before any stage deletes its outs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect import task

from meloformer.data.config import DiscoverConfig, PreprocessConfig, ValidateConfig
from meloformer.evaluate.evaluate import EvaluateConfig
from meloformer.generate.run import GenerateConfig
from meloformer.model.config import MODEL_SIZES, ModelConfig
from meloformer.train.config import PRESETS, TrainConfig, resolve

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


def _train_section() -> type:
    """The `train:` section: TrainConfig's fields, each optional (None: not written).

    A written key wins over the preset; a key left null takes the preset's value, else
    TrainConfig's default (meloformer.train.config.resolve).
    """
    hints = typing.get_type_hints(TrainConfig)
    spec = [(f.name, hints[f.name] | None, field(default=None)) for f in dataclasses.fields(
        TrainConfig)]
    section = make_dataclass("TrainSection", spec, frozen=True)
    section.__doc__ = _train_section.__doc__
    return section


TrainSection = _train_section()


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml."""

    raw: str = "data/raw"
    """The folder of MIDI input (searched recursively, symlinks followed); dvc.yaml reads it."""
    model_size: str = "small"
    """A MODEL_SIZES key (meloformer.model.config): small, base, large, xlarge."""
    preset: str | None = "cpu"
    """A meloformer.train.config.PRESETS key, or None: hardware defaults for `train:` keys
    left null (a key written in `train:` wins over the preset)."""
    model: ModelSection = field(default_factory=ModelSection)
    discover: DiscoverConfig = field(default_factory=DiscoverConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    train: TrainSection = field(default_factory=TrainSection)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        """Check the cross-section values; errors read "<key>: <rule>, got <value>"."""
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"model_size: must be one of {sorted(MODEL_SIZES)}, "
                             f"got {self.model_size!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"preset: must be null or one of {sorted(PRESETS)}, "
                             f"got {self.preset!r}")
        try:
            self.train_config()
        except ValueError as e:
            raise ValueError(f"train.{e}") from e

    def train_config(self) -> TrainConfig:
        """The TrainConfig that runs: defaults < preset < the keys written in `train:`."""
        return resolve(self.preset, dataclasses.asdict(self.train))

    def model_config(self) -> ModelConfig:
        """The ModelConfig that runs: `model_size` with the `model:` rules."""
        return self.model.config(self.model_size)


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
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:  # e.g. `bool | str`: the first type the value fits
            try:
                return _convert(option, value, where)
            except ParamsError:
                pass
        return _convert(options[-1], value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, str):
        value = _float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
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


def _float(text: str) -> float | str:
    """float(text) when it reads as a number, else text unchanged (reported as a type error)."""
    try:
        return float(text)
    except ValueError:
        return text


OK_TEXT = "params.yaml passed tasks.params\n"


def check(path: Path, ok: Path | None = None) -> str:
    """Load and check params file `path` (ParamsError on a bad value); write the marker `ok`
    (constant content) when given. Returns a one-line summary of what will run."""
    params = load_params(path)
    cfg, model = params.train_config(), params.model_config()
    init = cfg.init_from and Path(path).parent / cfg.init_from  # stages run beside params.yaml
    if init and not init.is_file():
        raise ParamsError(f"{path}: train.init_from: no checkpoint at {cfg.init_from!r} (null "
                          "trains from scratch)")
    if ok is not None:
        ok.parent.mkdir(parents=True, exist_ok=True)
        ok.write_text(OK_TEXT)
    return (f"params: {path} ok (model {params.model_size}, {model.n_layer} layers; preset "
            f"{params.preset}: batch {cfg.batch_size} x accum {cfg.gradient_accumulation_steps} "
            f"at {cfg.max_seq_len} tokens)")


# The params stage as a Prefect task (flows/pipeline.py runs it first, like dvc.yaml).
check_params = task(check, name="params")


def main(argv: list[str] | None = None) -> None:
    """DVC entry (the first stage): check params.yaml and write the --ok marker.

    Every other stage depends on the marker, so DVC runs this check before it deletes any
    stage's outs; the marker's content never changes, so passing it reruns nothing else.
    """
    import argparse

    # Under `python -m tasks.params` this file is __main__: load through tasks.params so the
    # ParamsError raised is the class run_cli catches.
    from tasks import params as this
    from tasks.cli import run_cli

    ap = argparse.ArgumentParser(prog="python -m tasks.params", description=main.__doc__)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--ok", type=Path, help="marker file to write when the check passes")
    args = ap.parse_args(argv)

    print(run_cli(lambda: this.check(args.params, args.ok)))


if __name__ == "__main__":
    main()
