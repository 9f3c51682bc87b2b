"""A lean Standard MIDI File reader: bytes -> notes, tempos, time signatures, programs.

Why not mido for reading: mido builds a validated Message object per event, which costs more than
all of HID's tokenisation. This reader touches each byte once, keeps only what HID needs, bounds
the
work (events, ticks) and turns every malformed byte into a MidiParseError naming the offset.
Every length or count the file declares is checked against the bytes that remain before it is
used, so a lying header costs nothing (docs/fuzzing.md). tests/test_smf.py checks the reader
against mido on the whole dev corpus.
"""

from __future__ import annotations

from array import array
from collections import deque
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
        notes: (track, channel, pitch, on_tick, off_tick, velocity) per note, flattened into one
            int64 array (6 values a note: a tuple per note cost ~3x the memory); see note_rows.
        programs: (track, channel, tick, program) per program change.
        tempos: (tick, microseconds per quarter).
        time_sigs: (tick, numerator, denominator).
        end_tick: the largest tick seen in any track.
    """

    fmt: int
    tpq: int
    notes: array = field(default_factory=lambda: array("q"))
    programs: list[tuple[int, int, int, int]] = field(default_factory=list)
    tempos: list[tuple[int, int]] = field(default_factory=list)
    time_sigs: list[tuple[int, int, int]] = field(default_factory=list)
    end_tick: int = 0

    def note_rows(self) -> list[tuple[int, ...]]:
        """`notes` as one (track, channel, pitch, on, off, velocity) tuple per note."""
        flat = self.notes
        return [tuple(flat[i : i + 6]) for i in range(0, len(flat), 6)]


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


MIN_TRACK_BYTES = 12  # "MTrk", a 4-byte length, and the shortest body: 00 FF 2F 00


def read_smf(data: bytes, path: str = "<bytes>", max_events: int = 2_000_000) -> RawSong:
    """Parse a Standard MIDI File, bare or wrapped in a RIFF RMID container.

    Note pairing: a note-off (or note-on with velocity 0) ends the oldest sounding note of the same
    (channel, pitch) in that track (first in, first out); notes still sounding at the end of the
    track end there. Running status survives meta and sysex events (the spec says they cancel
    it, but real files rely on it, and a data byte there can mean nothing else). Bytes after the
    last track the header promises are ignored.

    Raises:
        MidiParseError: malformed bytes (bad header, truncated chunk, data byte without status...).
        UnsupportedMidi: SMPTE time division or a format other than 0/1/2.
        MidiTooLarge: more than `max_events` events.
    """
    data = unwrap_rmid(data, path)
    if not data:
        raise MidiParseError(path, "empty file (0 bytes)")
    if data[:4] == b"MThd" and len(data) < 14:
        raise MidiParseError(path, f"cut short: {len(data)} bytes, the header alone needs 14")
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
    offset = 8 + hlen
    if ntracks * MIN_TRACK_BYTES > len(data) - offset:
        raise MidiParseError(path, f"header promises {ntracks} tracks but only "
                                   f"{len(data) - offset} bytes follow it")
    song = RawSong(fmt=fmt, tpq=division)
    _read_chunks(data, offset, ntracks, song, path, max_events)
    return song


def unwrap_rmid(data: bytes, path: str) -> bytes:
    """The SMF inside a RIFF RMID file (its "data" chunk); any other bytes unchanged.

    Raises:
        MidiParseError: a RIFF RMID file whose chunks run past the end or hold no data chunk.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    at = 12
    while at + 8 <= len(data):
        size = int.from_bytes(data[at + 4 : at + 8], "little")
        if at + 8 + size > len(data):
            raise MidiParseError(path, f"RIFF chunk at byte {at}: {size} bytes run past the end")
        if data[at : at + 4] == b"data":
            return data[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)  # RIFF pads chunks to an even length
    raise MidiParseError(path, "RIFF RMID file with no data chunk")


def _read_chunks(
    data: bytes, offset: int, ntracks: int, song: RawSong, path: str, budget: int
) -> None:
    """Read `ntracks` MTrk chunks from data[offset:] into `song`, skipping other chunk types."""
    track = 0
    while offset + 8 <= len(data) and track < ntracks:
        kind = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "big")
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
    # (channel << 7 | pitch) -> FIFO of sounding notes, each packed as on_tick << 7 | velocity
    # (a deque: popleft is O(1) where list.pop(0) made many overlapping notes quadratic).
    sounding: dict[int, deque[int]] = {}
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
        elif status == 0:  # no channel event yet in this track
            raise MidiParseError(
                path, f"track {track}: data byte 0x{b:02x} without status at byte {i}"
            )
        else:
            b = status
        if b >= 0xF0:
            i = _system_event(data, b, i, end, tick, song, path, track)
            if i == end + 1:  # end of track
                break
            continue
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
            sounding.setdefault((ch << 7) | d1, deque()).append((tick << 7) | d2)
        elif hi == 0x8 or hi == 0x9:
            started = sounding.get((ch << 7) | d1)
            if started:
                packed = started.popleft()
                notes.extend((track, ch, d1, packed >> 7, tick, packed & 0x7F))
        elif hi == 0xC:
            programs.append((track, ch, tick, d1))
    else:
        raise MidiParseError(path, f"track {track}: no end-of-track event")
    for key, started in sounding.items():
        for packed in started:
            notes.extend((track, key >> 7, key & 0x7F, packed >> 7, tick, packed & 0x7F))
    song.end_tick = max(song.end_tick, tick)
    return budget


def _system_event(
    data: bytes, b: int, i: int, end: int, tick: int, song: RawSong, path: str, track: int
) -> int:
    """Read the meta (0xFF) or sysex (0xF0/0xF7) event whose body starts at i; return the index
    after it, or end + 1 for an end-of-track event (which must close the chunk)."""
    if b == 0xFF:
        if i >= end:
            raise MidiParseError(path, f"track {track}: meta event truncated at byte {i}")
        mtype = data[i]
        length, i = _varlen(data, i + 1, end, path)
        if i + length > end:
            raise MidiParseError(
                path, f"track {track}: meta event runs past the chunk at byte {i}"
            )
        _meta(mtype, data[i : i + length], tick, song, path, track)
        i += length
        if mtype != 0x2F:
            return i
        if i != end:
            raise MidiParseError(
                path, f"track {track}: end of track at byte {i}, chunk size says {end}"
            )
        return end + 1
    if b in (0xF0, 0xF7):
        length, i = _varlen(data, i, end, path)
        if i + length > end:
            raise MidiParseError(path, f"track {track}: sysex runs past the chunk at byte {i}")
        return i + length
    raise MidiParseError(
        path, f"track {track}: status 0x{b:02x} not allowed in a file at byte {i - 1}"
    )


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
