"""The corpus and bar windows of bench/quality.py: what each model reads and is scored on.

A Song is one corpus file both codecs accept, with its discover split, encoded both ways:
`hid` (the project's HID Encoding) and `remi` (MidiTok REMI ids as an Encoding the same
transformer reads, bench.quality_remi); files whose HID ids are identical count once (the
first by path). MODELS names each model, which of a Song's two tokenisations it reads
(`getattr(song, MODELS[name][0])`) and its attention; BASE is (a), the model the others are
measured against.

Windows are whole bars. The header (BOS, and HID's track-opening tokens; REMI: BOS only)
belongs to no bar and opens every window. A training crop holds the bars from a start bar
forward, then backward, while they fit in the row (one bar longer than the row: its first
tokens). An eval window (EvalSong) is a song's first K bars, K the most that fit in `length`
tokens under both tokenisations, so every model reads the same music; its `notes` is HID's
note count, the one denominator of bits per note for every model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import remi_tokenizer
from bench.quality_remi import RemiTables, remi_encoding
from meloformer.data import DiscoverConfig
from meloformer.data.discover import find_midi
from meloformer.hid import BOS, Encoding, Family, HIDConfig, encode_bytes

MODELS = {  # name -> (tokenisation, ModelConfig.attention)
    "hid-sparse": ("hid", "auto"),
    "hid-dense": ("hid", "dense"),
    "remi-dense": ("remi", "dense"),
}
BASE = "hid-sparse"


# ---------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Song:
    path: str
    split: str
    hid: Encoding
    remi: Encoding


def load_corpus(root: Path, max_files: int | None = None) -> tuple[dict[str, list[Song]], dict]:
    """Encode every file both ways; splits from discover; identical HID content counted once.

    Returns:
        ({split: [Song]}, counts of files, rejects and content duplicates).
    """
    manifest, _ = find_midi([root], DiscoverConfig(), root)
    if max_files:
        manifest = manifest.iloc[:max_files]
    tok, cfg = remi_tokenizer(), HIDConfig()
    tables = RemiTables.of(tok)
    import symusic

    splits: dict[str, list[Song]] = {"train": [], "val": [], "test": []}
    seen: set[str] = set()
    counts = {"files": len(manifest), "rejected": 0, "duplicates": 0}
    for path, split in zip(manifest["path"], manifest["split"], strict=True):
        data = (root / path).read_bytes()
        try:
            hid = encode_bytes(data, cfg, path)
            seq = tok.encode(symusic.Score.from_midi(data))
        except Exception:  # noqa: BLE001 - HIDError or miditok's: the file is left out
            counts["rejected"] += 1
            continue
        seq = seq[0] if isinstance(seq, list) else seq
        if len(seq.ids) == 0 or hid.n_notes == 0:
            counts["rejected"] += 1
            continue
        key = hashlib.sha256(np.asarray(hid.ids, np.int64).tobytes()).hexdigest()
        if key in seen:
            counts["duplicates"] += 1
            continue
        seen.add(key)
        splits[split].append(Song(path, split, hid, remi_encoding(np.asarray(seq.ids), tables)))
    counts.update({k: len(v) for k, v in splits.items()})
    return splits, counts


# ---------------------------------------------------------------- bar windows


def header_mask(enc: Encoding) -> np.ndarray:
    """Tokens outside every bar: BOS and HID's track-opening tokens (REMI: BOS only)."""
    return (enc.ids == BOS) | ((enc.type == Family.TRACK) & (enc.track > 0))


def bar_tokens(enc: Encoding) -> np.ndarray:
    """Tokens per bar (header excluded), [n_bars]."""
    return np.bincount(enc.bar[~header_mask(enc)], minlength=enc.n_bars)


def take_bars(enc: Encoding, b0: int, b1: int) -> Encoding:
    """The header plus bars [b0, b1) of every track, in stream order."""
    keep = header_mask(enc) | ((enc.bar >= b0) & (enc.bar < b1))
    meta = {n: getattr(enc, n)[keep] for n in ("ids", "track", "bar", "type", "pos", "program")}
    return Encoding(**meta, n_bars=enc.n_bars, n_tracks=enc.n_tracks, n_notes=enc.n_notes)


def bar_window(per_bar: np.ndarray, budget: int, start: int) -> tuple[int, int]:
    """Bars [b0, b1) from `start` forward while they fit in `budget` tokens, then backward."""
    b1, used = start, 0
    while b1 < len(per_bar) and used + per_bar[b1] <= budget:
        used, b1 = used + per_bar[b1], b1 + 1
    b0 = start
    while b0 > 0 and used + per_bar[b0 - 1] <= budget:
        used, b0 = used + per_bar[b0 - 1], b0 - 1
    return b0, b1


def train_crop(enc: Encoding, length: int, u: float) -> Encoding:
    """A window of whole bars within `length` tokens starting at bar floor(u * n_bars)."""
    per_bar = bar_tokens(enc)
    budget = length - int(header_mask(enc).sum())
    start = min(int(u * len(per_bar)), len(per_bar) - 1)
    b0, b1 = bar_window(per_bar, budget, start)
    if b1 == b0:  # one bar longer than the row: its first tokens
        return _head(take_bars(enc, start, start + 1), length)
    return take_bars(enc, b0, b1)


def _head(enc: Encoding, length: int) -> Encoding:
    meta = {n: getattr(enc, n)[:length] for n in ("ids", "track", "bar", "type", "pos", "program")}
    return Encoding(**meta, n_bars=enc.n_bars, n_tracks=enc.n_tracks, n_notes=enc.n_notes)


@dataclass(frozen=True)
class EvalSong:
    """One scored window: the same first K bars in both tokenisations, and its notes (HID)."""

    path: str
    hid: Encoding
    remi: Encoding
    notes: int


def eval_windows(songs: list[Song], length: int) -> list[EvalSong]:
    """Each song's first K bars, K the most that fit in `length` under both codecs."""
    out = []
    for s in songs:
        k = min(_bars_fitting(s.hid, length), _bars_fitting(s.remi, length))
        if k == 0:
            continue
        hid = take_bars(s.hid, 0, k)
        notes = int((hid.type == Family.PITCH).sum())
        if notes:
            out.append(EvalSong(s.path, hid, take_bars(s.remi, 0, k), notes))
    return out


def _bars_fitting(enc: Encoding, length: int) -> int:
    budget = length - int(header_mask(enc).sum())
    return int(np.searchsorted(np.cumsum(bar_tokens(enc)), budget, side="right"))
