"""Generation: grammar-constrained sampling with a KV cache (regular + summary keys), the
modes (from scratch, continue a prompt, add a track) and the sample files (write_sample, and
read_sample_ids beside it: the evaluate stage reads samples through this package's API)."""

from meloformer.generate.conditions import ConditionError, Conditions
from meloformer.generate.constrain import Controller, GenerationError
from meloformer.generate.generate import Request, generate
from meloformer.generate.output import read_sample_ids, write_sample
from meloformer.generate.run import GenerateConfig, build_script, run_generate
from meloformer.generate.sampling import SamplingConfig
from meloformer.generate.script import ModeError, add_track, continuation, from_scratch

__all__ = [
    "ConditionError",
    "Conditions",
    "Controller",
    "GenerateConfig",
    "GenerationError",
    "ModeError",
    "Request",
    "SamplingConfig",
    "add_track",
    "build_script",
    "continuation",
    "from_scratch",
    "generate",
    "read_sample_ids",
    "run_generate",
    "write_sample",
]
