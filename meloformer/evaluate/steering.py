"""Do the per-bar controls steer? A report that can fail.

Paired design: for each test span (SPAN_BARS bars of one track of a val song, around a
note) and seed, the span is filled once per level of the control, all bars asked for that
level, and once without any control (the baseline) -- the same seed each time, so only the
request differs. Per level: the distribution of the realised value (notes per quarter for
density, notes per onset for polyphony), exact and +-1-bin adherence with a 95 % Wilson
interval, and the baseline's adherence to the same requests (what ignoring the control
scores). Over all levels: Spearman's rho between requested level and realised value.

Teacher-forced contrast: on val songs with every bar's true control written, the bits of
each bar's tokens with the true bin against a wrong one (every control of the kind moved
two bins at once), split by whether the bar's bin changed from the track's previous bar or
stayed (where the context already says most of what the control says).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from meloformer.generate import Conditions, Request, SamplingConfig, generate, infill
from meloformer.hid import (
    EMPTY,
    KINDS,
    LEVELS,
    META_FIELDS,
    N_BINS,
    ControlBins,
    Encoding,
    Family,
    Span,
    Vocab,
    add_controls,
    cell_stats,
    random_span,
    realised,
    restore,
)
from meloformer.model import IGNORE, Batch, MeloFormer

SPAN_BARS = 4  # spans scored by evaluation: 1..4 bars (bench/infill_eval.py draws the same)


def fill_runs(model: MeloFormer, vocab: Vocab, bins: ControlBins, songs: Sequence[Encoding],
              kind: str, seeds: int = 1, seed: int = 0) -> list[dict]:
    """One row per filled bar: {"level": requested (None: baseline), "value", "bin"}."""
    rng, rows = np.random.default_rng(seed), []
    for k, song in enumerate(songs):
        span = _span(song, rng)
        if span is None:
            continue
        for s in range(seeds):
            for level in (None, *range(N_BINS)):  # None: the no-control baseline
                asked = {} if level is None else {
                    kind: (f"{span.track}:{span.first}-{span.last}={LEVELS[level]}",)}
                cond = Conditions(max_tokens=len(song) + 400 * SPAN_BARS, **asked)
                req = Request(infill(vocab, song, [span]), cond,
                              SamplingConfig(seed=seed + 1000 * k + s))
                (made,) = generate(model, vocab, req)
                rows += _span_bars(restore(made, vocab), span, vocab, bins, kind, level)
    return rows


def _span(song: Encoding, rng: np.random.Generator) -> Span | None:
    """A SPAN_BARS-bar span around a note (shorter at the song's end)."""
    span = random_span(song, rng, 1)
    if span is None:
        return None
    last = min(span.first + SPAN_BARS - 1, int(song.bar.max()))
    return Span(span.track, span.first, last)


def _span_bars(song: Encoding, span: Span, vocab: Vocab, bins: ControlBins, kind: str,
               level: int | None) -> list[dict]:
    plain = _without_controls(song)
    st, got = cell_stats(plain, vocab), realised(plain, vocab, bins)
    value = st.density if kind == "density" else st.polyphony
    out = []
    for i, (t, b) in enumerate(zip(st.track, st.bar, strict=True)):
        if t == span.track + 1 and span.first <= b <= span.last:
            out.append({"level": level, "value": float(value[i]), "bin": int(got[kind][i])})
    return out


def _without_controls(song: Encoding) -> Encoding:
    keep = ~np.isin(song.type, (Family.DENSITY, Family.POLYPHONY))
    return Encoding(**{n: getattr(song, n)[keep] for n in ("ids", *META_FIELDS)},
                    n_bars=song.n_bars, n_tracks=song.n_tracks, n_notes=song.n_notes)


def summarise(rows: list[dict]) -> dict:
    """The report of fill_runs' rows: per level, rho, adherence vs baseline."""
    base = [r for r in rows if r["level"] is None]
    levels = {}
    for level in range(N_BINS):
        got = [r for r in rows if r["level"] == level]
        if not got:
            continue
        values = np.array([r["value"] for r in got])
        levels[LEVELS[level]] = {
            "bars": len(got), "mean": float(values.mean()),
            "quartiles": [float(q) for q in np.quantile(values, [0.25, 0.5, 0.75])],
            "empty_share": float(np.mean([r["bin"] == EMPTY for r in got])),
            "exact": _share([r["bin"] == level for r in got]),
            "within_one": _share([r["bin"] != EMPTY and abs(r["bin"] - level) <= 1
                                  for r in got]),
            "baseline_exact": _share([r["bin"] == level for r in base]),
            "baseline_within_one": _share([r["bin"] != EMPTY and abs(r["bin"] - level) <= 1
                                           for r in base]),
        }
    asked = [r for r in rows if r["level"] is not None]
    rho = spearman([r["level"] for r in asked], [r["value"] for r in asked])
    return {"levels": levels, "spearman_rho": rho, "bars": len(asked),
            "exact": _share([r["bin"] == r["level"] for r in asked]),
            "within_one": _share([r["bin"] != EMPTY and abs(r["bin"] - r["level"]) <= 1
                                  for r in asked])}


def _share(hits: Sequence[bool]) -> dict:
    """{"share", "ci95": Wilson interval, "n"}."""
    n = len(hits)
    if n == 0:
        return {"share": float("nan"), "ci95": [float("nan")] * 2, "n": 0}
    p, z = float(np.mean(hits)), 1.96
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"share": p, "ci95": [mid - half, mid + half], "n": n}


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    if len(x) < 3:
        return float("nan")
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a))
    for v in np.unique(a):  # ties share their mean rank
        ranks[a == v] = ranks[a == v].mean()
    return ranks


@torch.no_grad()
def contrast(model: MeloFormer, vocab: Vocab, bins: ControlBins, songs: Sequence[Encoding],
             kind: str) -> dict:
    """Bits per bar saved by the true bin over a wrong one (teacher-forced), for bars whose
    bin changed from the track's previous bar and bars where it stayed."""
    saved = {"changed": [], "stayed": []}
    fam = KINDS[kind]
    for song in songs:
        true = add_controls(song, vocab, bins, 1.0, np.random.default_rng(0), bar_keep=1.0)
        ctl = np.flatnonzero(true.type == fam)
        if len(ctl) == 0:
            continue
        wrong = Encoding(**{n: getattr(true, n).copy() for n in ("ids", *META_FIELDS)},
                         n_bars=true.n_bars, n_tracks=true.n_tracks, n_notes=true.n_notes)
        k = true.ids[ctl] - vocab.base(fam)
        wrong.ids[ctl] = vocab.base(fam) + (k + 2) % N_BINS
        bits = [_cell_bits(model, e, vocab) for e in (true, wrong)]
        for i, b in zip(ctl, k, strict=True):
            cell = (int(true.track[i]), int(true.bar[i]))
            prev = (cell[0], cell[1] - 1)
            before = _bin_at(true, ctl, prev, vocab, fam)
            key = "stayed" if before == b else "changed"
            saved[key].append(bits[1].get(cell, 0.0) - bits[0].get(cell, 0.0))
    return {k: {"bars": len(v), "bits_saved_per_bar": float(np.mean(v)) if v else float("nan")}
            for k, v in saved.items()}


def _bin_at(song: Encoding, ctl: np.ndarray, cell, vocab: Vocab, fam) -> int | None:
    hit = ctl[(song.track[ctl] == cell[0]) & (song.bar[ctl] == cell[1])]
    return int(song.ids[hit[0]] - vocab.base(fam)) if len(hit) else None


def _cell_bits(model: MeloFormer, song: Encoding, vocab: Vocab) -> dict[tuple[int, int], float]:
    """NLL in bits of each instrument (track, bar) cell's note tokens."""
    device = next(model.parameters()).device
    batch = Batch.from_encodings([[song]]).to(device)
    logits = model(batch).float()
    nll = F.cross_entropy(logits[0], batch.targets[0], ignore_index=IGNORE, reduction="none")
    nll = nll.cpu().numpy() / math.log(2)
    out: dict[tuple[int, int], float] = {}
    notes = np.isin(song.type, (Family.POSITION, Family.PITCH, Family.DURATION,
                                Family.VELOCITY)) & (song.track > 0)
    for i in np.flatnonzero(notes[1:]) + 1:  # target i is predicted at position i - 1
        cell = (int(song.track[i]), int(song.bar[i]))
        out[cell] = out.get(cell, 0.0) + float(nll[i - 1])
    return out


def steering_report(model: MeloFormer, vocab: Vocab, bins: ControlBins,
                    songs: Sequence[Encoding], kinds: Sequence[str] = ("density", "polyphony"),
                    seeds: int = 1, seed: int = 0) -> dict:
    """{kind: {**summarise(fill_runs), "contrast": contrast}} for each control kind."""
    model.eval()
    return {kind: {**summarise(fill_runs(model, vocab, bins, songs, kind, seeds, seed)),
                   "contrast": contrast(model, vocab, bins, songs, kind)} for kind in kinds}
