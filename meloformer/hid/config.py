"""HIDConfig: every knob of the HID grid and vocabulary, as one frozen dataclass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from meloformer.errors import check


@dataclass(frozen=True)
class HIDConfig:
    """The grid and vocabulary of the HID encoding.

    Changing any field changes the vocabulary (and so `Vocab.hash`) or the quantisation, so
    preprocessed shards record `config_hash()` and are rebuilt when it changes.
    """

    resolution: int = 12
    """Grid steps per quarter note. 12 holds 16ths (3) and eighth/16th triplets (4, 2)."""
    max_bar_quarters: int = 16
    """Longest bar a time signature may make, in quarter notes (16 = 4 bars of 4/4)."""
    max_duration_quarters: int = 16
    """Duration cap in quarter notes; longer notes are cut to it (documented in docs/hid.md)."""
    velocity_bins: int = 32
    """Velocity 1..127 falls into this many equal-width bins."""
    tempo_bins: int = 64
    """Log-spaced tempo bins between tempo_min and tempo_max (BPM)."""
    tempo_min: float = 24.0
    tempo_max: float = 320.0
    chords: bool = True
    """Write one chord label per conductor bar (a template matcher, meloformer.hid.chords)."""
    max_bars: int = 4096
    """Bound on bars per song: absurd tick values fail fast with MidiTooLarge."""
    max_tracks: int = 64
    """Bound on instrument tracks per song."""
    max_events: int = 2_000_000
    """Bound on MIDI events read per file."""

    def __post_init__(self) -> None:
        # ConfigError names the field: "params.yaml: preprocess.hid.<field>: ...".
        check("resolution", self.resolution, 1 <= self.resolution <= 96, "must be in 1..96")
        check("velocity_bins", self.velocity_bins, 1 <= self.velocity_bins <= 127,
              "must be in 1..127")
        check("tempo_min", self.tempo_min, self.tempo_min > 0, "must be > 0")
        check("tempo_max", self.tempo_max, self.tempo_max > self.tempo_min,
              f"must be > tempo_min ({self.tempo_min})")
        check("tempo_bins", self.tempo_bins, self.tempo_bins >= 2, "must be >= 2")

    @property
    def max_positions(self) -> int:
        """Grid steps in the longest allowed bar (number of POS tokens)."""
        return self.resolution * self.max_bar_quarters

    @property
    def max_duration(self) -> int:
        """Longest duration in grid steps (number of DUR tokens, DUR_1..DUR_max)."""
        return self.resolution * self.max_duration_quarters

    def config_hash(self) -> str:
        """A short stable hash of every field (used to invalidate preprocessed shards)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
