"""The infilling layout: a song with some (track, bar) cells moved to the end, and its inverse.

    song  := BOS conductor track+ fills EOS          (docs/hid.md "Infilling")
    fills := (FILL_START (POS note+)* FILL_END)*

Each cell to fill keeps its place in its track as a one-token placeholder bar (`FILL` instead
of `BAR`, same metadata), so every track still holds every bar; its content goes after the last
track between FILL_START and FILL_END, in (track, bar) order. Every token of a fill, its markers
included, carries the (track, bar, program) of the cell it fills, so the model's (track, bar)
rules apply to it unchanged; EOS takes the last fill's metadata (as `GrammarState` gives it).

`infill_layout(enc, spans)` and `restore(enc)` are exact inverses on every Encoding (whole songs
and training crops, with or without EOS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from meloformer.hid.song import META_FIELDS, Encoding
from meloformer.hid.vocab import BOS, EOS, Family, Vocab


@dataclass(frozen=True, order=True)
class Span:
    """Bars `first`..`last` (inclusive, 0-based) of instrument track `track` (0-based, in the
    song's canonical track order: HID track `track + 1`, MIDI track `track + 1`)."""

    track: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.track < 0 or self.first < 0 or self.last < self.first:
            raise ValueError(f"infill span {self}: want track >= 0 and 0 <= first <= last")

    def __str__(self) -> str:
        return f"{self.track}:{self.first}-{self.last}"

    @classmethod
    def parse(cls, text: str) -> Span:
        """"TRACK:FIRST-LAST" or "TRACK:BAR" (0-based, inclusive) -> Span.

        Raises:
            ValueError: naming the text when it does not match.
        """
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*(?:-\s*(\d+))?\s*", text)
        if not m:
            raise ValueError(f"infill span {text!r}: expected TRACK:FIRST-LAST, e.g. 2:9-12")
        first = int(m[2])
        return cls(int(m[1]), first, int(m[3]) if m[3] else first)

    def cells(self) -> list[tuple[int, int]]:
        """(HID track, bar) of each bar of the span."""
        return [(self.track + 1, b) for b in range(self.first, self.last + 1)]


def random_span(song: Encoding, rng: np.random.Generator, max_bars: int) -> Span | None:
    """A span of 1..max_bars bars around a random note's bar, in that note's track (None
    when the song has no note). Training draws its infill examples with it and evaluation
    its test spans, so the model is judged on spans like those it learned: spans drawn
    uniformly over bars were 27 % empty bars, note-anchored ones 3 %."""
    pitch = (song.type == Family.PITCH) & (song.track > 0)
    if not pitch.any():
        return None
    i = int(rng.choice(np.flatnonzero(pitch)))
    t, b = int(song.track[i]), int(song.bar[i])
    n_bars = int(song.bar[(song.track == t) & (song.type == Family.BAR)].max()) + 1
    length = int(rng.integers(1, max_bars + 1))
    first = max(0, b - int(rng.integers(length)))
    return Span(t - 1, first, min(first + length - 1, n_bars - 1))


def fill_cells(spans: list[Span]) -> list[tuple[int, int]]:
    """The (HID track, bar) cells the spans cover, once each, in fill order (track, bar)."""
    return sorted({cell for span in spans for cell in span.cells()})


def _ids(vocab: Vocab) -> tuple[int, int, int]:
    return vocab.index["FILL"], vocab.index["FILL_START"], vocab.index["FILL_END"]


def infill_layout(enc: Encoding, spans: list[Span], vocab: Vocab) -> Encoding:
    """`enc` with the spans' bars as placeholders and their content at the end.

    Args:
        enc: a song (or crop) in plain HID layout, without fills.
        spans: what to move; overlapping spans are merged.
        vocab: the vocabulary (FILL token ids).

    Returns:
        The infill Encoding (n_bars, n_tracks, n_notes unchanged).

    Raises:
        ValueError: a span outside the song (naming the span and the song's size), or `enc`
            already holds fills.
    """
    fill, start, end = _ids(vocab)
    if np.isin(enc.ids, (fill, start, end)).any():
        raise ValueError("infill_layout: the song already holds FILL tokens")
    body = (enc.ids != BOS) & (enc.ids != EOS) & (enc.type != Family.TRACK) & (enc.track > 0)
    cells = fill_cells(spans)
    if not cells:
        return enc
    opener_at = {}  # (track, bar) -> index of the cell's BAR
    for i in np.flatnonzero(body & (enc.type == Family.BAR)):
        opener_at[(int(enc.track[i]), int(enc.bar[i]))] = int(i)
    for span in spans:
        missing = [c for c in span.cells() if c not in opener_at]
        if missing:
            raise ValueError(
                f"infill span {span}: the song has {enc.n_tracks} instrument tracks "
                f"(0..{enc.n_tracks - 1}) and {enc.n_bars} bars (0..{enc.n_bars - 1})"
            )
    key = enc.track.astype(np.int64) * (1 << 20) + enc.bar
    cell_keys = np.array([t * (1 << 20) + b for t, b in cells], dtype=np.int64)
    in_cell = body & np.isin(key, cell_keys)
    openers = np.array([opener_at[c] for c in cells], dtype=np.int64)
    content = in_cell.copy()
    content[openers] = False
    eos = np.flatnonzero(enc.ids == EOS)
    stay = np.flatnonzero(~content & (enc.ids != EOS))
    # Source index of each output row; -1 / -2 mark the FILL_START / FILL_END rows.
    order = [stay]
    for t, b in cells:
        own = np.flatnonzero(content & (key == t * (1 << 20) + b))
        order += [np.array([-1]), own, np.array([-2])]
    order.append(eos)
    src = np.concatenate(order)
    out = {name: getattr(enc, name)[np.maximum(src, 0)].copy() for name in ("ids", *META_FIELDS)}
    marker = src < 0
    # Markers copy the metadata of their cell's opener (track, bar, program; pos 0).
    cell_no = np.cumsum(src == -1) - 1
    for name in ("track", "bar", "program"):
        out[name][marker] = getattr(enc, name)[openers[cell_no[marker]]]
    out["ids"][marker] = np.where(src[marker] == -1, start, end)
    out["type"][marker] = Family.FILL_MARK
    out["pos"][marker] = 0
    out["ids"][np.isin(src, openers)] = fill
    out["type"][np.isin(src, openers)] = Family.FILL
    if len(eos):  # EOS takes the last fill's metadata, as GrammarState.step gives it
        for name in ("track", "bar", "program"):
            out[name][-1] = getattr(enc, name)[openers[-1]]
    return Encoding(**out, n_bars=enc.n_bars, n_tracks=enc.n_tracks, n_notes=enc.n_notes)


def restore(enc: Encoding, vocab: Vocab) -> Encoding:
    """The plain HID layout of an infill Encoding: each fill's content back in its bar.

    Raises:
        ValueError: fills that do not match the placeholders (count, order or metadata).
    """
    fill, start, end = _ids(vocab)
    starts, ends = np.flatnonzero(enc.ids == start), np.flatnonzero(enc.ids == end)
    holes = np.flatnonzero(enc.ids == fill)
    if len(starts) == 0 and len(holes) == 0:
        return enc
    if not (len(starts) == len(ends) == len(holes)) or (ends <= starts).any():
        raise ValueError(
            f"restore: {len(holes)} FILL placeholders, {len(starts)} FILL_START, "
            f"{len(ends)} FILL_END: every placeholder needs one fill"
        )
    for h, s in zip(holes, starts, strict=True):
        if (enc.track[h], enc.bar[h]) != (enc.track[s], enc.bar[s]):
            raise ValueError(
                f"restore: fill at token {s} is for (track {enc.track[s]}, bar {enc.bar[s]}) "
                f"but the next placeholder is (track {enc.track[h]}, bar {enc.bar[h]})"
            )
    head = np.arange(starts[0])
    eos = np.flatnonzero(enc.ids == EOS)
    order = []
    prev = 0
    for h, s, e in zip(holes, starts, ends, strict=True):
        order += [head[prev : h + 1], np.arange(s + 1, e)]
        prev = h + 1
    order += [head[prev:], eos]
    src = np.concatenate(order)
    out = {name: getattr(enc, name)[src].copy() for name in ("ids", *META_FIELDS)}
    placeholder = np.isin(src, holes)
    out["ids"][placeholder] = vocab.index["BAR"]
    out["type"][placeholder] = Family.BAR
    if len(eos):  # EOS takes the song's last track and bar again (the token before it)
        for name in ("track", "bar", "program"):
            out[name][-1] = getattr(enc, name)[starts[0] - 1]
    return Encoding(**out, n_bars=enc.n_bars, n_tracks=enc.n_tracks, n_notes=enc.n_notes)


def fill_mask(ids: np.ndarray, vocab: Vocab) -> np.ndarray:
    """Bool [L]: the tokens of the fill section (from the first FILL_START on, EOS included)."""
    return np.cumsum(ids == vocab.index["FILL_START"]) > 0
