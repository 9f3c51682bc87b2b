"""The MeloFormer model: batch contract, config, layout and masks, mask plans, attention,
transformer."""

from meloformer.model.attention import AttentionPlan
from meloformer.model.batch import IGNORE, PAD_DOC, Batch
from meloformer.model.config import MODEL_SIZES, ModelConfig
from meloformer.model.plan import MaskPlan, Planner, build_plan
from meloformer.model.transformer import MeloFormer

__all__ = [
    "IGNORE",
    "MODEL_SIZES",
    "PAD_DOC",
    "AttentionPlan",
    "Batch",
    "MaskPlan",
    "MeloFormer",
    "ModelConfig",
    "Planner",
    "build_plan",
]
