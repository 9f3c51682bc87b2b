"""Frozen configs of the data stages (discover, preprocess, validate), one per params section."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from meloformer.errors import check
from meloformer.hid import HIDConfig

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DiscoverConfig:
    """Which files count as MIDI, and how songs are assigned to splits."""

    extensions: tuple[str, ...] = (".mid", ".midi", ".kar")
    """File name endings taken as MIDI, compared case-insensitively."""
    val_fraction: float = 0.1
    """Share of unique songs in the validation split (assigned from the content hash). This
    default is the one owner of the value: the seed CLI's --val-fraction defaults to it and
    params.yaml states the same number, so both entry points split a corpus alike (tested)."""
    test_fraction: float = 0.1
    """Share of unique songs in the test split (same single default as val_fraction)."""
    follow_symlinks: bool = True
    """Walk into symlinked directories (each real directory is walked once, so loops end)."""
    workers: int = 4
    """Threads that read and hash files (I/O bound; hashlib releases the GIL)."""

    def __post_init__(self) -> None:
        exts = tuple(e.lower() for e in self.extensions)
        check("extensions", list(exts), bool(exts) and all(e.startswith(".") for e in exts),
              "must be non-empty, each starting with '.'")
        object.__setattr__(self, "extensions", exts)
        for name in ("val_fraction", "test_fraction"):
            check(name, getattr(self, name), 0.0 <= getattr(self, name) < 1.0,
                  "must be in [0, 1)")
        check("test_fraction", self.test_fraction, self.val_fraction + self.test_fraction < 1,
              f"must leave room for train beside val_fraction ({self.val_fraction})")
        check("workers", self.workers, self.workers >= 1, "must be >= 1")

    @property
    def split_fractions(self) -> dict[str, float]:
        """Expected share of each split, in SPLITS order."""
        val, test = self.val_fraction, self.test_fraction
        return {"train": 1.0 - val - test, "val": val, "test": test}


@dataclass(frozen=True)
class PreprocessConfig:
    """How the manifest becomes token shards."""

    hid: HIDConfig = field(default_factory=HIDConfig)
    """The codec's grid and vocabulary."""
    workers: int = 2
    """Worker processes; each encodes and writes whole shards."""
    shard_size: int = 10_000
    """Manifest rows per shard (the unit of parallelism, resumption and rebuilding)."""
    timeout_s: float = 60.0
    """Per-file time limit: a file still encoding after it is rejected as "timeout"."""

    def __post_init__(self) -> None:
        check("workers", self.workers, self.workers >= 1, "must be >= 1")
        check("shard_size", self.shard_size, self.shard_size >= 1, "must be >= 1")
        check("timeout_s", self.timeout_s, self.timeout_s > 0, "must be > 0")

    def content_hash(self) -> str:
        """Hash of every field that can change a shard's bytes (`workers` cannot)."""
        blob = json.dumps(
            [self.hid.config_hash(), self.shard_size, self.timeout_s], sort_keys=True
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds of the shard validation suite."""

    max_reject_rate: float = 0.05
    """Largest tolerated share of discovered files that preprocessing rejected."""
    split_tolerance: float = 0.02
    """Allowed |observed - expected| split share, on top of binomial noise (see validate.py)."""

    def __post_init__(self) -> None:
        check("max_reject_rate", self.max_reject_rate, 0.0 <= self.max_reject_rate <= 1.0,
              "must be in [0, 1]")
        check("split_tolerance", self.split_tolerance, self.split_tolerance >= 0,
              "must be >= 0")
