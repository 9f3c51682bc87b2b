"""Multi-axis rotary position embedding over (bar, onset position, index in cell).

Each pair of head dimensions is rotated by one integer coordinate times its own frequency,
so q.k after rotation depends only on the coordinate *differences* (tests/test_transformer.py
checks it). Rotation stays within a pair: the norm is preserved (the seed's "2D RoPE" rotated
across halves with mixed angles and was not a rotation).
"""

from __future__ import annotations

import torch
from torch import nn


class MultiAxisRoPE(nn.Module):
    """Rotary tables for integer coordinates with several axes.

    Args:
        head_dim: D (even).
        split: share of the D/2 pairs given to each axis, e.g. (1, 1, 2).
        base: frequency base; axis a's pairs use base ** (-k / n_a), k = 0..n_a-1.
    """

    def __init__(self, head_dim: int, split: tuple[int, ...], base: float = 10000.0):
        super().__init__()
        pairs = head_dim // 2
        unit, rest = divmod(pairs, sum(split))
        if head_dim % 2 or rest:
            raise ValueError(f"rope: head_dim {head_dim} does not split as {split}")
        freqs, axes = [], []
        for axis, share in enumerate(split):
            n = share * unit
            freqs.append(base ** (-torch.arange(n, dtype=torch.float64) / n))
            axes.append(torch.full((n,), axis, dtype=torch.long))
        self.register_buffer("inv_freq", torch.cat(freqs).float(), persistent=False)
        self.register_buffer("axis", torch.cat(axes), persistent=False)

    def forward(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin tables (B, 1, L, D/2) for coords (B, L, n_axes)."""
        angles = coords[..., self.axis].float() * self.inv_freq  # (B, L, D/2)
        return angles.cos()[:, None], angles.sin()[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (B, H, L, D) by the angles behind cos/sin."""
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).type_as(x)
