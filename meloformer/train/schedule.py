"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


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
