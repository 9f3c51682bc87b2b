"""HID: the instrument-major, bar-aligned token encoding of multitrack MIDI."""

from meloformer.hid.config import HIDConfig
from meloformer.hid.errors import (
    EmptyMidi,
    GrammarError,
    HIDError,
    MidiError,
    MidiParseError,
    MidiTooLarge,
    UnsupportedMidi,
)
from meloformer.hid.vocab import Family, Vocab

__all__ = [
    "EmptyMidi",
    "Family",
    "GrammarError",
    "HIDConfig",
    "HIDError",
    "MidiError",
    "MidiParseError",
    "MidiTooLarge",
    "UnsupportedMidi",
    "Vocab",
]
