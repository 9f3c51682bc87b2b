"""A lean Standard MIDI File reader: bytes -> notes, tempos, time signatures, programs.

Why not mido for reading: mido builds a validated Message object per event, which costs more than
all of HID's tokenisation. This reader touches each byte once, keeps only what HID needs, bounds
the
work (events, ticks) and turns every malformed byte into a MidiParseError naming the offset.
tests/test_smf.py checks it against mido on the whole dev corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meloformer.hid.errors import MidiParseError, MidiTooLarge, UnsupportedMidi

# Data bytes that follow each channel status (high nibble 0x8..0xE).
_DATA_LEN = {0x8: 2, 0x9: 2, 0xA: 2, 0xB: 2, 0xC: 1, 0xD: 1, 0xE: 2}


@dataclass
class RawSong:
    """What HID needs from a file, in ticks.

    Attributes:
        fmt: SMF format 0, 1 or 2 (format 2 is read like format 1: all tracks start at tick 0).
        tpq: ticks per quarter note.
        notes: (track, channel, pitch, on_tick, off_tick, velocity) per note.
        programs: (track, channel, tick, program) per program change.
        tempos: (tick, microseconds per quarter).
        time_sigs: (tick, numerator, denominator).
        end_tick: the largest tick seen in any track.
    """

    fmt: int
    tpq: int
    notes: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    programs: list[tuple[int, int, int, int]] = field(default_factory=list)
    tempos: list[tuple[int, int]] = field(default_factory=list)
    time_sigs: list[tuple[int, int, int]] = field(default_factory=list)
    end_tick: int = 0


def _smpte_ok(b: bytes) -> bool:
    """SMPTE offset: hh (rate code in bits 5-6) mm ss ff sub, in range for its frame rate."""
    if len(b) != 5:
        return False
    fps = (24, 25, 30, 30)[(b[0] >> 5) & 3]
    return (b[0] & 0x1F) < 24 and b[1] < 60 and b[2] < 60 and b[3] < fps and b[4] < 100


_META_CHECKS = {
    0x00: lambda b: len(b) in (0, 2),  # sequence number
    0x20: lambda b: len(b) == 1 and b[0] < 16,  # channel prefix
    0x54: _smpte_ok,
    0x59: lambda b: (
        len(b) == 2 and -7 <= int.from_bytes(b[:1], "big", signed=True) <= 7 and b[1] < 2
    ),  # key signature: sharps/flats, major/minor
}
_META_NAMES = {
    0x00: "sequence number",
    0x20: "channel prefix",
    0x54: "SMPTE offset",
    0x59: "key signature",
}


def read_smf(data: bytes, path: str = "<bytes>", max_events: int = 2_000_000) -> RawSong:
    """Parse a Standard MIDI File.

    Note pairing: a note-off (or note-on with velocity 0) ends the oldest sounding note of the same
    (channel, pitch) in that track (first in, first out); notes still sounding at the end of the
    track end there.

    Raises:
        MidiParseError: malformed bytes (bad header, truncated chunk, data byte without status...).
        UnsupportedMidi: SMPTE time division or a format other than 0/1/2.
        MidiTooLarge: more than `max_events` events.
    """
    if len(data) < 14 or data[:4] != b"MThd":
        raise MidiParseError(path, "no MThd header at byte 0")
    hlen = int.from_bytes(data[4:8], "big")
    if hlen < 6 or 8 + hlen > len(data):
        raise MidiParseError(path, f"bad header length {hlen}")
    fmt = int.from_bytes(data[8:10], "big")
    ntracks = int.from_bytes(data[10:12], "big")
    division = int.from_bytes(data[12:14], "big")
    if fmt > 2:
        raise UnsupportedMidi(path, f"unknown SMF format {fmt}")
    if division & 0x8000:
        raise UnsupportedMidi(path, "SMPTE time division is not supported")
    if division == 0:
        raise MidiParseError(path, "ticks per quarter note is 0")
    song = RawSong(fmt=fmt, tpq=division)
    offset, track, budget = 8 + hlen, 0, max_events
    while offset + 8 <= len(data) and track < ntracks:
        kind, size = (
            data[offset : offset + 4],
            int.from_bytes(data[offset + 4 : offset + 8], "big"),
        )
        body_start = offset + 8
        if body_start + size > len(data):
            raise MidiParseError(path, f"track {track}: chunk of {size} bytes runs past the end")
        if kind == b"MTrk":
            budget = _read_track(data, body_start, body_start + size, track, song, path, budget)
            track += 1
        elif not kind.isascii() or not kind.isalnum():
            raise MidiParseError(path, f"bad chunk type {kind!r} at byte {offset}")
        offset = body_start + size
    if track < ntracks:
        raise MidiParseError(path, f"header promises {ntracks} tracks, found {track}")
    return song


def _varlen(data: bytes, i: int, end: int, path: str) -> tuple[int, int]:
    """Read a variable-length quantity (at most 4 bytes) at i; return (value, next index)."""
    value = 0
    for _ in range(4):
        if i >= end:
            raise MidiParseError(path, f"truncated variable-length number at byte {i}")
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, i
    raise MidiParseError(path, f"variable-length number longer than 4 bytes at byte {i}")


def _read_track(
    data: bytes, i: int, end: int, track: int, song: RawSong, path: str, budget: int
) -> int:
    """Read one MTrk body data[i:end] into `song`; return the remaining event budget."""
    tick, status = 0, 0
    sounding: dict[int, list[tuple[int, int]]] = {}  # (channel << 7 | pitch) -> [(on, vel)]
    notes, programs = song.notes, song.programs
    while i < end:
        budget -= 1
        if budget < 0:
            raise MidiTooLarge(path, "more MIDI events than the limit (max_events)")
        delta, i = _varlen(data, i, end, path)
        tick += delta
        if i >= end:
            raise MidiParseError(path, f"track {track}: event truncated at byte {i}")
        b = data[i]
        if b & 0x80:
            i += 1
            if b < 0xF0:
                status = b
        elif status == 0:  # no status yet, or the last event was meta/sysex (they cancel it)
            raise MidiParseError(
                path, f"track {track}: data byte 0x{b:02x} without status at byte {i}"
            )
        if b == 0xFF:
            if i >= end:
                raise MidiParseError(path, f"track {track}: meta event truncated at byte {i}")
            mtype = data[i]
            length, i = _varlen(data, i + 1, end, path)
            if i + length > end:
                raise MidiParseError(
                    path, f"track {track}: meta event runs past the chunk at byte {i}"
                )
            status = 0
            _meta(mtype, data[i : i + length], tick, song, path, track)
            i += length
            if mtype == 0x2F:
                if i != end:
                    raise MidiParseError(
                        path, f"track {track}: end of track at byte {i}, chunk size says {end}"
                    )
                break
            continue
        if b in (0xF0, 0xF7):
            length, i = _varlen(data, i, end, path)
            if i + length > end:
                raise MidiParseError(path, f"track {track}: sysex runs past the chunk at byte {i}")
            i += length
            status = 0
            continue
        if b >= 0xF0:
            raise MidiParseError(
                path, f"track {track}: status 0x{b:02x} not allowed in a file at byte {i - 1}"
            )
        hi, ch = status >> 4, status & 0x0F
        n = _DATA_LEN[hi]
        if i + n > end:
            raise MidiParseError(path, f"track {track}: event truncated at byte {i}")
        d1 = data[i]
        d2 = data[i + 1] if n == 2 else 0
        if (d1 | d2) & 0x80:
            raise MidiParseError(path, f"track {track}: data byte > 127 at byte {i}")
        i += n
        if hi == 0x9 and d2:
            sounding.setdefault((ch << 7) | d1, []).append((tick, d2))
        elif hi == 0x8 or hi == 0x9:
            started = sounding.get((ch << 7) | d1)
            if started:
                on, vel = started.pop(0)
                notes.append((track, ch, d1, on, tick, vel))
        elif hi == 0xC:
            programs.append((track, ch, tick, d1))
    else:
        raise MidiParseError(path, f"track {track}: no end-of-track event")
    for key, started in sounding.items():
        for on, vel in started:
            notes.append((track, key >> 7, key & 0x7F, on, tick, vel))
    song.end_tick = max(song.end_tick, tick)
    return budget


def _meta(mtype: int, body: bytes, tick: int, song: RawSong, path: str, track: int) -> None:
    """Keep tempo (0x51) and time signature (0x58); check the fixed-layout ones HID skips."""
    if mtype in _META_CHECKS and not _META_CHECKS[mtype](body):
        raise MidiParseError(path, f"track {track}: bad {_META_NAMES[mtype]} event {body.hex()}")
    if mtype == 0x51:
        if len(body) != 3:
            raise MidiParseError(path, f"track {track}: tempo event of {len(body)} bytes")
        uspq = int.from_bytes(body, "big")
        if uspq == 0:
            raise MidiParseError(path, f"track {track}: tempo of 0 microseconds per quarter")
        song.tempos.append((tick, uspq))
    elif mtype == 0x58:
        if len(body) < 2:
            raise MidiParseError(path, f"track {track}: time signature of {len(body)} bytes")
        num, den_pow = body[0], body[1]
        if num == 0 or den_pow > 6:
            raise MidiParseError(path, f"track {track}: bad time signature {num}/2^{den_pow}")
        song.time_sigs.append((tick, num, 1 << den_pow))
