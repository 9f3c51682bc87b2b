"""RawSong (ticks) -> Score (grid): split tracks, snap to the grid, bar lines, tempo bins.

Policies (documented in docs/hid.md):
- a track is (MIDI track, channel, program at the note's onset); channel 10 is drums, whatever
  its program; format 0 is thereby split by channel/program, format 2 is read like format 1;
- a note's program is the last program change on its channel at or before its onset in its own
  MIDI track, else in any track, else 0;
- onsets round to the nearest step; duration = rounded offset - onset, at least 1 step, at most
  max_duration; two notes of one pitch at one onset in one track keep the longer; a note is cut
  where the same pitch starts again in its track;
- tempo and time-signature changes keep their bar and position; changes after the last bar drop.
"""

from __future__ import annotations

import numpy as np

from meloformer.hid.chords import detect_chords
from meloformer.hid.errors import EmptyMidi, MidiTooLarge
from meloformer.hid.score import Score, track_sort_key
from meloformer.hid.smf import RawSong
from meloformer.hid.timeline import DEFAULT_USPQ, bar_lines, tempo_bin, to_grid, velocity_bins
from meloformer.hid.vocab import DRUM_PROGRAM, Vocab

DRUM_CHANNEL = 9
MAX_TICK = 1 << 40  # far past max_bars at any tick rate; keeps packed (group, tick) keys in int64


def quantize(raw: RawSong, vocab: Vocab, path: str = "<bytes>") -> Score:
    """Snap a parsed file to the HID grid. Raises EmptyMidi, UnsupportedMidi, MidiTooLarge."""
    if not raw.notes:
        raise EmptyMidi(path, "no notes")
    if raw.end_tick >= MAX_TICK:
        raise MidiTooLarge(path, f"tick {raw.end_tick} is past any song")
    cfg = vocab.config
    notes = np.frombuffer(raw.notes, dtype=np.int64).reshape(-1, 6)  # track, channel, pitch,
    # on, off, velocity per row (a view of the reader's array: no copy)
    on = to_grid(notes[:, 3], raw.tpq, cfg.resolution)
    off = to_grid(notes[:, 4], raw.tpq, cfg.resolution)
    keys, programs = _track_keys(raw, notes)
    if len(programs) > cfg.max_tracks:
        raise MidiTooLarge(path, f"{len(programs)} tracks > max_tracks={cfg.max_tracks}")
    ts_events = sorted(
        ((int(to_grid(np.int64(t), raw.tpq, cfg.resolution)), n, d) for t, n, d in raw.time_sigs),
        key=lambda e: e[0],
    )
    starts, ts = bar_lines(ts_events, int(on.max()), vocab, path)
    bar = np.searchsorted(starts, on, side="right") - 1
    drum = np.array(programs)[keys] == DRUM_PROGRAM
    dur = np.where(drum, 0, np.clip(off - on, 1, cfg.max_duration))
    vel = velocity_bins(vocab)[0][notes[:, 5]]
    track, bar, pos, pitch, dur, vel = _canonical_notes(
        keys, bar, on - starts[bar], notes[:, 2], dur, vel, on
    )
    chords = detect_chords(starts, bar, pos, pitch, dur, vocab) if cfg.chords else None
    return Score(
        starts=starts,
        ts=ts,
        tempos=_tempos(raw, starts, ts, vocab),
        chords=chords,
        programs=programs,
        track=track,
        bar=bar,
        pos=pos,
        pitch=pitch,
        dur=dur,
        vel=vel,
    )


def _track_keys(raw: RawSong, notes: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """HID track of each note (index into the canonical order) and each track's program."""
    prog = _note_programs(raw, notes)
    chan = notes[:, 1]
    prog = np.where(chan == DRUM_CHANNEL, DRUM_PROGRAM, prog)
    raw_keys = notes[:, 0] * (16 * 129) + chan * 129 + prog  # (MIDI track, channel, program)
    uniq, inverse = np.unique(raw_keys, return_inverse=True)
    programs = [int(k % 129) for k in uniq]
    order = sorted(range(len(uniq)), key=lambda i: (*track_sort_key(programs[i]), int(uniq[i])))
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    return rank[inverse], [programs[i] for i in order]


def _note_programs(raw: RawSong, notes: np.ndarray) -> np.ndarray:
    """Program at each note's onset: its MIDI track's last change on the channel, else any's."""
    if not raw.programs:
        return np.zeros(len(notes), dtype=np.int64)
    changes = np.array(raw.programs, dtype=np.int64)  # (M, 4): track, channel, tick, program
    on = notes[:, 3]
    own = _last_change(
        changes[:, 0] * 16 + changes[:, 1], changes, notes[:, 0] * 16 + notes[:, 1], on
    )
    anywhere = _last_change(changes[:, 1], changes, notes[:, 1], on)
    return np.where(own >= 0, own, np.maximum(anywhere, 0))


def _last_change(group: np.ndarray, changes: np.ndarray, note_group: np.ndarray, on: np.ndarray):
    """Program of the last change in the note's group at or before its onset (-1: none).

    Keys are (group, tick) packed into one int64; ticks stay below 2**40 (MAX_TICK).
    """
    keys = group * MAX_TICK + changes[:, 2]
    order = np.argsort(keys, kind="stable")  # stable: the later change wins at equal ticks
    keys, programs = keys[order], changes[order, 3]
    idx = np.searchsorted(keys, note_group * MAX_TICK + on, side="right") - 1
    hit = (idx >= 0) & (keys[idx.clip(0)] // MAX_TICK == note_group)
    return np.where(hit, programs[idx.clip(0)], -1)


def _canonical_notes(track, bar, pos, pitch, dur, vel, on):
    """Sort notes by (track, bar, pos, pitch); drop same-pitch duplicates; cut overlaps."""
    # Group by (track, pitch), onset ascending, longest first at equal onset.
    order = np.lexsort((-dur, on, pitch, track))
    track, bar, pos, pitch, dur, vel, on = (
        a[order] for a in (track, bar, pos, pitch, dur, vel, on)
    )
    same_prev = np.r_[False, (track[1:] == track[:-1]) & (pitch[1:] == pitch[:-1])]
    keep = ~(same_prev & np.r_[False, on[1:] == on[:-1]])
    track, bar, pos, pitch, dur, vel, on = (
        a[keep] for a in (track, bar, pos, pitch, dur, vel, on)
    )
    # A note sounding when its pitch starts again in the same track ends there (drums: dur 0).
    same_next = np.r_[(track[1:] == track[:-1]) & (pitch[1:] == pitch[:-1]), False]
    gap = np.r_[on[1:] - on[:-1], 0]
    dur = np.where(same_next & (dur > 0), np.minimum(dur, gap), dur)
    order = np.lexsort((pitch, pos, bar, track))
    return tuple(a[order].astype(np.int32) for a in (track, bar, pos, pitch, dur, vel))


def _tempos(raw: RawSong, starts: np.ndarray, ts: np.ndarray, vocab: Vocab):
    """(bar, pos, bin) tempo changes inside the song, starting with the tempo at step 0."""
    cfg = vocab.config
    end = int(starts[-1] + vocab.bar_steps[ts[-1]])
    events = sorted(raw.tempos, key=lambda e: e[0])  # stable: file order at equal ticks
    out: list[tuple[int, int, int]] = []
    current = -1
    grid_events = [(0, DEFAULT_USPQ)] + [
        (int(to_grid(np.int64(t), raw.tpq, cfg.resolution)), u) for t, u in events
    ]
    # The last event at each step wins; the implicit 120 BPM is overridden by a tempo at step 0.
    last_at: dict[int, int] = {}
    for step, uspq in grid_events:
        last_at[step] = uspq
    for step in sorted(last_at):
        if step >= end:
            break
        k = tempo_bin(last_at[step], vocab)
        if k != current:
            b = int(np.searchsorted(starts, step, side="right") - 1)
            out.append((b, step - int(starts[b]), k))
            current = k
    return out
