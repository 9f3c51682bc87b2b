"""One optimizer step over a list of micro-batches: token-weighted loss across micro-batches
and ranks, autocast in the run's precision (meloformer.device), clipping, and the non-finite
guard.

The step never waits for the device: token counts come from the loader as host ints, the
loss, gradient norm and finiteness stay device tensors, and with the fused AdamW (CUDA) the
non-finite guard is the kernel's `found_inf` flag (the update is skipped on the device, as
GradScaler does). StepResult reads the values only when asked, after the step is queued.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from meloformer.device import autocast
from meloformer.model import Batch, MaskPlan
from meloformer.train.dist import all_reduce
from meloformer.train.loader import MicroBatch


class LossModule(nn.Module):
    """forward(batch, plan) -> the model's mean loss, so DDP's hooks see the loss computation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, plan: MaskPlan) -> torch.Tensor:
        return self.model.loss(batch, plan)


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step as device tensors; the properties read them (a host sync each, so
    read them after queuing what comes next).

    Attributes:
        loss_t: global mean loss, () float64.
        grad_norm_t: pre-clip gradient norm, ().
        ok_t: () bool, False when the loss or the gradient was not finite (update skipped).
        tokens_t: real target tokens of the step over all ranks (int, or a () tensor).
    """

    loss_t: torch.Tensor
    grad_norm_t: torch.Tensor
    ok_t: torch.Tensor
    tokens_t: int | torch.Tensor

    @cached_property
    def loss(self) -> float:
        return float(self.loss_t)

    @cached_property
    def grad_norm(self) -> float:
        return float(self.grad_norm_t)

    @cached_property
    def applied(self) -> bool:
        """False when the loss or the gradient was not finite and the update was skipped."""
        return bool(self.ok_t)

    @cached_property
    def tokens(self) -> int:
        return int(self.tokens_t)


def train_step(
    module: nn.Module, optimizer: torch.optim.Optimizer, micro: list[MicroBatch], lr: float,
    grad_clip: float, device: torch.device, world: int = 1, dtype: torch.dtype | None = None,
) -> StepResult:
    """Accumulate gradients over `micro`, then clip and update (or skip if non-finite).

    `dtype`: the autocast dtype of the forward pass (None: fp32); parameters, gradients and
    the optimizer state stay fp32 either way.

    Each micro-batch's mean loss is weighted by its share of the step's target tokens over all
    ranks, so the update equals one big batch's whatever the split into micro-batches/ranks.
    DDP averages gradients over ranks, hence the extra factor `world`.
    """
    counts = [m.plan.n_targets for m in micro]  # host ints, counted by the loader
    total = _total_tokens(sum(counts), device, world)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    for j, (m, n) in enumerate(zip(micro, counts, strict=True)):
        last = j == len(micro) - 1
        sync = contextlib.nullcontext() if last or not hasattr(module, "no_sync") \
            else module.no_sync()
        m = m.to(device, non_blocking=True)
        with sync:
            with autocast(device, dtype):
                loss = module(m.batch, m.plan)
            (loss * (n * world) / total).backward()
        loss_sum += loss.detach().double() * n
    loss_mean = all_reduce(loss_sum.reshape(1))[0] / total
    norm = nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    ok = torch.isfinite(loss_mean) & torch.isfinite(norm)
    for group in optimizer.param_groups:
        group["lr"] = lr
    _guarded_step(optimizer, ok)
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_mean, norm, ok, total)


def _total_tokens(local: int, device: torch.device, world: int) -> int | torch.Tensor:
    """Target tokens of the step over all ranks: the host int itself in one process, else an
    all-reduced device tensor (torch.full writes it on the device: no host-to-device copy)."""
    if world == 1:
        return local
    return all_reduce(torch.full((1,), local, dtype=torch.float64, device=device))[0]


def _guarded_step(optimizer: torch.optim.Optimizer, ok: torch.Tensor) -> None:
    """optimizer.step() unless `ok` is False. The fused AdamW takes the flag on the device
    (found_inf: no update, step count unchanged); other optimizers read it on the host."""
    if all(group.get("fused") for group in optimizer.param_groups):
        optimizer.found_inf = (~ok).to(torch.float32)
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif bool(ok):  # host sync: the CPU path, where there is no device to wait for
        optimizer.step()
