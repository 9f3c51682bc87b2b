"""Sampling one token per row from masked logits: temperature, top-k, top-p (gpt-fast style)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn.

    Attributes:
        temperature: divides the logits; 0 = greedy (argmax).
        top_k: keep the k most likely legal tokens (0 = all).
        top_p: keep the smallest set of legal tokens whose probability reaches p (1 = all).
        seed: seeds the sampling generator (same seed, same model, same samples).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"SamplingConfig: need temperature >= 0, top_k >= 0, 0 < top_p <= 1; got {self}"
            )


def logits_to_probs(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """(B, V) logits (illegal tokens already -inf) -> (B, V) probabilities."""
    logits = logits / max(cfg.temperature, 1e-5)
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p < 1:
        ranked, order = logits.sort(dim=-1, descending=True)
        mass = ranked.softmax(-1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p (the first stays).
        drop = (mass - ranked.softmax(-1)) >= cfg.top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits.softmax(dim=-1)


def pool_closing(logits: torch.Tensor, sources: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
    """Give the probability of `sources` to `targets`, in proportion to the targets' own.

    Used where a bar must close its track (Controller.closing): the model's mass on every
    way of ending the bar (BAR, CHORD_x, any opener, EOS) goes to the closing tokens the
    constraints allow, rather than being masked away.

    Args:
        logits: (B, V).
        sources: (B, V) bool, the tokens whose mass is pooled (targets included).
        targets: (B, V) bool, the tokens that receive it; rows with none are unchanged.

    Returns:
        (B, V) logits; only target entries change, each raised by
        logsumexp(sources) - logsumexp(targets) of its row.
    """
    logits = logits.float()
    neg = float("-inf")
    pooled = logits.masked_fill(~(sources | targets), neg).logsumexp(-1, keepdim=True)
    own = logits.masked_fill(~targets, neg).logsumexp(-1, keepdim=True)
    shift = torch.where(targets.any(-1, keepdim=True) & torch.isfinite(own), pooled - own, 0.0)
    return torch.where(targets, logits + shift, logits)


def sample(
    logits: torch.Tensor, allowed: torch.Tensor, cfg: SamplingConfig, gen: torch.Generator
) -> torch.Tensor:
    """One legal token per row.

    Args:
        logits: (B, V) next-token logits.
        allowed: (B, V) bool, at least one True per row.
        cfg: temperature / top-k / top-p.
        gen: the random generator (on the logits' device).

    Returns:
        (B,) int64 token ids, each allowed in its row.
    """
    logits = logits.float().masked_fill(~allowed, float("-inf"))
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    probs = logits_to_probs(logits, cfg)
    # Exponential race (gpt-fast's multinomial_sample_one_no_sync): argmax p / E, E ~ Exp(1).
    race = torch.empty_like(probs).exponential_(1, generator=gen)
    return (probs / race).argmax(dim=-1)
