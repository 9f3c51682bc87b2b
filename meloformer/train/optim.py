"""The optimizer and its learning rate: AdamW with weight decay on matrices only (not on norms,
biases or embeddings), and the schedule (linear warm-up, then cosine decay to a floor)."""

from __future__ import annotations

import math

import torch
from torch import nn

from meloformer.train.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights, and the rest.

    No decay for embedding tables (a tied LM head shares its table, so it is excluded too),
    norm weights, biases and any other parameter of fewer than 2 dims.
    """
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.LayerNorm | nn.RMSNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, rest, seen = [], [], set()
    for p in model.parameters():  # parameters() yields a tied tensor once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (rest if id(p) in no_decay or p.dim() < 2 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`, with the fused kernel (one pass over each tensor) on CPU
    and CUDA: on CPU it steps `small` in 5 ms against 20 ms for the per-tensor loop."""
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.learning_rate,
        betas=(cfg.beta1, cfg.beta2),
        fused=fused,
    )


def lr_at(step: int, peak: float, warmup: int, total: int, min_ratio: float) -> float:
    """Learning rate of optimizer step `step` (0-based).

    Args:
        peak: the rate reached at the end of warm-up.
        warmup: steps of linear warm-up (from peak/warmup at step 0).
        total: the horizon; the cosine reaches peak * min_ratio there and stays.
        min_ratio: floor as a fraction of peak.
    """
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= total:
        return peak * min_ratio
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
