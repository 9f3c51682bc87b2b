"""The HID vocabulary: token families, their id ranges and per-id values (the single source).

docs/hid.md documents the default vocabulary; tests/test_vocab.py checks code, JSON and doc agree.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from pathlib import Path

import numpy as np

from meloformer.hid.config import HIDConfig

VOCAB_VERSION = "hid-1"
VOCAB_JSON = Path(__file__).with_name("vocab.json")

PAD, BOS, EOS = 0, 1, 2  # fixed ids of the special tokens
DRUM_PROGRAM = 128  # `program` metadata of a drum track
GLOBAL_PROGRAM = 129  # `program` metadata of BOS and the conductor track
# Infilling (docs/hid.md "Infilling"): FILL opens a bar whose content is written at the end of
# the song, between FILL_START and FILL_END (family FILL_MARK, values 0 and 1). The fill
# section of a song is everything from its first FILL_MARK token on (the model finds it so).
FILL_TOKENS = ("FILL", "FILL_START", "FILL_END")
CONTROL_BINS = 5  # per-bar control bins (meloformer/hid/controls.py)

TS_DENOMINATORS = (1, 2, 4, 8, 16, 32)
CHORD_ROOTS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Interval sets (semitones above the root) of the chord qualities the matcher knows.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "sus2": (0, 2, 7),
    "sus4": (0, 5, 7),
    "7": (0, 4, 7, 10),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9),
}


class Family(IntEnum):
    """Token families. The `type` metadata of a token is its family's value."""

    SPECIAL = 0  # PAD BOS EOS
    TRACK = 1  # DRUMS, PROGRAM_k: opens an instrument track
    BAR = 2  # opens the next bar of the current track (conductor included)
    TIME_SIG = 3  # TS_n/d, conductor only, at the start of a bar
    TEMPO = 4  # TEMPO_k (bin), conductor only, after a POS
    CHORD = 5  # CHORD_x, conductor only, one per bar when chords are on
    POSITION = 6  # POS_p: onset p grid steps into the bar
    PITCH = 7  # PITCH_n, 0..127 (drum notes use it too)
    DURATION = 8  # DUR_d, d = 1..max_duration grid steps (melodic notes only)
    VELOCITY = 9  # VEL_b, velocity bin
    FILL = 10  # infilling: FILL, a placeholder bar opener (its content is written later)
    FILL_MARK = 11  # FILL_START / FILL_END around a placeholder's content, after the last track
    DENSITY = 12  # DENSITY_k: the bar's note-density bin (a control, right after its opener)
    POLYPHONY = 13  # POLYPHONY_k: the bar's notes-per-onset bin (a control, after DENSITY)


def time_signatures(cfg: HIDConfig) -> list[tuple[int, int]]:
    """Every (numerator, denominator) HID can hold: bar <= max_bar_quarters, whole grid steps."""
    out = []
    for den in TS_DENOMINATORS:
        for num in range(1, 65):
            quarters = num * 4 / den
            if quarters <= cfg.max_bar_quarters and (cfg.resolution * 4 * num) % den == 0:
                out.append((num, den))
    return out


def tempo_bpms(cfg: HIDConfig) -> list[float]:
    """Centre BPM of each tempo bin, log-spaced from tempo_min to tempo_max inclusive."""
    ratio = math.log(cfg.tempo_max / cfg.tempo_min)
    return [
        cfg.tempo_min * math.exp(ratio * k / (cfg.tempo_bins - 1)) for k in range(cfg.tempo_bins)
    ]


@dataclass(frozen=True)
class Vocab:
    """Token names, ids, families and values for one HIDConfig.

    `family_of[id]` is the Family of a token and `value_of[id]` its number inside the family
    (program 0..127 or 128 for DRUMS, TS index, tempo bin, chord index (0 = N), position,
    pitch, duration in grid steps, velocity bin; 0 for specials and BAR).
    """

    config: HIDConfig = field(default_factory=HIDConfig)

    @cached_property
    def _table(self) -> list[tuple[str, Family, int]]:
        cfg = self.config
        rows: list[tuple[str, Family, int]] = [
            ("PAD", Family.SPECIAL, 0),
            ("BOS", Family.SPECIAL, 1),
            ("EOS", Family.SPECIAL, 2),
        ]
        rows.append(("DRUMS", Family.TRACK, DRUM_PROGRAM))
        rows += [(f"PROGRAM_{p}", Family.TRACK, p) for p in range(128)]
        rows.append(("BAR", Family.BAR, 0))
        rows += [(f"TS_{n}/{d}", Family.TIME_SIG, i) for i, (n, d) in enumerate(self.time_sigs)]
        rows += [(f"TEMPO_{k}", Family.TEMPO, k) for k in range(cfg.tempo_bins)]
        rows += [(name, Family.CHORD, i) for i, name in enumerate(self.chord_names)]
        rows += [(f"POS_{p}", Family.POSITION, p) for p in range(cfg.max_positions)]
        rows += [(f"PITCH_{n}", Family.PITCH, n) for n in range(128)]
        rows += [(f"DUR_{d}", Family.DURATION, d) for d in range(1, cfg.max_duration + 1)]
        rows += [(f"VEL_{b}", Family.VELOCITY, b) for b in range(cfg.velocity_bins)]
        rows.append(("FILL", Family.FILL, 0))
        rows += [("FILL_START", Family.FILL_MARK, 0), ("FILL_END", Family.FILL_MARK, 1)]
        rows += [(f"DENSITY_{k}", Family.DENSITY, k) for k in range(CONTROL_BINS)]
        rows += [(f"POLYPHONY_{k}", Family.POLYPHONY, k) for k in range(CONTROL_BINS)]
        return rows

    @cached_property
    def time_sigs(self) -> list[tuple[int, int]]:
        return time_signatures(self.config)

    @cached_property
    def ts_index(self) -> dict[tuple[int, int], int]:
        return {ts: i for i, ts in enumerate(self.time_sigs)}

    @cached_property
    def tempos(self) -> list[float]:
        return tempo_bpms(self.config)

    @cached_property
    def chord_names(self) -> list[str]:
        return ["CHORD_N"] + [f"CHORD_{r}{q}" for r in CHORD_ROOTS for q in CHORD_QUALITIES]

    @cached_property
    def tokens(self) -> list[str]:
        return [name for name, _, _ in self._table]

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.tokens)}

    @cached_property
    def family_of(self) -> np.ndarray:
        return np.array([int(f) for _, f, _ in self._table], dtype=np.int8)

    @cached_property
    def value_of(self) -> np.ndarray:
        return np.array([v for _, _, v in self._table], dtype=np.int32)

    @cached_property
    def ranges(self) -> dict[Family, range]:
        """Id range of each family (families are contiguous by construction)."""
        out: dict[Family, range] = {}
        for fam in Family:
            ids = np.flatnonzero(self.family_of == fam)
            out[fam] = range(int(ids[0]), int(ids[-1]) + 1)
        return out

    def __len__(self) -> int:
        return len(self.tokens)

    def base(self, family: Family) -> int:
        """First id of a family: id = base + value for POS, PITCH, VEL, TEMPO, TS, CHORD."""
        return self.ranges[family].start

    @cached_property
    def bar_steps(self) -> np.ndarray:
        """Grid steps per bar for each TS index."""
        res = self.config.resolution
        return np.array([res * 4 * n // d for n, d in self.time_sigs], dtype=np.int32)

    def to_json(self) -> str:
        """The vocabulary as JSON: version, config, hash and the ordered token list."""
        body = {
            "version": VOCAB_VERSION,
            "config": self.config.__dict__,
            "hash": self.hash,
            "families": {f.name: [r.start, r.stop - 1] for f, r in self.ranges.items()},
            "tokens": self.tokens,
        }
        return json.dumps(body, indent=1) + "\n"

    @cached_property
    def hash(self) -> str:
        """sha256 (16 hex digits) of the version and the ordered token names."""
        blob = json.dumps([VOCAB_VERSION, self.tokens]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_vocab_json(path: Path = VOCAB_JSON) -> dict:
    """Read a stored vocabulary (plain JSON, never pickle)."""
    return json.loads(Path(path).read_text())
