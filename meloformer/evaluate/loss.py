"""Validation loss and perplexity, overall and per token family (of the predicted token)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from meloformer.device import autocast
from meloformer.hid import Encoding, Family
from meloformer.model import IGNORE, Batch, MeloFormer


def token_losses(model: MeloFormer, songs: Sequence[Encoding], dtype: torch.dtype | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy of every next-token prediction in a batch of songs (one song per row),
    the forward pass under autocast `dtype` (None: fp32), the cross-entropy in fp32.

    Returns:
        (losses float64 [N], target ids int64 [N]) over all real targets of the batch.
    """
    device = next(model.parameters()).device
    batch = Batch.from_encodings([[s] for s in songs]).to(device)
    with torch.no_grad(), autocast(device, dtype):
        logits = model(batch)
    logits = logits.float()
    targets = batch.targets
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                           reduction="none")
    keep = targets.flatten() != IGNORE
    return loss[keep].double().cpu().numpy(), targets.flatten()[keep].cpu().numpy()


def family_loss(
    model: MeloFormer, songs: Sequence[Encoding], family_of: np.ndarray, batch_size: int = 4,
    dtype: torch.dtype | None = None,
) -> dict:
    """Mean loss and perplexity over all songs, overall and per family of the target token.

    Args:
        model: the model (set to eval mode here).
        songs: validation songs, already cropped to a length the model can run.
        family_of: Vocab.family_of (token id -> Family).
        batch_size: songs per forward pass.
        dtype: autocast dtype of the forward passes (None: fp32).

    Returns:
        {"loss", "perplexity", "tokens", "notes", "bits_per_note", "by_family": {NAME:
        {"loss", "perplexity", "tokens"}}}; NaN loss where no token was seen.
        bits_per_note: the summed NLL in bits over the notes (PITCH tokens) it covers, the
        unit bench/quality.py compares across tokenisations.
    """
    model.eval()
    sums = np.zeros(len(Family))
    counts = np.zeros(len(Family), dtype=np.int64)
    for i in range(0, len(songs), batch_size):
        losses, targets = token_losses(model, songs[i : i + batch_size], dtype)
        fam = family_of[targets].astype(np.int64)
        sums += np.bincount(fam, weights=losses, minlength=len(Family))
        counts += np.bincount(fam, minlength=len(Family))
    out = _summary(sums.sum(), int(counts.sum()))
    notes = int(counts[Family.PITCH])
    out["notes"] = notes
    out["bits_per_note"] = sums.sum() / math.log(2) / notes if notes else float("nan")
    out["by_family"] = {
        f.name: _summary(sums[f], int(counts[f])) for f in Family if counts[f] > 0
    }
    return out


def _summary(total: float, n: int) -> dict:
    loss = total / n if n else float("nan")
    return {"loss": loss, "perplexity": math.exp(loss) if n else float("nan"), "tokens": n}
