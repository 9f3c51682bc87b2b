"""params.yaml -> frozen config dataclasses. The only module that reads the YAML.

`Params` has one field per top-level section, named like the section, the dvc stage and the
tasks/ module. To add a section: add a field whose type is the section's frozen dataclass
(nested dataclasses, tuples and scalars are converted recursively); nothing else changes.
Unknown keys are errors, so a typo in params.yaml fails loudly instead of using a default.
The `train:` and `model:` sections are generated from TrainConfig and ModelConfig (every
field, null = not written), so a field added there is a params key at once.

Every value is checked when the file is read (ranges too, the resolved TrainConfig and
ModelConfig included), and `python -m tasks.params` (`check`) also builds what each stage
builds before it runs (the init_from checkpoint, the generate request against the
vocabulary), so a value any stage would refuse stops `dvc repro` here, before any stage
deletes its outs. Every refusal reads "<file>: <dotted key>: <rule>, got <value>".
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, make_dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from prefect import task

from meloformer.data import DiscoverConfig, PreprocessConfig, ValidateConfig
from meloformer.errors import ConfigError, UserError
from meloformer.evaluate import EvaluateConfig
from meloformer.generate import (
    ConditionError,
    Conditions,
    GenerateConfig,
    build_script,
)
from meloformer.generate import (
    resolve as resolve_conditions,
)
from meloformer.hid import HIDError, vocab_for
from meloformer.model import MODEL_SIZES, ModelConfig
from meloformer.train import PRESETS, TrainConfig, resolve

PARAMS_FILE = Path("params.yaml")


class ParamsError(UserError, ValueError):
    """params.yaml has an unknown key or a bad value: "<file>: <dotted key>: <rule>"."""


def _optional_section(name: str, source: type, skip: tuple[str, ...], doc: str,
                      **methods: Any) -> type:
    """A frozen dataclass with `source`'s init fields (less `skip`), each optional: None
    means "not written" (the layer below decides); `methods` are added to it."""
    hints = typing.get_type_hints(source)
    spec = [(f.name, hints[f.name] | None, field(default=None))
            for f in dataclasses.fields(source) if f.init and f.name not in skip]
    section = make_dataclass(name, spec, frozen=True, namespace=methods)
    section.__doc__ = doc
    section.__module__ = __name__  # found by name, so Params pickles (Prefect, processes)
    return section


TrainSection = _optional_section("TrainSection", TrainConfig, (), """The `train:` section:
TrainConfig's fields, each optional (None: not written). A written key wins over the preset;
a key left null takes the preset's value, else TrainConfig's default (train.config.resolve).""")

ModelSection = _optional_section("ModelSection", ModelConfig, ("vocab_size",), """The
`model:` section: ModelConfig's fields (the data's vocabulary sets vocab_size), each optional
(None: not written). A written key wins over `model_size`'s shape, else ModelConfig's default
(docs/model.md states the attention rules), so `dvc exp run -S model.cross_window=2` is an
experiment.""", config=lambda self, size: ModelConfig.from_name(size, **_written(self)))


def _written(section: Any) -> dict[str, Any]:
    """The keys of a section that params.yaml writes (not None)."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


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
        """Check the cross-section values (ConfigError keyed "model_size", "train.<field>",
        "model.<field>")."""
        if self.model_size not in MODEL_SIZES:
            raise ConfigError("model_size", f"must be one of {sorted(MODEL_SIZES)}",
                              self.model_size)
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError("preset", f"must be null or one of {sorted(PRESETS)}", self.preset)
        for section, build_config in (("train", self.train_config),
                                      ("model", self.model_config)):
            try:
                build_config()
            except ConfigError as e:
                raise e.rekeyed(f"{section}.{e.key}") from e

    def train_config(self) -> TrainConfig:
        """The TrainConfig that runs: defaults < preset < the keys written in `train:`."""
        return resolve(self.preset, dataclasses.asdict(self.train))

    def model_config(self) -> ModelConfig:
        """The ModelConfig that runs: `model_size` with the keys written in `model:`."""
        return self.model.config(self.model_size)


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read params.yaml into Params.

    Raises:
        ParamsError: naming the file and the dotted key at fault.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    return build(Params, data, str(path))


def _at(where: str, key: str) -> str:
    """"<file>: <dotted key>" (where is the file, or the file and a key already)."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def build(cls: type, data: Any, where: str) -> Any:
    """An instance of dataclass `cls` from a mapping, checking keys and value types.

    Args:
        cls: a dataclass type.
        data: the mapping read from YAML.
        where: the file, then the dotted key of the mapping ("params.yaml: preprocess.hid").
    """
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ParamsError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    values = {k: _convert(hints[k], v, _at(where, k)) for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError as e:  # the dataclass's own range checks, naming its field
        raise ParamsError(f"{_at(where, e.key)}: {e.reason}") from e
    except ValueError as e:  # a check that names no field: the section is named
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
    """Load params file `path` and build what every stage builds from it before it runs
    (ParamsError on the first value a stage would refuse); then write the marker `ok`
    (constant content) when given. Returns a one-line summary of what will run.

    Files named in params (train.init_from, generate.prompt) are looked for beside `path`,
    where the stages run.
    """
    params = load_params(path)
    cfg, model = params.train_config(), params.model_config()
    here = Path(path).parent
    if cfg.init_from and not (here / cfg.init_from).is_file():
        raise ParamsError(f"{path}: train.init_from: no checkpoint at {cfg.init_from!r} (null "
                          "trains from scratch)")
    _check_generate(params, here, str(path))
    if ok is not None:
        ok.parent.mkdir(parents=True, exist_ok=True)
        ok.write_text(OK_TEXT)
    return (f"params: {path} ok (model {params.model_size}, {model.n_layer} layers; preset "
            f"{params.preset}: batch {cfg.batch_size} x accum {cfg.gradient_accumulation_steps} "
            f"at {cfg.max_seq_len} tokens)")


def _check_generate(params: Params, here: Path, where: str) -> None:
    """What the generate stage checks before sampling, in the vocabulary the pipeline trains
    (preprocess.hid): each condition on its own (so the error names its key), then the
    prompt, its infill spans and controls, and the whole request."""
    cfg, vocab = params.generate, vocab_for(params.preprocess.hid)
    for key in ("n_bars", "time_signature", "tempo", "chords"):
        try:
            resolve_conditions(Conditions(**{key: getattr(cfg, key)}), vocab)
        except ConditionError as e:
            raise ParamsError(f"{where}: generate.{key}: {e}") from e
    if cfg.prompt is not None and not (here / cfg.prompt).is_file():
        raise ParamsError(f"{where}: generate.prompt: no MIDI file at {cfg.prompt!r}")
    located = replace(cfg, prompt=None if cfg.prompt is None else str(here / cfg.prompt))
    try:
        script, n_bars = build_script(vocab, located)
        resolve_conditions(located.request(script, n_bars).conditions, vocab)
    except (HIDError, OSError) as e:
        raise ParamsError(f"{where}: generate.prompt: {e}") from e
    except ValueError as e:  # ConditionError (a control), ModeError (the spans or tracks)
        mode = "infill" if cfg.infill else "instruments"
        key = next((k for k in ("density", "polyphony") if str(e).startswith(k)), mode)
        raise ParamsError(f"{where}: generate.{key}: {e}") from e


# The params stage as a Prefect task (flows/pipeline.py runs it first, like dvc.yaml).
check_params = task(check, name="params")


def main(argv: list[str] | None = None) -> None:
    """DVC entry (the first stage): check params.yaml and write the --ok marker.

    Every other stage depends on the marker, so DVC runs this check before it deletes any
    stage's outs; the marker's content never changes, so passing it reruns nothing else.
    """
    import argparse

    from meloformer.cli import run_cli

    ap = argparse.ArgumentParser(prog="python -m tasks.params", description=main.__doc__)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    ap.add_argument("--ok", type=Path, help="marker file to write when the check passes")
    args = ap.parse_args(argv)

    print(run_cli(lambda: check(args.params, args.ok)))


if __name__ == "__main__":
    main()
