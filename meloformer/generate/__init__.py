"""Generation: grammar-constrained sampling with a KV cache (regular + summary keys), the
modes (from scratch, continue a prompt, add a track) and the sample files (write_sample, and
read_sample_ids beside it: the evaluate stage reads samples through this package's API)."""

from meloformer.generate.conditions import ConditionError, Conditions, resolve
from meloformer.generate.constrain import Controller, GenerationError
from meloformer.generate.generate import Cached, FullForward, Request, generate
from meloformer.generate.output import read_sample_ids, write_sample
from meloformer.generate.run import GenerateConfig, build_script, run_generate
from meloformer.generate.sampling import SamplingConfig, sample
from meloformer.generate.script import (
    ModeError,
    add_track,
    continuation,
    first_bars,
    from_scratch,
    infill,
)

__all__ = [
    "Cached",
    "ConditionError",
    "Conditions",
    "Controller",
    "FullForward",
    "GenerateConfig",
    "GenerationError",
    "ModeError",
    "Request",
    "SamplingConfig",
    "add_track",
    "build_script",
    "continuation",
    "first_bars",
    "from_scratch",
    "generate",
    "infill",
    "read_sample_ids",
    "resolve",
    "run_generate",
    "sample",
    "write_sample",
]
