"""Per-bar controls: a note-density bin and a polyphony bin per (instrument track, bar).

    tbar := BAR [DENSITY_k] [POLYPHONY_k] (POS note+)*          (docs/hid.md "Controls")

- note density of a bar: its notes per quarter note (notes / bar length in quarters);
- polyphony of a bar: its notes per onset (notes / POS tokens), 1 for a monophonic line.
Bin k of N_BINS holds the values in (edge k-1, edge k] (edges: the training data's
quantiles over the non-empty bars, tie-aware (bin_edges), stored in meta.json
`control_bins`). Controls describe bars that play: an empty bar has no bin (EMPTY) and never
carries a control, so "lowest" means the sparsest fifth of the bars that sound, not silence
(when 39 % of bars are empty, a bin 0 that held them was learned as "silent").

Controls are written right after the bar's opener (BAR, or FILL_START in a fill), each
optional. Training draws them per song and per bar (add_controls): a song carries controls
with probability `train.control_rate`, and then each of its controls is kept with
probability BAR_KEEP. Songs without any teach the model every control as optional; songs
with most of them teach it to rely on them, since a bar's bin mostly repeats the previous
bar's and a sparse sprinkling says little the context does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from meloformer.errors import UserError
from meloformer.hid.song import META_FIELDS, Encoding
from meloformer.hid.vocab import BOS, CONTROL_BINS, EOS, Family, Vocab

N_BINS = CONTROL_BINS
EMPTY = -1  # the "bin" of an empty bar: no level, no control token
BAR_KEEP = 0.8  # in a song that carries controls, the chance each control is written
LEVELS = ("lowest", "low", "mid", "high", "highest")  # names of bins 0..4 on the CLI
KINDS = {"density": Family.DENSITY, "polyphony": Family.POLYPHONY}


class ControlError(UserError, ValueError):
    """Bad control bins or request (the message names the field)."""


@dataclass(frozen=True)
class ControlBins:
    """Inner bin edges (N_BINS - 1 each, ascending) of note density and polyphony."""

    density: tuple[float, ...]
    polyphony: tuple[float, ...]

    def __post_init__(self) -> None:
        for name in KINDS:
            edges = getattr(self, name)
            ok = len(edges) == N_BINS - 1 and all(math.isfinite(e) for e in edges)
            if not ok or list(edges) != sorted(edges):
                raise ControlError(f"control_bins.{name}: want {N_BINS - 1} ascending finite "
                                   f"edges, got {list(edges)}")

    def to_dict(self) -> dict[str, list[float]]:
        """meta.json `control_bins` form."""
        return {"density": list(self.density), "polyphony": list(self.polyphony)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "control_bins") -> ControlBins:
        try:
            return cls(tuple(map(float, d["density"])), tuple(map(float, d["polyphony"])))
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ControlError):
                raise
            raise ControlError(f"{where}: malformed control bins: {e}") from e

    def bin(self, kind: str, values: np.ndarray, empty: np.ndarray) -> np.ndarray:
        """Bin of each value (int64); EMPTY for empty bars."""
        edges = np.asarray(getattr(self, kind))
        bins = np.searchsorted(edges, values, side="left")
        return np.where(empty, EMPTY, bins).astype(np.int64)


@dataclass(frozen=True)
class CellStats:
    """Per instrument (track, bar) cell of a song: arrays of one length (cells with a BAR)."""

    track: np.ndarray  # HID track (1-based)
    bar: np.ndarray
    opener: np.ndarray  # index of the cell's BAR token
    notes: np.ndarray
    density: np.ndarray  # notes per quarter note
    polyphony: np.ndarray  # notes per onset (0 for an empty bar)

    @property
    def empty(self) -> np.ndarray:
        return self.notes == 0


def cell_stats(enc: Encoding, vocab: Vocab) -> CellStats:
    """Note count, density and polyphony of every instrument bar of a plain-layout song."""
    body = (enc.track > 0) & (enc.ids != BOS) & (enc.ids != EOS) & (enc.type != Family.TRACK)
    opener = np.flatnonzero(body & (enc.type == Family.BAR))
    n_bars = int(enc.bar.max()) + 1 if len(enc) else 1
    key = enc.track.astype(np.int64) * n_bars + enc.bar
    size = (int(enc.track.max()) + 1) * n_bars
    notes = np.bincount(key[body & (enc.type == Family.PITCH)], minlength=size)
    onsets = np.bincount(key[body & (enc.type == Family.POSITION)], minlength=size)
    cells = key[opener]
    quarters = bar_quarters(enc, vocab, n_bars)[enc.bar[opener]]
    n, o = notes[cells], onsets[cells]
    return CellStats(
        track=enc.track[opener].astype(np.int64), bar=enc.bar[opener].astype(np.int64),
        opener=opener, notes=n, density=n / quarters,
        polyphony=np.where(o > 0, n / np.maximum(o, 1), 0.0),
    )


def bar_quarters(enc: Encoding, vocab: Vocab, n_bars: int) -> np.ndarray:
    """Length of each bar in quarter notes, from the conductor's time signatures (each in
    force until the next; 4/4 before the first)."""
    ts = np.full(n_bars, -1, dtype=np.int64)
    sel = (enc.track == 0) & (enc.type == Family.TIME_SIG) & (enc.bar < n_bars)
    ts[enc.bar[sel]] = vocab.value_of[enc.ids[sel]]
    last = np.maximum.accumulate(np.where(ts >= 0, np.arange(n_bars), -1))
    filled = np.where(last >= 0, ts[np.maximum(last, 0)], vocab.ts_index[(4, 4)])
    return vocab.bar_steps[filled] / vocab.config.resolution


def bin_edges(values: np.ndarray) -> tuple[float, ...]:
    """N_BINS - 1 ascending inner edges (bin of v = the number of edges below v): quantiles
    of `values` (the non-empty bars), tie-aware.

    Plain quantiles collapse where many bars share one value (most bars are monophonic:
    polyphony exactly 1), leaving bins no bar can reach. So the edges are drawn greedily:
    each is the 1/k quantile of the values above the previous edge, k the bins still to
    fill; a tied mass gets one bin and the rest of the distribution is split among the
    others. Edges past the largest value step up by 1 (bins that stay empty).
    """
    vals = np.sort(np.asarray(values, dtype=np.float64))
    edges: list[float] = []
    while len(edges) < N_BINS - 1:
        rest = vals[vals > edges[-1]] if edges else vals
        if len(rest) == 0:
            edges.append((edges[-1] if edges else 0.0) + 1.0)
            continue
        edges.append(float(np.quantile(rest, 1 / (N_BINS - len(edges)))))
    return tuple(edges)


def realised(enc: Encoding, vocab: Vocab, bins: ControlBins) -> dict[str, np.ndarray]:
    """Per instrument bar of a plain-layout song: track, bar and its density/polyphony bins."""
    st = cell_stats(enc, vocab)
    return {
        "track": st.track, "bar": st.bar,
        "density": bins.bin("density", st.density, st.empty),
        "polyphony": bins.bin("polyphony", st.polyphony, st.empty),
    }


def add_controls(enc: Encoding, vocab: Vocab, bins: ControlBins, rate: float,
                 rng: np.random.Generator, bar_keep: float = BAR_KEEP) -> Encoding:
    """The song with its realised DENSITY/POLYPHONY tokens after the opener of each bar that
    plays: with probability `rate` the song carries controls, and then each one is kept with
    probability `bar_keep` (independently). Empty bars get none. `rate == 0` returns `enc`
    itself; so does a song drawn without controls.

    Raises:
        ControlError: `enc` already holds control tokens.
    """
    if rate <= 0 or rng.random() >= rate:
        return enc
    if np.isin(enc.type, (Family.DENSITY, Family.POLYPHONY)).any():
        raise ControlError("add_controls: the song already holds control tokens")
    got = realised(enc, vocab, bins)
    st_opener = cell_stats(enc, vocab).opener
    n = len(st_opener)
    plays = got["density"] != EMPTY
    use = {k: (rng.random(n) < bar_keep) & plays for k in KINDS}
    # Output rows: every source token, and after each opener its kept controls.
    extra = use["density"].astype(np.int64) + use["polyphony"]
    counts = np.ones(len(enc), dtype=np.int64)
    counts[st_opener] += extra
    src = np.repeat(np.arange(len(enc)), counts)
    out = {name: getattr(enc, name)[src].copy() for name in ("ids", *META_FIELDS)}
    starts = np.cumsum(counts) - counts  # output row of each source token
    for j, kind in enumerate(KINDS):
        fam = KINDS[kind]
        offset = 1 + (use["density"].astype(np.int64) if j else 0)
        rows = (starts[st_opener] + offset)[use[kind]]
        out["ids"][rows] = vocab.base(fam) + got[kind][use[kind]]
        out["type"][rows] = fam
        out["pos"][rows] = 0
    return Encoding(**out, n_bars=enc.n_bars, n_tracks=enc.n_tracks, n_notes=enc.n_notes)


def level(text: str) -> int:
    """A bin from its name (LEVELS) or number ("high" or "3")."""
    t = text.strip().lower()
    if t in LEVELS:
        return LEVELS.index(t)
    if t.isdigit() and int(t) < N_BINS:
        return int(t)
    raise ControlError(f"control level {text!r}: expected one of {', '.join(LEVELS)} or 0..4")
