"""HID: the instrument-major, bar-aligned token encoding of multitrack MIDI."""

from meloformer.hid.check import midi_files
from meloformer.hid.config import HIDConfig
from meloformer.hid.controls import (
    EMPTY,
    KINDS,
    LEVELS,
    N_BINS,
    ControlBins,
    add_controls,
    bin_edges,
    cell_stats,
    level,
    realised,
)
from meloformer.hid.decode import decode, parse_tokens
from meloformer.hid.encode import encode_bytes, encode_file, score_bytes, vocab_for
from meloformer.hid.errors import (
    EmptyMidi,
    GrammarError,
    HIDError,
    MidiError,
    MidiParseError,
    MidiTooLarge,
    UnsupportedMidi,
)
from meloformer.hid.infill import Span, fill_mask, infill_layout, random_span, restore
from meloformer.hid.score import Score, track_sort_key
from meloformer.hid.song import META_FIELDS, Encoding
from meloformer.hid.timeline import tempo_bin
from meloformer.hid.transpose import random_transpose, transpose, transpose_range
from meloformer.hid.vocab import (
    BOS,
    DRUM_PROGRAM,
    EOS,
    GLOBAL_PROGRAM,
    PAD,
    VOCAB_VERSION,
    Family,
    Vocab,
)

__all__ = [
    "BOS",
    "DRUM_PROGRAM",
    "EMPTY",
    "EOS",
    "GLOBAL_PROGRAM",
    "KINDS",
    "LEVELS",
    "META_FIELDS",
    "N_BINS",
    "PAD",
    "VOCAB_VERSION",
    "ControlBins",
    "EmptyMidi",
    "Encoding",
    "Family",
    "GrammarError",
    "HIDConfig",
    "HIDError",
    "MidiError",
    "MidiParseError",
    "MidiTooLarge",
    "Score",
    "Span",
    "UnsupportedMidi",
    "Vocab",
    "add_controls",
    "bin_edges",
    "cell_stats",
    "decode",
    "encode_bytes",
    "encode_file",
    "fill_mask",
    "infill_layout",
    "level",
    "midi_files",
    "parse_tokens",
    "random_span",
    "random_transpose",
    "realised",
    "restore",
    "score_bytes",
    "tempo_bin",
    "track_sort_key",
    "transpose",
    "transpose_range",
    "vocab_for",
]
