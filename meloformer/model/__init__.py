"""The MeloFormer model: batch contract, config, layout and masks, mask plans, attention,
transformer."""

from meloformer.model.attention import AttentionPlan, flex_compiled
from meloformer.model.batch import IGNORE, PAD_DOC, Batch
from meloformer.model.block_mask import from_block_maps, segment_dense_mask
from meloformer.model.cache import DecodeRows, KVCache
from meloformer.model.config import MODEL_SIZES, ModelConfig
from meloformer.model.layout import MASK_TABLES, PAD, PAD_VALUE, SUMMARY, CellTracker, MaskTables
from meloformer.model.masks import MaskMod, mask_features, meloformer_mask, rule_mask
from meloformer.model.plan import (
    MaskPlan,
    Planner,
    block_mask,
    build_plan,
    flex_block_size,
    summary_order,
)
from meloformer.model.transformer import MeloFormer

__all__ = [
    "IGNORE",
    "MASK_TABLES",
    "MODEL_SIZES",
    "PAD",
    "PAD_DOC",
    "PAD_VALUE",
    "SUMMARY",
    "AttentionPlan",
    "Batch",
    "CellTracker",
    "DecodeRows",
    "KVCache",
    "MaskMod",
    "MaskPlan",
    "MaskTables",
    "MeloFormer",
    "ModelConfig",
    "Planner",
    "block_mask",
    "build_plan",
    "flex_block_size",
    "flex_compiled",
    "from_block_maps",
    "mask_features",
    "meloformer_mask",
    "rule_mask",
    "segment_dense_mask",
    "summary_order",
]
