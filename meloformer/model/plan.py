"""MaskPlan: everything about a batch's attention that depends on its metadata, as plain
tensors, built where the batch is made (loader workers, on CPU) and moved to the model's device
with the batch.

Building a plan reads values (segment counts, range checks), which on a GPU would be host
syncs, and issues a few hundred small ops, which on a GPU would be kernel launches. Built on
the CPU beside the batch, neither touches the training step: the step only moves the plan
(pinned, non_blocking) and wraps its tensors (MeloFormer.attention_plan).

A plan holds no closures (a BlockMask's mask_mod is rebuilt on the device from the layout
tables), so it crosses process boundaries like a Batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch.nn.attention.flex_attention import BlockMask

from meloformer.model.batch import IGNORE, Batch
from meloformer.model.block_mask import segment_block_mask, segment_dense_mask
from meloformer.model.cells import find_cells
from meloformer.model.config import ModelConfig
from meloformer.model.layout import Layout, build_layout
from meloformer.model.masks import mask_features, meloformer_mask

EXECUTORS = ("flex", "sdpa", "dense")
# Summary slots a flex call reserves, as a share of its T regular rows: real crops have
# 0.02-0.10 (tests/fixtures at 128..1024 tokens), so the calls of one length bucket share one
# shape L = T + T/8 (rounded up to the block/bucket multiple), hence one compiled graph. A
# batch with more summaries takes the next multiple: a rare, bounded extra graph.
SUMMARY_SHARE = 1 / 8
# The BlockMask tensors a plan carries, in BlockMask's constructor order.
BLOCK_FIELDS = ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices",
                "q_num_blocks", "q_indices", "full_q_num_blocks", "full_q_indices")


def resolve_executor(attention: str, device: torch.device | str) -> str:
    """The executor for a config value: auto -> flex on CUDA, sdpa elsewhere."""
    if attention != "auto":
        return attention
    return "flex" if torch.device(device).type == "cuda" else "sdpa"


def flex_block_size(cfg: ModelConfig, device: torch.device | str) -> int:
    """The flex block size on a device: cfg.block_size on CUDA (the Triton tile),
    cfg.cpu_block_size elsewhere (the CPU kernel pays per non-empty block area)."""
    return cfg.block_size if torch.device(device).type == "cuda" else cfg.cpu_block_size


def summary_order(cfg: ModelConfig, block: int) -> str:
    """The summary slot order for a block size: cfg.summary_order, "auto" resolved to
    "track" for blocks <= 32 and "bar" above (measured crossover, docs/model.md)."""
    if cfg.summary_order != "auto":
        return cfg.summary_order
    return "track" if block <= 32 else "bar"


@dataclass(frozen=True)
class MaskPlan:
    """A batch's layout and mask as tensors (no closures), for one executor.

    Attributes:
        executor: "flex", "sdpa" or "dense".
        layout: the Layout (execution order, lookup tables, RoPE coordinates).
        blocks: flex only: the BlockMask tensors by BLOCK_FIELDS name, (B, 1, n) / (B, 1, n, n)
            int32.
        block_size: flex only: (query block, key block).
        mask: sdpa only: (B, 1, L, L) bool, True = attend, over the rows in `order`.
        order: sdpa only: the attention call's rows, (B, L) int64 layout rows sorted by clock
            (see `clock_order`).
        n_targets: loss-bearing target tokens of the batch (a host int, counted here so the
            step needs no sync to weight micro-batches).
    """

    executor: str
    layout: Layout
    n_targets: int
    blocks: dict[str, torch.Tensor] | None = None
    block_size: tuple[int, int] | None = None
    mask: torch.Tensor | None = None
    order: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Rows of the attention call: T (dense) or T + S."""
        return self.layout.n_regular if self.executor == "dense" else self.layout.length

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MaskPlan:
        """A copy on `device` (non_blocking: from pinned memory, no host wait)."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MaskPlan:
        """A copy in pinned host memory (DataLoader's pin_memory calls this)."""
        return self._map(lambda t: t.pin_memory())

    def _map(self, fn) -> MaskPlan:
        lay = self.layout
        tables = {f.name: getattr(lay, f.name) for f in fields(lay)}
        moved = {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in tables.items()}
        blocks = None if self.blocks is None else {k: fn(v) for k, v in self.blocks.items()}
        mask, order = (None if t is None else fn(t) for t in (self.mask, self.order))
        return replace(self, layout=Layout(**moved), blocks=blocks, mask=mask, order=order)


def check_ranges(batch: Batch, cfg: ModelConfig) -> None:
    """Raise ValueError if a token id, program or track index falls outside its embedding
    table (reads values: call it where the batch is made, not in the step)."""
    limits = {"ids": cfg.vocab_size, "program": cfg.n_programs, "track": cfg.max_tracks}
    for name, limit in limits.items():
        value = getattr(batch, name)
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= limit:
            raise ValueError(f"Batch.{name}: values {low}..{high} outside 0..{limit - 1}")


@torch.no_grad()
def build_plan(batch: Batch, cfg: ModelConfig, executor: str, device: torch.device | str
               ) -> MaskPlan:
    """The plan of `batch` for a model on `device`, computed on the batch's device (CPU in
    the loader). Its op count does not grow with B or T (every pass is vectorised over rows,
    segments and tokens; see block_mask.py).

    Args:
        batch: the Batch (rows padded to a static bucket length).
        cfg: the rules, block sizes, summary order and length bucket.
        executor: "flex", "sdpa", "dense" or "auto" (resolved for `device`).
        device: where the model runs (picks the executor and the flex block size).

    Raises:
        ValueError: an input value outside the embedding tables, or an unknown executor.
    """
    kind = resolve_executor(executor, device)
    if kind not in EXECUTORS:
        raise ValueError(f"executor {kind!r}: expected one of {EXECUTORS} or 'auto'")
    check_ranges(batch, cfg)
    n_targets = int((batch.targets != IGNORE).sum())
    cells = find_cells(batch, summarize_empty=cfg.summarize_empty)
    if kind == "dense":
        return MaskPlan(kind, build_layout(batch, cells), n_targets)
    if kind == "sdpa":
        lay = build_layout(batch, cells, multiple=8)
        mask = segment_dense_mask(meloformer_mask(lay, cfg), mask_features(lay, cfg), lay.clock)
        order = clock_order(lay)
        return MaskPlan(kind, lay, n_targets, mask=permute_square(mask, order), order=order)
    block = flex_block_size(cfg, device)
    multiple, T = math.lcm(block, cfg.length_bucket), batch.shape[1]
    lay = build_layout(batch, cells, bar_major=cfg.bar_major, multiple=multiple,
                       conductor_first=cfg.conductor_full,
                       summary_order=summary_order(cfg, block),
                       min_length=_round_up(T + math.ceil(T * SUMMARY_SHARE), multiple))
    bm = segment_block_mask(meloformer_mask(lay, cfg), mask_features(lay, cfg), lay.clock, block)
    blocks = {name: getattr(bm, name) for name in BLOCK_FIELDS}
    return MaskPlan(kind, lay, n_targets, blocks=blocks, block_size=(block, block))


def clock_order(lay: Layout) -> torch.Tensor:
    """The layout's rows sorted by clock, (B, L) int64: each summary slot moves to just after
    its cell's last token. Real rows have distinct clocks and every rule is causal in them
    (padding slots may share one, but they see only themselves), so in this order the whole
    mask lies on or below the diagonal: the CPU executor runs the causal kernel, which skips
    the upper triangle, with the mask on top (attention.py)."""
    return lay.clock.argsort(dim=1)


def permute_square(mask: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """mask (B, 1, L, L) over layout rows -> over the rows in `order` (B, L), both axes."""
    B, _, L, _ = mask.shape
    rows = mask[:, 0].gather(1, order[:, :, None].expand(B, L, L))
    return rows.gather(2, order[:, None, :].expand(B, L, L))[:, None]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def block_mask(plan: MaskPlan, cfg: ModelConfig) -> BlockMask:
    """The plan's BlockMask on the plan's device: its tensors wrapped as they are, with the
    mask_mod closed over the device's layout tables (no ops, no sync)."""
    L = plan.layout.length
    return BlockMask((L, L), *(plan.blocks[name] for name in BLOCK_FIELDS),
                     BLOCK_SIZE=plan.block_size, mask_mod=meloformer_mask(plan.layout, cfg))


@dataclass(frozen=True)
class Planner:
    """build_plan with its settings bound: picklable, so a loader worker can hold one.

    Attributes:
        cfg: the model's config.
        device: where the model runs, "cpu" or "cuda" (executor and block size).
        executor: "auto" takes cfg.attention.
    """

    cfg: ModelConfig
    device: str = "cpu"
    executor: str = "auto"

    def __call__(self, batch: Batch) -> MaskPlan:
        attention = self.cfg.attention if self.executor == "auto" else self.executor
        return build_plan(batch, self.cfg, attention, self.device)
