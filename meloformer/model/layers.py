"""The pre-norm transformer block: RMSNorm -> attention, RMSNorm -> SwiGLU, residuals."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from meloformer.model.attention import Attention, AttentionPlan
from meloformer.model.cache import LayerKV
from meloformer.model.config import ModelConfig


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), no biases."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.n_embd, cfg.intermediate_size, bias=False)  # gate
        self.w3 = nn.Linear(cfg.n_embd, cfg.intermediate_size, bias=False)  # up
        self.w2 = nn.Linear(cfg.intermediate_size, cfg.n_embd, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """One layer over the joint (regular ; summary) stream, (B, L, C) -> (B, L, C).

    Regular tokens and summaries share every weight (Museformer's share_sum_reg_params):
    the summaries are extra rows of the same attention call, which keeps every parameter
    on the loss path (no dead summary weights in the last layer).

    Training, prefill and one-token decode all run this forward; decoding passes the layer's
    KVCache view (see Attention.forward).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.ffn = FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, plan: AttentionPlan, cache: LayerKV | None = None
                ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), plan, cache))
        return x + self.drop(self.ffn(self.ffn_norm(x)))
