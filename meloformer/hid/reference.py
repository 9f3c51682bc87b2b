"""The slow, obviously-correct oracle for the codec: notes read by mido, snapped to the grid.

Used by tests and `python -m meloformer.hid check` to score a decode against its source:
note F1 over (program or 128 for drums, pitch, onset step, duration steps, velocity bin), with the
naive quantisation (no duplicate removal, no overlap cut), so F1 measures what HID loses.
"""

from __future__ import annotations

from collections import Counter

import mido

from meloformer.hid.timeline import velocity_bins
from meloformer.hid.vocab import DRUM_PROGRAM, Vocab

NoteKey = tuple[int, int, int, int, int]  # program, pitch, onset, duration (0 drums), velocity bin


def reference_notes(mid: mido.MidiFile, vocab: Vocab) -> Counter[NoteKey]:
    """Every note of a mido file, snapped to the grid, as a multiset."""
    cfg, tpq = vocab.config, mid.ticks_per_beat
    vbin = velocity_bins(vocab)[0]

    def grid(tick: int) -> int:
        return (tick * 2 * cfg.resolution + tpq) // (2 * tpq)

    out: Counter[NoteKey] = Counter()
    tracks = mid.tracks if mid.type != 0 else [mid.tracks[0]]
    programs = _program_changes(tracks)
    for ti, track in enumerate(tracks):
        tick, sounding = 0, {}
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off"):
                continue
            k = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault(k, []).append((tick, msg.velocity))
            elif sounding.get(k):
                on, vel = sounding[k].pop(0)
                out[_key(msg.channel, msg.note, on, tick, vel, ti, programs, grid, vbin, cfg)] += 1
        for (ch, note), started in sounding.items():
            for on, vel in started:
                out[_key(ch, note, on, tick, vel, ti, programs, grid, vbin, cfg)] += 1
    return out


def _program_changes(tracks) -> list[tuple[int, int, int, int]]:
    """(tick, track, channel, program) of every program change."""
    out = []
    for ti, track in enumerate(tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "program_change":
                out.append((tick, ti, msg.channel, msg.program))
    return sorted(out)


def _key(ch, note, on, off, vel, ti, programs, grid, vbin, cfg) -> NoteKey:
    if ch == 9:
        prog, dur = DRUM_PROGRAM, 0
    else:
        own = [p for t, trk, c, p in programs if c == ch and trk == ti and t <= on]
        anyp = [p for t, trk, c, p in programs if c == ch and t <= on]
        prog = own[-1] if own else (anyp[-1] if anyp else 0)
        dur = min(max(grid(off) - grid(on), 1), cfg.max_duration)
    return (prog, note, grid(on), dur, int(vbin[vel]))


def note_f1(source: Counter[NoteKey], decoded: Counter[NoteKey]) -> tuple[float, float, float]:
    """(precision, recall, F1) of decoded notes against source notes, as multisets."""
    hit = sum((source & decoded).values())
    p = hit / max(sum(decoded.values()), 1)
    r = hit / max(sum(source.values()), 1)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)
