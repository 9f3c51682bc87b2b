"""Which torch device a run uses: the one rule for every stage's `device` knob."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a `device` knob names.

    Args:
        name: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N".
        local_rank: the GPU a bare "cuda" means (this process's rank on its node under
            torchrun; 0 otherwise).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)
