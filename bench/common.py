"""Shared benchmark helpers: real-song layouts from the dev corpus, the REMI peer's
configuration, timing, table and JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from meloformer.hid import BOS, META_FIELDS, Encoding, Family, HIDError
from meloformer.model import Batch

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MELOFORMER_CORPUS", REPO.parent / "shared" / "data" / "midi-dev"))
# Real multitrack songs (GM pop and game music, 6-16 tracks, drums), longest first.
SONGS = [
    "miditok-tests/MIDIs_multitrack/Shut Up.mid",
    "miditok-tests/MIDIs_multitrack/What a Fool Believes.mid",
    "miditok-tests/MIDIs_multitrack/Aicha.mid",
    "freedoom/freedoom1_D_E3M7.mid",
    "openttd-openmsx/keep_on_rolling.mid",
    "miditok-tests/MIDIs_multitrack/Funkytown.mid",
    "miditok-tests/MIDIs_multitrack/Starlight.mid",
    "miditok-tests/MIDIs_multitrack/Girls Just Want to Have Fun.mid",
    "miditok-tests/MIDIs_multitrack/In Too Deep.mid",
    "miditok-tests/MIDIs_multitrack/All The Small Things.mid",
    "miditok-tests/MIDIs_multitrack/Mr. Blue Sky.mid",
    "freedoom/freedoom1_D_E1M1.mid",
]


SAMPLE = REPO / "data" / "raw" / "sample"


def load_songs(names: Sequence[str] = SONGS, fallback: int = 12) -> list[Encoding]:
    """Encode the benchmark songs from the dev corpus (missing files are skipped).

    Without the corpus (a fresh clone), the `fallback` longest songs of the bundled sample
    stand in, with a note on stderr: shorter songs, so long rows are packed from several.
    """
    from meloformer.hid import encode_file

    songs = [encode_file(CORPUS / name) for name in names if (CORPUS / name).exists()]
    if songs:
        return songs
    print(
        f"note: no benchmark songs under {CORPUS} (set MELOFORMER_CORPUS); using the "
        f"bundled sample {SAMPLE}",
        file=sys.stderr,
    )
    sample = []
    for path in sorted(SAMPLE.rglob("*.mid")):
        try:
            sample.append(encode_file(path))
        except HIDError:  # the sample is all valid; a bad file still must not stop a bench
            continue
    if not sample:
        raise FileNotFoundError(f"no benchmark songs under {CORPUS} or {SAMPLE}")
    return sorted(sample, key=len, reverse=True)[:fallback]


def remi_tokenizer():
    """MidiTok REMI configured as a fair peer of HID, the one configuration every bench
    compares against: programs in one token stream, tempos and time signatures on (the
    `bench` extra installs miditok)."""
    import miditok

    config = miditok.TokenizerConfig(use_programs=True, one_token_stream_for_programs=True,
                                     use_tempos=True, use_time_signatures=True)
    return miditok.REMI(config)


def crop_bars(song: Encoding, max_tokens: int) -> Encoding:
    """The widest window of whole bars (every track, header tokens kept) within max_tokens.

    Cropping by bars keeps the multitrack structure a training crop has (cutting the first
    max_tokens tokens would keep only the first tracks).
    """
    header = (song.ids == BOS) | (song.type == Family.TRACK)
    per_bar = np.bincount(song.bar[~header], minlength=int(song.bar.max()) + 1)
    budget = max_tokens - int(header.sum())
    best, stop, total = (0, 0), 0, 0
    for start in range(len(per_bar)):  # two pointers: the longest run of bars within budget
        if stop < start:
            stop, total = start, 0
        while stop < len(per_bar) and total + per_bar[stop] <= budget:
            total, stop = total + per_bar[stop], stop + 1
        if stop - start > best[1] - best[0]:
            best = (start, stop)
        if stop > start:
            total -= per_bar[start]
    keep = header | ((song.bar >= best[0]) & (song.bar < best[1]))
    return replace(song, **{name: getattr(song, name)[keep] for name in ("ids", *META_FIELDS)})


def song_row(songs: Sequence[Encoding], length: int) -> list[Encoding]:
    """One batch row of about `length` tokens: a bar-window crop of the first long-enough
    song, else several songs packed."""
    for song in songs:
        if len(song) >= length:
            return [crop_bars(song, length)]
    row, used = [], 0
    for song in songs:
        part = crop_bars(song, length - used)
        if len(part) > 8:
            row.append(part)
            used += len(part)
    return row


def real_batch(songs: Sequence[Encoding], length: int, device: str = "cpu") -> Batch:
    """A one-row Batch of exactly `length` tokens from real songs."""
    return Batch.from_encodings([song_row(songs, length)], length=length).to(device)


def timeit(fn: Callable[[], object], repeats: int, device: str) -> float:
    """Best wall time of `repeats` calls after one warm-up, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    """Rows as a fixed-width text table (floats with 3 decimals)."""
    cells = [[_fmt(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    print("  ".join(col.rjust(w) for col, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def write_json(path: str | Path, payload: dict) -> None:
    """Write JSON atomically (tmp file, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)
