"""One optimizer step over a list of micro-batches: token-weighted loss across micro-batches
and ranks, bf16 autocast on CUDA, clipping, and the non-finite guard."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from meloformer.model.batch import IGNORE, Batch
from meloformer.train.dist import all_reduce


class LossModule(nn.Module):
    """forward(batch) -> the model's mean loss, so DDP's hooks see the loss computation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model.loss(batch)


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step: global mean loss, pre-clip grad norm, real tokens (all ranks)."""

    loss: float
    grad_norm: float
    tokens: int
    applied: bool
    """False when the loss or the gradient was not finite and the update was skipped."""


def train_step(
    module: nn.Module, optimizer: torch.optim.Optimizer, micro: list[Batch], lr: float,
    grad_clip: float, device: torch.device, world: int = 1,
) -> StepResult:
    """Accumulate gradients over `micro`, then clip and update (or skip if non-finite).

    Each micro-batch's mean loss is weighted by its share of the step's target tokens over all
    ranks, so the update equals one big batch's whatever the split into micro-batches/ranks.
    DDP averages gradients over ranks, hence the extra factor `world`.
    """
    counts = [int((b.targets != IGNORE).sum()) for b in micro]
    total = int(all_reduce(torch.tensor([sum(counts)], dtype=torch.float64, device=device)).item())
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for j, (batch, n) in enumerate(zip(micro, counts, strict=True)):
        last = j == len(micro) - 1
        sync = contextlib.nullcontext() if last or not hasattr(module, "no_sync") \
            else module.no_sync()
        with sync:
            with autocast:
                loss = module(batch.to(device, non_blocking=True))
            (loss * (n * world / total)).backward()
        loss_sum += loss.detach().double() * n
    loss_value = float(all_reduce(loss_sum.reshape(1)).item()) / total
    norm = float(nn.utils.clip_grad_norm_(module.parameters(), grad_clip))
    applied = math.isfinite(loss_value) and math.isfinite(norm)
    if applied:
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_value, norm, total, applied)
