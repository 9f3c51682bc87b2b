"""MIDI -> HID: read the file, snap it to the grid, lay it out as tokens + metadata."""

from __future__ import annotations

import io
from pathlib import Path

import mido

from meloformer.hid.config import HIDConfig
from meloformer.hid.errors import MidiParseError
from meloformer.hid.quantize import quantize
from meloformer.hid.score import Score
from meloformer.hid.smf import read_smf
from meloformer.hid.song import Encoding
from meloformer.hid.tokens import encode_score
from meloformer.hid.vocab import Vocab

_VOCABS: dict[HIDConfig, Vocab] = {}


def vocab_for(cfg: HIDConfig) -> Vocab:
    """One cached Vocab per config (building one costs ~1 ms; encoding a small file less)."""
    if cfg not in _VOCABS:
        _VOCABS[cfg] = Vocab(cfg)
    return _VOCABS[cfg]


def score_bytes(data: bytes, cfg: HIDConfig = HIDConfig(), path: str = "<bytes>") -> Score:
    """MIDI bytes -> Score. Raises a MidiError subclass naming `path` for any bad input."""
    vocab = vocab_for(cfg)
    return quantize(read_smf(data, path, cfg.max_events), vocab, path)


def encode_bytes(data: bytes, cfg: HIDConfig = HIDConfig(), path: str = "<bytes>") -> Encoding:
    """MIDI bytes -> Encoding. Raises a MidiError subclass naming `path` for any bad input."""
    return encode_score(score_bytes(data, cfg, path), vocab_for(cfg))


def encode_file(path: str | Path, cfg: HIDConfig = HIDConfig()) -> Encoding:
    """Encode one MIDI file. Raises a MidiError subclass (never another type) for bad input."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise MidiParseError(str(path), f"cannot read: {e.strerror or e}") from e
    return encode_bytes(data, cfg, str(path))


def encode_midifile(
    mid: mido.MidiFile, cfg: HIDConfig = HIDConfig(), path: str = "<mido>"
) -> Encoding:
    """Encode an in-memory mido.MidiFile (serialised first, so one reader serves all inputs)."""
    buf = io.BytesIO()
    mid.save(file=buf)
    return encode_bytes(buf.getvalue(), cfg, path)
