"""Builders of hostile Standard MIDI Files for the tests (generated, not committed binaries).

Each builder returns bytes; `smf` assembles a header and track bodies, so a test states only
the events that make a file hostile.
"""

from __future__ import annotations

EOT = b"\x00\xff\x2f\x00"  # delta 0, end of track


def varlen(value: int) -> bytes:
    """A MIDI variable-length quantity (value < 2^28)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int = 1, ntracks: int = 1, division: int = 96) -> bytes:
    """An MThd chunk."""
    return b"MThd" + (6).to_bytes(4, "big") + b"".join(
        v.to_bytes(2, "big") for v in (fmt, ntracks, division)
    )


def chunk(body: bytes, kind: bytes = b"MTrk", size: int | None = None) -> bytes:
    """A chunk; `size` overrides the declared length (to lie about it)."""
    return kind + (len(body) if size is None else size).to_bytes(4, "big") + body


def smf(*bodies: bytes, fmt: int = 1, division: int = 96, ntracks: int | None = None) -> bytes:
    """A whole file: one MTrk per body (end-of-track appended to each)."""
    n = len(bodies) if ntracks is None else ntracks
    return header(fmt, n, division) + b"".join(chunk(b + EOT) for b in bodies)


def note(pitch: int = 60, length: int = 96, channel: int = 0, vel: int = 100) -> bytes:
    """A note-on at delta 0 and its note-off `length` ticks later."""
    return bytes([0, 0x90 | channel, pitch, vel]) + varlen(length) + bytes([0x80 | channel,
                                                                          pitch, 0])


def meta(mtype: int, body: bytes, delta: int = 0) -> bytes:
    """A meta event."""
    return varlen(delta) + bytes([0xFF, mtype]) + varlen(len(body)) + body


def tempo(uspq: int) -> bytes:
    return meta(0x51, uspq.to_bytes(3, "big"))


def time_sig(num: int, den_pow: int) -> bytes:
    return meta(0x58, bytes([num, den_pow, 24, 8]))


def dense_bar(n_notes: int, ticks: int = 380) -> bytes:
    """`n_notes` short notes in the first `ticks` ticks of a 4/4 bar (96 ticks a quarter), 128
    pitches round robin, in running status (note-off = note-on of velocity 0): ~6 bytes a note.
    The default stops short of 384 so no onset rounds into the next bar."""
    step = -(-n_notes // ticks)  # notes per tick
    out = bytearray([0, 0x90, 0, 100, 0, 0, 0])
    for i in range(1, n_notes):
        out += bytes([1 if i % step == 0 else 0, i % 128, 100, 0, i % 128, 0])
    return bytes(out)


def rmid(midi: bytes) -> bytes:
    """`midi` wrapped in a RIFF RMID container (a data chunk, padded to even length)."""
    data = b"data" + len(midi).to_bytes(4, "little") + midi + b"\0" * (len(midi) % 2)
    body = b"RMID" + data
    return b"RIFF" + len(body).to_bytes(4, "little") + body
