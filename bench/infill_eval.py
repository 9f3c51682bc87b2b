"""Evaluation of infilling for bench/infill.py (docs/generation.md "Evaluation of infilling
and controls"); the pipeline's evaluate stage does not run it.

- Infill quality: bits per note of a span's notes, written as a fill (a) with the whole song
  as context and (b) without it: the song reduced to its conductor (time map and chords, the
  plan every note sees) and the span's own track holding only the span (its other bars empty,
  every other track gone). The same tokens are scored both ways: the span's POS, VEL, PITCH
  and DUR tokens; bits / the span's notes. The context must help: (a) < (b).
- Control steering: meloformer/evaluate/steering.py (paired seeds, per level, against a
  baseline).
- Music-metric gap: the metrics of the spans the model fills against the real spans'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from meloformer.evaluate import (
    SPAN_BARS,
    Piece,
    empty_beat_rate,
    note_density,
    pitch_class_entropy,
    polyphony,
    scale_consistency,
)
from meloformer.generate import Conditions, Request, SamplingConfig, generate, infill
from meloformer.hid import (
    BOS,
    EOS,
    META_FIELDS,
    Encoding,
    Family,
    Score,
    Span,
    Vocab,
    fill_mask,
    infill_layout,
    parse_tokens,
    random_span,
    restore,
)
from meloformer.model import Batch, MeloFormer

FILL_TOP_P = 0.95  # fill_metric_gap samples as generate's default does

SCORED = (Family.POSITION, Family.VELOCITY, Family.PITCH, Family.DURATION)


def without_context(song: Encoding, span: Span) -> Encoding:
    """The song reduced to BOS, its conductor and the span's track holding only the span's
    bars' notes (its other bars empty); that track becomes track 1, EOS follows it."""
    t = span.track + 1
    own = song.track == t
    in_span = (song.bar >= span.first) & (song.bar <= span.last)
    opener_or_bar = np.isin(song.type, (Family.TRACK, Family.BAR))
    keep = (song.track == 0) | (own & (opener_or_bar | in_span)) | (song.ids == EOS)
    cols = {name: getattr(song, name)[keep].copy() for name in ("ids", *META_FIELDS)}
    cols["track"] = np.where(cols["track"] > 0, 1, 0).astype(song.track.dtype)
    cols["track"][cols["ids"] == BOS] = 0
    if cols["ids"][-1] == EOS:  # EOS takes the (only) track's last bar and program
        last_body = np.flatnonzero(cols["track"][:-1] == 1)[-1]
        for name in ("track", "bar", "program"):
            cols[name][-1] = cols[name][last_body]
    notes = int((cols["type"] == Family.PITCH).sum())
    return Encoding(**cols, n_bars=song.n_bars, n_tracks=1, n_notes=notes)


@dataclass(frozen=True)
class SpanScore:
    """Bits of a span's scored tokens with and without the context, and its notes."""

    bits_with: float
    bits_without: float
    notes: int


def span_score(model: MeloFormer, song: Encoding, span: Span, vocab: Vocab) -> SpanScore:
    """Score one span of a plain-layout song both ways (see the module docstring)."""
    with_ctx = infill_layout(song, [span], vocab)
    alone = infill_layout(without_context(song, span), [Span(0, span.first, span.last)], vocab)
    bits = [_fill_bits(model, enc, vocab) for enc in (with_ctx, alone)]
    if bits[0][1] != bits[1][1]:
        raise AssertionError(f"span {span}: {bits[0][1]} vs {bits[1][1]} scored tokens")
    notes = int(((song.track == span.track + 1) & (song.bar >= span.first)
                 & (song.bar <= span.last) & (song.type == Family.PITCH)).sum())
    return SpanScore(bits[0][0], bits[1][0], notes)


def _fill_bits(model: MeloFormer, enc: Encoding, vocab: Vocab) -> tuple[float, int]:
    """Summed NLL (bits) of the fill section's scored tokens, and how many were scored."""
    device = next(model.parameters()).device
    batch = Batch.from_encodings([[enc]]).to(device)
    with torch.no_grad():
        logits = model(batch).float()[0]  # (T, V)
    section = torch.from_numpy(fill_mask(enc.ids, vocab)).to(device)
    scored = torch.from_numpy(np.isin(enc.type, SCORED)).to(device)
    # Position i predicts token i + 1: score the predictions of scored fill tokens.
    want = (section & scored)[1:]
    nll = F.cross_entropy(logits[:-1], batch.ids[0, 1:], reduction="none")
    return float(nll[want].sum()) / math.log(2), int(want.sum())


def eval_span(song: Encoding, rng: np.random.Generator) -> Span | None:
    """A span to score: training's draw (hid.infill.random_span) of 1..SPAN_BARS bars, the
    spans the steering report scores."""
    return random_span(song, rng, SPAN_BARS)


def infill_quality(model: MeloFormer, songs: Sequence[Encoding], vocab: Vocab,
                   seed: int = 0) -> dict:
    """Bits per note of one random span per song, with and without context (summed over
    songs before dividing), and the share of spans the context helps."""
    rng = np.random.default_rng(seed)
    scores = []
    for song in songs:
        span = eval_span(song, rng)
        if span is not None:
            scores.append(span_score(model, song, span, vocab))
    notes = sum(s.notes for s in scores)
    return {
        "spans": len(scores),
        "notes": notes,
        "bits_per_note_with_context": sum(s.bits_with for s in scores) / max(notes, 1),
        "bits_per_note_without_context": sum(s.bits_without for s in scores) / max(notes, 1),
        "share_helped": float(np.mean([s.bits_with < s.bits_without for s in scores]))
        if scores else 0.0,
    }


SPAN_METRICS = {
    "pitch_class_entropy": pitch_class_entropy,
    "scale_consistency": scale_consistency,
    "polyphony": polyphony,
    "note_density": note_density,
    "empty_beat_rate": empty_beat_rate,
}


def span_piece(score: Score, span: Span, vocab: Vocab) -> Piece:
    """The span's bars of its track as a Piece of their own (bars renumbered from 0)."""
    first, last = span.first, span.last + 1
    sel = (score.track == span.track) & (score.bar >= first) & (score.bar < last)
    sub = Score(
        starts=score.starts[first:last] - score.starts[first], ts=score.ts[first:last],
        tempos=[], chords=None, programs=[score.programs[span.track]],
        track=np.zeros(int(sel.sum()), dtype=score.track.dtype),
        bar=score.bar[sel] - first, pos=score.pos[sel], pitch=score.pitch[sel],
        dur=score.dur[sel], vel=score.vel[sel],
    )
    return Piece.from_score(sub, vocab)


def fill_metric_gap(model: MeloFormer, songs: Sequence[Encoding], vocab: Vocab,
                    seed: int = 0) -> dict:
    """The music metrics of the spans the model fills against the real spans: one random
    span per song (songs with EOS: whole songs or first_bars windows), filled by sampling
    (top-p FILL_TOP_P = 0.95, generate's default); per metric the mean over real spans,
    over filled spans, and |gap|."""
    rng = np.random.default_rng(seed)
    real, filled = {k: [] for k in SPAN_METRICS}, {k: [] for k in SPAN_METRICS}
    for k, song in enumerate(songs):
        span = eval_span(song, rng)
        if span is None:
            continue
        n_bars = span.last - span.first + 1
        req = Request(infill(vocab, song, [span]),
                      Conditions(max_tokens=len(song) + 2 * n_bars + 256),
                      SamplingConfig(top_p=FILL_TOP_P, seed=seed + k))
        (out,) = generate(model, vocab, req)
        for store, ids in ((real, song.ids), (filled, restore(out, vocab).ids)):
            piece = span_piece(parse_tokens(ids, vocab), span, vocab)
            for name, fn in SPAN_METRICS.items():
                store[name].append(fn(piece))
    out = {}
    for name in SPAN_METRICS:
        r, f = np.nanmean(real[name] or [np.nan]), np.nanmean(filled[name] or [np.nan])
        out[name] = {"real": float(r), "filled": float(f), "gap": float(abs(f - r))}
    return out
