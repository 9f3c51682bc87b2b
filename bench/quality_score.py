"""The scoring of bench/quality.py: bits per note of a model over eval windows, and the
music side, generated vs real: HID samples through the project's generate API, every MIDI
read back onto the HID grid as a Score, the real songs' first bars as Scores, and the train
songs' pitch ranges per program (the out-of-range share's reference). Nothing here trains.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from bench.quality_data import Song, take_bars
from bench.quality_remi import GenSettings
from meloformer.data import pitch_ranges
from meloformer.generate import Conditions, Request, from_scratch, generate
from meloformer.hid import (
    EOS,
    Encoding,
    Family,
    HIDConfig,
    HIDError,
    Score,
    Vocab,
    decode,
    parse_tokens,
    score_bytes,
)
from meloformer.model import IGNORE, Batch, MeloFormer

LN2 = math.log(2)


# ---------------------------------------------------------------- scoring


def score(model: MeloFormer, windows: list[Encoding], notes: list[int], family_of: np.ndarray,
          n_families: int, batch_size: int = 4) -> dict:
    """Bits per note and per token over the windows, and bits per note by target family.

    Args:
        windows: one Encoding per song (fits the model); notes: its note count.
        family_of: token id -> family index < n_families.
    """
    model.eval()
    total_bits, total_tokens = 0.0, 0
    fam_bits = np.zeros(n_families)
    for i in range(0, len(windows), batch_size):
        batch = Batch.from_encodings([[w] for w in windows[i : i + batch_size]])
        with torch.no_grad():
            logits = model(batch).float()
        nll = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(),
                              ignore_index=IGNORE, reduction="none")
        keep = batch.targets.flatten() != IGNORE
        bits = nll[keep].double().numpy() / LN2
        fam = family_of[batch.targets.flatten()[keep].numpy()]
        fam_bits += np.bincount(fam, weights=bits, minlength=n_families)
        total_bits += float(bits.sum())
        total_tokens += int(keep.sum())
    n = sum(notes)
    return {"bits_per_note": total_bits / n, "bits_per_token": total_bits / total_tokens,
            "notes": n, "tokens": total_tokens, "family_bits_per_note": (fam_bits / n).tolist()}


# ---------------------------------------------------------------- generated vs real


def hid_samples(model: MeloFormer, vocab: Vocab, g: GenSettings) -> list[bytes | None]:
    """HID: the project's generate API (grammar-constrained, KV cache) asked for `bars` bars
    within `max_tokens`, each song decoded to MIDI by the project's decoder."""
    req = Request(from_scratch(vocab), Conditions(n_bars=g.bars, max_tokens=g.max_tokens),
                  g.sampling(), g.n_samples)
    return [midi_bytes(decode(song.ids, vocab)) for song in generate(model, vocab, req)]


def midi_bytes(mid) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def midi_scores(midis: list[bytes | None]) -> tuple[list[Score], int]:
    """Each MIDI read back by the HID encoder onto its grid, as the metrics expect; the number
    it could not read (empty, or rejected) is returned beside the scores."""
    scores = []
    for data in midis:
        try:
            scores.append(score_bytes(data, HIDConfig()) if data else None)
        except HIDError:
            scores.append(None)
    ok = [s for s in scores if s is not None]
    return ok, len(scores) - len(ok)


def real_scores(songs: list[Song], bars: int, vocab: Vocab) -> list[Score]:
    """The real songs' first `bars` bars (every track), as Scores."""
    out = []
    for s in songs:
        ids = take_bars(s.hid, 0, bars).ids.astype(np.int64)
        out.append(parse_tokens(ids if ids[-1] == EOS else np.r_[ids, EOS], vocab))
    return out


def train_pitch_ranges(songs: list[Song], vocab: Vocab) -> dict[int, tuple[int, int]]:
    """Per program, the pitch range of the train songs (meloformer.data.meta.pitch_ranges,
    the rule preprocess writes to meta.json), for the out-of-range share."""
    hist = np.zeros(130 * 128, dtype=np.int64)
    for s in songs:
        keep = s.hid.type == Family.PITCH
        cells = s.hid.program[keep].astype(np.int64) * 128 + vocab.value_of[s.hid.ids[keep]]
        hist += np.bincount(cells.astype(np.int64), minlength=hist.size)
    return {int(k): (v[0], v[1]) for k, v in pitch_ranges(hist.reshape(130, 128)).items()}
