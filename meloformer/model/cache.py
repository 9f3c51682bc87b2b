"""KVCache: the decode cache's keys and values, the model-side half of generation's
DecodeCache (meloformer/generate/cache.py adds the slot tables the mask reads).

As gpt-fast's KVCache: a module only so that its tensors are buffers. Attention writes the new
rows' keys/values with `update` and attends over what it returns; the rows, their slots and the
slot range to read come in the AttentionPlan (MeloFormer.decode_plan), so training, prefill
and decode run the one Block.forward.

The compiled decode step (CUDA graphs) writes these buffers in place, and CUDA graph trees
replay a graph that mutates an input only if that input is static: so the buffers are
allocated once, never reassigned, and marked static addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from meloformer.model.config import ModelConfig


@dataclass(frozen=True)
class DecodeRows:
    """Query rows of one cached step, (B, Q) int64 each unless noted.

    Attributes:
        ids: token ids (0 at summary rows).
        program, track: embedding inputs (of the cell, at summary rows).
        summary: (B, Q) bool, rows that take the summary vector instead of a token.
        coords: RoPE coordinates (bar, pos, index in cell), (B, Q, 3).
        slot: the cache slot each row writes.
    """

    ids: torch.Tensor
    program: torch.Tensor
    track: torch.Tensor
    summary: torch.Tensor
    coords: torch.Tensor
    slot: torch.Tensor


@dataclass(frozen=True)
class LayerKV:
    """One layer's view of a KVCache: k, v (B, KV, N, D), views of the cache's buffers, and
    the batch row index (B, 1) that the slot writes pair with."""

    k: torch.Tensor
    v: torch.Tensor
    rows: torch.Tensor

    def update(self, slot: torch.Tensor, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, KV, Q, D) of the query rows at their slots (B, Q), in place; return
        every slot's keys and values, (B, KV, N, D) each (as gpt-fast's KVCache.update)."""
        self.k[self.rows, :, slot] = k.transpose(1, 2)
        self.v[self.rows, :, slot] = v.transpose(1, 2)
        return self.k, self.v


class KVCache(nn.Module):
    """Keys/values (n_layer, B, KV, N, D) of N slots per batch row; no parameters.

    Args:
        cfg: the model's config (layers, KV heads, head size).
        batch: rows B.
        n_slots: N.
        device, dtype: of the buffers (the model's).
    """

    def __init__(self, cfg: ModelConfig, batch: int, n_slots: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        shape = (cfg.n_layer, batch, cfg.n_kv_head, n_slots, cfg.head_dim)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype))
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype))
        for buffer in (self.k, self.v):
            torch._dynamo.mark_static_address(buffer)
        # Batch row of each slot write, made once (a constant, not state: no buffer).
        self.rows = torch.arange(batch, device=device)[:, None]

    @property
    def n_slots(self) -> int:
        return self.k.shape[3]

    def layer(self, i: int) -> LayerKV:
        """Layer i's view (no copy)."""
        return LayerKV(self.k[i], self.v[i], self.rows)
