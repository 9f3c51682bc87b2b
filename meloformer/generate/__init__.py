"""Generation: grammar-constrained sampling with a KV cache (regular + summary keys), the
modes (from scratch, continue a prompt, add a track) and the sample files."""

from meloformer.generate.conditions import ConditionError, Conditions
from meloformer.generate.constrain import Controller, GenerationError
from meloformer.generate.generate import Request, generate
from meloformer.generate.run import GenerateConfig, build_script, load_model, run_generate
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
    "load_model",
    "run_generate",
]
