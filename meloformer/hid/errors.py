"""Typed errors of the HID codec: bad MIDI input and ungrammatical token sequences."""

from __future__ import annotations

from meloformer.errors import UserError


class HIDError(UserError):
    """Base class of every error the codec raises on purpose."""


class MidiError(HIDError):
    """A MIDI file that cannot be encoded. `str(e)` names the file and the reason.

    Args:
        path: the file (or "<bytes>" for in-memory data).
        reason: one line saying what is wrong and where (byte offset, track, field).
    """

    kind = "midi-error"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class MidiParseError(MidiError):
    """The bytes are not a well-formed Standard MIDI File (truncated, bad chunk, bad status)."""

    kind = "parse"


class UnsupportedMidi(MidiError):
    """Well-formed, but outside what HID represents (SMPTE time, unknown time signature)."""

    kind = "unsupported"


class MidiTooLarge(MidiError):
    """Past a work bound of HIDConfig (events, bars, tracks): refused rather than hang."""

    kind = "too-large"


class EmptyMidi(MidiError):
    """No notes at all: nothing to encode."""

    kind = "empty"


class GrammarError(HIDError):
    """A token sequence that breaks the HID grammar.

    Args:
        index: position of the offending token in the sequence.
        got: the offending token's name (or "<end>" when the sequence stops too early).
        expected: names of the token families that would have been legal there.
    """

    def __init__(self, index: int, got: str, expected: list[str], detail: str = "") -> None:
        more = f" ({detail})" if detail else ""
        super().__init__(f"token {index}: got {got}, expected one of {', '.join(expected)}{more}")
        self.index = index
        self.got = got
        self.expected = expected
