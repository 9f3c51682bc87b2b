"""Infill training examples: a share of the training rows (`train.infill_rate`) are laid out
for infilling (docs/hid.md "Infilling") -- one random track, a random span of 1-8 bars.

Loss policy (docs/generation.md "Infilling"): every target is kept except a `FILL`
placeholder as a target: *which* bars are placeholders is the user's choice (random in
training), not music, and learning it would teach plain generation to emit placeholders. The
placeholders are inputs; the song around them stays a language-modelling target as in a plain
row, and the fills (FILL_START, the span's notes, FILL_END, EOS) are targets.
"""

from __future__ import annotations

import numpy as np

from meloformer.data import SongIndex, crop
from meloformer.hid import BOS, Encoding, Family, Vocab, infill_layout, random_span
from meloformer.model import IGNORE, Batch

MAX_SPAN_BARS = 8
GROWTH = 2 * MAX_SPAN_BARS  # tokens a span adds at most (FILL_START and FILL_END per bar)
INFILL_STREAM = 7  # salt of the infill RNG stream, apart from the crop's
CONTROL_STREAM = 11  # salt of the per-bar control drops (hid/controls.py add_controls)
TRANSPOSE_STREAM = 13  # salt of the transposition draw (hid/transpose.py)


def song_rng(seed: int, epoch: int, song: int, stream: int) -> np.random.Generator:
    """The per-(epoch, song) RNG of one draw (`stream`: INFILL_STREAM, CONTROL_STREAM,
    TRANSPOSE_STREAM), apart from the crop's and from each other."""
    return np.random.default_rng([seed, epoch, song, stream])


def song_example(
    enc: Encoding, max_len: int, crop_rng: np.random.Generator,
    fill_rng: np.random.Generator, rate: float, vocab: Vocab,
) -> Encoding:
    """One training song: with probability `rate` an infill example, else the plain crop.

    `max_len` is the row the planner made for the song, GROWTH tokens of room included
    (example_room), so an infill example is cropped to max_len - GROWTH and a song that
    fits its row is not cut at all. `rate == 0` draws nothing from `fill_rng` and returns
    exactly `crop(enc, max_len, crop_rng)`.
    """
    if rate <= 0 or fill_rng.random() >= rate:
        return crop(enc, max_len, crop_rng)
    budget = max_len - GROWTH
    header = int(((enc.ids == BOS) | (enc.type == Family.TRACK)).sum())
    if budget < header + 8:  # too short to cut: keep the plain row
        return crop(enc, max_len, crop_rng)
    window = crop(enc, budget, crop_rng)
    span = random_span(window, fill_rng, MAX_SPAN_BARS)
    return window if span is None else infill_layout(window, [span], vocab)


def example_room(index: SongIndex, infill_rate: float, control_rate: float) -> np.ndarray:
    """Tokens each song's training example may add to it: two controls per instrument cell
    when controls are on, GROWTH fill markers when infill is on (SongIndex.with_room)."""
    room = np.zeros_like(index.n_tokens)
    if control_rate > 0:
        room += 2 * index.n_cells
    if infill_rate > 0:
        room += GROWTH
    return room


def ignore_placeholder_targets(batch: Batch, vocab: Vocab) -> None:
    """Targets that are a FILL placeholder -> IGNORE, in place (see the module docstring)."""
    batch.targets.masked_fill_(batch.targets == vocab.index["FILL"], IGNORE)
