"""MeloFormer: embeddings, the summary stream, the block stack and the tied LM head; and its
pre-norm block (RMSNorm -> attention, RMSNorm -> SwiGLU, residuals)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from meloformer.model.attention import Attention, AttentionPlan, additive_mask
from meloformer.model.batch import IGNORE, Batch
from meloformer.model.cache import DecodeRows, KVCache, LayerKV
from meloformer.model.config import ModelConfig
from meloformer.model.plan import MaskPlan, block_mask, build_plan, resolve_executor
from meloformer.model.rope import MultiAxisRoPE


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


class MeloFormer(nn.Module):
    """Decoder-only transformer over HID tokens with one summary token per (track, bar).

    The regular tokens and the summary slots run through every layer as one stream of
    L = T + S rows (see layout.py); the mask decides who reads whom. Logits are produced for
    the regular tokens only, in HID order.

    One path for training, prefill and decode: `embed_rows` builds every input row (a Batch's
    rows in execution order, or a cached step's query rows) and `trunk` runs the blocks over
    them, with a KVCache when decoding (`decode`) and without (`forward`).
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

        The convenience path (evaluation, tests, the full-forward oracle): the MaskPlan is
        built on the CPU, as the training loader builds it, then moved to the batch's device.

        Args:
            batch: the Batch (on the model's device).
            executor: override of cfg.attention ("flex", "sdpa", "dense", "auto").

        Raises:
            ValueError: a token id or metadata value outside the embedding tables, or a
                summary executor asked of a dense-only model.
        """
        kind = resolve_executor(executor or self.cfg.attention, batch.device)
        mask_plan = build_plan(batch.to("cpu"), self.cfg, kind, batch.device)
        return self.attention_plan(mask_plan.to(batch.device))

    def attention_plan(self, plan: MaskPlan) -> AttentionPlan:
        """Wrap a MaskPlan already on the model's device: rotary tables and the BlockMask's
        mask_mod. Tensor ops only, no host sync (the training step's path).

        Raises:
            ValueError: a summary executor asked of a dense-only model.
        """
        if plan.executor != "dense" and self.summary_emb is None:
            raise ValueError(f"executor {plan.executor!r} needs summaries; this model was "
                             "built dense")
        lay = plan.layout
        coords = lay.coords[:, : lay.n_regular] if plan.executor == "dense" else lay.coords
        bm = block_mask(plan, self.cfg) if plan.executor == "flex" else None
        order, bias = plan.order, None
        if order is not None:  # sdpa: the rows in clock order
            coords = coords.gather(1, order[..., None].expand_as(coords))
            if plan.mask.device.type == "cpu":  # the causal kernel's form of the mask
                bias = additive_mask(plan.mask)  # (B, 1, L, L)
        return AttentionPlan(plan.executor, lay, self.rope(coords), block_mask=bm,
                             mask=plan.mask, order=order, bias=bias)

    def embed_rows(self, ids: torch.Tensor, program: torch.Tensor, track: torch.Tensor,
                   summary: torch.Tensor | None = None) -> torch.Tensor:
        """Input vectors (B, R, C) of R rows: the token's embedding, or the summary vector
        where `summary` (B, R) is True, plus the program and track embeddings (of the cell,
        for a summary). ids, program, track: (B, R) int64; summary None = all tokens."""
        x = self.tok_emb(ids)
        if summary is not None and self.summary_emb is not None:
            x = torch.where(summary[..., None], self.summary_emb, x)
        return x + self.program_emb(program) + self.track_emb(track)

    def embed(self, batch: Batch, plan: AttentionPlan) -> torch.Tensor:
        """Input rows (B, L, C) in the attention call's order: the layout's (regular tokens,
        then summary slots), or plan.order's where the plan has one."""
        lay = plan.layout
        ids, program, track = batch.ids, batch.program, batch.track
        if plan.executor == "dense":
            return self.embed_rows(ids, program, track)
        if lay.perm is not None:
            ids, program, track = (t.gather(1, lay.perm) for t in (ids, program, track))
        B, T = ids.shape
        summary = torch.arange(lay.length, device=ids.device).expand(B, -1) >= T
        x = self.embed_rows(torch.cat([ids, ids.new_zeros(B, lay.n_summary)], dim=1),
                            torch.cat([program, lay.summary_program], dim=1),
                            torch.cat([track, lay.summary_track], dim=1), summary)
        return x if plan.order is None else x.gather(1, plan.order[..., None].expand_as(x))

    def trunk(self, x: torch.Tensor, plan: AttentionPlan, cache: KVCache | None = None
              ) -> torch.Tensor:
        """The block stack over input rows x (B, L, C) -> (B, L, C) (before the final norm,
        which the callers apply to the rows they read out); with a cache, every layer reads
        and writes its slice of it."""
        for i, block in enumerate(self.blocks):
            x = block(x, plan, None if cache is None else cache.layer(i))
        return x

    def decode_plan(self, rows: DecodeRows, mask: torch.Tensor, span: tuple[int, int],
                    index: torch.Tensor | None = None) -> AttentionPlan:
        """The plan of a cached step: the rows' rotary tables, their slots, and `mask`
        (B, 1, Q, hi - lo) bool over the cache slots span = [lo, hi); or, with `index`
        (B, G, n), the gathered form: Q rows in G groups, each over its n slots, mask
        (B, G, R, n) (DecodeCache.attention). No host sync."""
        return AttentionPlan("sdpa", None, self.rope(rows.coords), mask=mask, slot=rows.slot,
                             span=span, index=index)

    def decode(self, rows: DecodeRows, plan: AttentionPlan, cache: KVCache) -> torch.Tensor:
        """Logits (B, Q, V) of every query row of a cached step (prefill or one-token decode):
        the rows' keys/values are written to `cache` layer by layer. No host sync (compilable).
        """
        x = self.embed_rows(rows.ids, rows.program, rows.track, rows.summary)
        return self.lm_head(self.norm(self.trunk(x, plan, cache)))

    def forward(self, batch: Batch, plan: AttentionPlan | MaskPlan | None = None
                ) -> torch.Tensor:
        """Next-token logits (B, T, V) of the regular tokens, in HID order.

        `plan`: an AttentionPlan, a MaskPlan on the batch's device (the training step), or
        None (built here by `plan`, with host syncs).
        """
        if plan is None:
            plan = self.plan(batch)
        elif isinstance(plan, MaskPlan):
            plan = self.attention_plan(plan)
        x = self.trunk(self.embed(batch, plan), plan)  # (B, L, C)
        T, perm = batch.shape[1], plan.layout.perm
        if plan.order is not None:  # the regular rows, out of clock order: (B, T, C)
            rows = plan.order.argsort(dim=1)[:, :T]  # call row of each layout row
            x = x.gather(1, rows[..., None].expand(-1, -1, x.shape[-1]))
        h = self.norm(x[:, :T])  # summary rows end here
        if plan.executor == "flex" and perm is not None:
            h = torch.empty_like(h).scatter(1, perm[..., None].expand_as(h), h)  # back to HID
        return self.lm_head(h)

    def loss(self, batch: Batch, plan: AttentionPlan | MaskPlan | None = None) -> torch.Tensor:
        """Mean cross-entropy of `targets` (IGNORE positions skipped)."""
        logits = self.forward(batch, plan)
        return F.cross_entropy(
            logits.flatten(0, 1).float(), batch.targets.flatten(), ignore_index=IGNORE
        )
