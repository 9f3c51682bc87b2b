"""MeloFormer: embeddings, the summary stream, the block stack and the tied LM head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from meloformer.model.attention import AttentionPlan, build_masks, resolve_executor
from meloformer.model.batch import IGNORE, Batch
from meloformer.model.config import ModelConfig
from meloformer.model.layers import Block
from meloformer.model.rope import MultiAxisRoPE


class MeloFormer(nn.Module):
    """Decoder-only transformer over HID tokens with one summary token per (track, bar).

    The regular tokens and the summary slots run through every layer as one stream of
    L = T + S rows (see layout.py); the mask decides who reads whom. Logits are produced for
    the regular tokens only, in HID order.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.n_embd
        self.tok_emb = nn.Embedding(cfg.vocab_size, C)
        self.program_emb = nn.Embedding(cfg.n_programs, C)
        self.track_emb = nn.Embedding(cfg.max_tracks, C)
        # The summary input: one learned vector (+ its cell's program and track embeddings);
        # content arrives through SR. The dense baseline has no summaries, hence no vector.
        self.summary_emb = None if cfg.attention == "dense" else nn.Parameter(torch.zeros(C))
        self.rope = MultiAxisRoPE(cfg.head_dim, cfg.rope_split, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.RMSNorm(C, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(C, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied
        self._init_weights()

    def _init_weights(self) -> None:
        """N(0, init_std) everywhere (embeddings included); residual outputs scaled down by
        sqrt(2 n_layer) as in GPT-2."""
        std, depth = self.cfg.init_std, math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if "norm" in name:
                continue
            residual = name.endswith(("wo.weight", "w2.weight"))
            nn.init.normal_(p, mean=0.0, std=std / depth if residual else std)

    def num_params(self) -> int:
        """Trainable parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def plan(self, batch: Batch, executor: str | None = None) -> AttentionPlan:
        """Layout, mask and rotary tables of a batch, built once and shared by all layers.

        Args:
            batch: the Batch (on the model's device).
            executor: override of cfg.attention ("flex", "sdpa", "dense", "auto").

        Raises:
            ValueError: a token id or metadata value outside the embedding tables, or a
                summary executor asked of a dense-only model.
        """
        kind = resolve_executor(executor or self.cfg.attention, batch.device)
        if kind != "dense" and self.summary_emb is None:
            raise ValueError(f"executor {kind!r} needs summaries; this model was built dense")
        self._check_ranges(batch)
        lay, block_mask, mask = build_masks(batch, self.cfg, kind)
        coords = lay.coords[:, : lay.n_regular] if kind == "dense" else lay.coords
        return AttentionPlan(kind, lay, self.rope(coords), block_mask=block_mask, mask=mask)

    def _check_ranges(self, batch: Batch) -> None:
        cfg = self.cfg
        limits = {"ids": cfg.vocab_size, "program": cfg.n_programs, "track": cfg.max_tracks}
        highs = torch.stack([getattr(batch, name).max() for name in limits]).tolist()
        lows = torch.stack([getattr(batch, name).min() for name in limits]).tolist()
        for (name, limit), high, low in zip(limits.items(), highs, lows, strict=True):
            if low < 0 or high >= limit:
                raise ValueError(f"Batch.{name}: values {low}..{high} outside 0..{limit - 1}")

    def embed(self, batch: Batch, plan: AttentionPlan) -> torch.Tensor:
        """Input rows in execution order: regular tokens, then summary slots, (B, L, C)."""
        lay = plan.layout
        x = self.tok_emb(batch.ids) + self.program_emb(batch.program) + self.track_emb(batch.track)
        if plan.executor == "dense":
            return x
        if lay.perm is not None:
            x = x.gather(1, lay.perm[..., None].expand_as(x))
        summary = self.program_emb(lay.summary_program) + self.track_emb(lay.summary_track)
        return torch.cat([x, summary + self.summary_emb], dim=1)

    def forward(self, batch: Batch, plan: AttentionPlan | None = None) -> torch.Tensor:
        """Next-token logits (B, T, V) of the regular tokens, in HID order."""
        plan = plan if plan is not None else self.plan(batch)
        x = self.embed(batch, plan)  # (B, L, C)
        for block in self.blocks:
            x = block(x, plan)
        T, perm = batch.shape[1], plan.layout.perm
        h = self.norm(x[:, :T])  # summary rows end here
        if plan.executor == "flex" and perm is not None:
            h = torch.empty_like(h).scatter(1, perm[..., None].expand_as(h), h)  # back to HID
        return self.lm_head(h)

    def loss(self, batch: Batch, plan: AttentionPlan | None = None) -> torch.Tensor:
        """Mean cross-entropy of `targets` (IGNORE positions skipped)."""
        logits = self.forward(batch, plan)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), batch.targets.flatten(), ignore_index=IGNORE
        )
