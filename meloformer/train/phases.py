"""The three training phases and the log lines announcing a switch.

1: compile warm-up, micro-batch 1 and no loader workers (shapes settle while compiling);
2: loader workers on; 3: the target micro-batch. The accumulation steps stay as configured
unless an out-of-memory halves the micro-batch (then the accumulation doubles).
"""

from __future__ import annotations

from dataclasses import dataclass

from meloformer.train.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """What the data loader and the step run with."""

    index: int
    batch_size: int
    accum: int
    num_workers: int


def phase_at(step: int, cfg: TrainConfig, oom_halvings: int = 0) -> Phase:
    """The phase of optimizer step `step`; `oom_halvings` out-of-memory halvings applied."""
    if step < cfg.phase2_step:
        index, batch, workers = 1, 1, 0
    elif step < cfg.phase3_step:
        index, batch, workers = 2, 1, cfg.num_workers
    else:
        index, batch, workers = 3, cfg.batch_size, cfg.num_workers
    accum = cfg.gradient_accumulation_steps
    for _ in range(oom_halvings):
        if batch > 1:
            batch, accum = batch // 2, accum * 2
    return Phase(index, batch, accum, workers)


def switch_line(step: int, old: Phase | None, new: Phase) -> str:
    """The seed's log line for a phase switch (or the start, when `old` is None)."""
    if old is None:
        return (f"Step {step}: Phase {new.index} start: batch_size {new.batch_size}, "
                f"gradient_accumulation_steps {new.accum}, num_workers {new.num_workers}")
    return (f"Step {step}: Phase {old.index} → Phase {new.index}: "
            f"batch_size {old.batch_size} → {new.batch_size}, "
            f"gradient_accumulation_steps {old.accum} → {new.accum}, "
            f"num_workers {old.num_workers} → {new.num_workers}")


def oom_line(step: int, old: Phase, new: Phase) -> str:
    """Log line after a CUDA out-of-memory."""
    return (f"Step {step}: CUDA out of memory: batch_size {old.batch_size} → {new.batch_size}, "
            f"gradient_accumulation_steps {old.accum} → {new.accum}")
