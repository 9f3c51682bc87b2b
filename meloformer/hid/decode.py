"""HID tokens -> Score -> mido.MidiFile (the inverse of meloformer.hid.encode on the grid).

Output policy (docs/hid.md): format 1, ticks per quarter = 40 * resolution; track 0 is the
conductor (time signatures at their bar lines, tempos at their positions); then one MIDI track per
HID track, in token order, with a program change at tick 0. Drums play on channel 10 (index 9);
melodic tracks take channels 1-9, 11-16 in order; a 16th+ melodic track shares the channel of the
first earlier track with its program, else channels cycle (GM has 15 melodic channels).
Drum notes last one grid step. At equal ticks note-offs come before note-ons, so a repeated note
is never cut to zero length.
"""

from __future__ import annotations

from collections.abc import Iterable

import mido
import numpy as np

from meloformer.hid.errors import GrammarError
from meloformer.hid.grammar import GrammarState
from meloformer.hid.score import Score
from meloformer.hid.timeline import bin_uspq, velocity_bins
from meloformer.hid.vocab import DRUM_PROGRAM, Vocab

TICKS_PER_STEP = 40
MELODIC_CHANNELS = [c for c in range(16) if c != 9]


def parse_tokens(ids: Iterable[int], vocab: Vocab) -> Score:
    """Check a whole token sequence against the grammar and return the Score it describes.

    Raises:
        GrammarError: at the first illegal token, or at the end if the song is unfinished.
    """
    st = GrammarState(vocab)
    for tok in ids:
        st.step(tok)
    if not st.done:
        raise GrammarError(st.index, "<end>", st.expected(), "the sequence stops before EOS")
    notes = np.array(st.notes, dtype=np.int32).reshape(-1, 6)
    # Fills (docs/hid.md "Infilling") come after every track: put their notes back in place.
    # A song without fills is already in (track, bar, pos, pitch) order; the sort keeps it.
    notes = notes[np.lexsort((notes[:, 3], notes[:, 2], notes[:, 1], notes[:, 0]))]
    ts = np.array(st.ts, dtype=np.int32)
    steps = vocab.bar_steps[ts].astype(np.int64)
    return Score(
        starts=np.r_[0, np.cumsum(steps)[:-1]].astype(np.int64),
        ts=ts,
        tempos=st.tempos,
        chords=np.array(st.chords, dtype=np.int32) if vocab.config.chords else None,
        programs=st.programs,
        track=notes[:, 0],
        bar=notes[:, 1],
        pos=notes[:, 2],
        pitch=notes[:, 3],
        dur=notes[:, 4],
        vel=notes[:, 5],
    )


def decode(ids: Iterable[int], vocab: Vocab) -> mido.MidiFile:
    """Token ids -> a playable format-1 MidiFile. Raises GrammarError on an illegal sequence."""
    return score_to_midi(parse_tokens(ids, vocab), vocab)


def assign_channels(programs: list[int]) -> list[int]:
    """MIDI channel (0-based) of each track under the policy in the module docstring."""
    out: list[int] = []
    first_with: dict[int, int] = {}
    n_melodic = 0
    for prog in programs:
        if prog == DRUM_PROGRAM:
            out.append(9)
            continue
        if n_melodic < len(MELODIC_CHANNELS):
            ch = MELODIC_CHANNELS[n_melodic]
        else:
            ch = first_with.get(prog, MELODIC_CHANNELS[n_melodic % len(MELODIC_CHANNELS)])
        first_with.setdefault(prog, ch)
        out.append(ch)
        n_melodic += 1
    return out


def score_to_midi(score: Score, vocab: Vocab) -> mido.MidiFile:
    """Write a Score as a MidiFile (see the module docstring for the policy)."""
    tps = TICKS_PER_STEP
    mid = mido.MidiFile(type=1, ticks_per_beat=tps * vocab.config.resolution)
    mid.tracks.append(_conductor_track(score, vocab))
    vel_of = velocity_bins(vocab)[1]
    onsets = score.onsets().astype(np.int64) * tps
    ends = onsets + np.maximum(score.dur, 1).astype(np.int64) * tps
    channels = assign_channels(score.programs)
    for t, (prog, ch) in enumerate(zip(score.programs, channels, strict=True)):
        events: list[tuple[int, int, str, dict]] = []  # (tick, order, type, fields)
        if prog != DRUM_PROGRAM:
            events.append((0, 0, "program_change", {"channel": ch, "program": prog}))
        for i in np.flatnonzero(score.track == t):
            note, vel = int(score.pitch[i]), int(vel_of[score.vel[i]])
            events.append(
                (int(onsets[i]), 2, "note_on", {"channel": ch, "note": note, "velocity": vel})
            )
            events.append(
                (int(ends[i]), 1, "note_off", {"channel": ch, "note": note, "velocity": 0})
            )
        name = "DRUMS" if prog == DRUM_PROGRAM else f"PROGRAM_{prog}"
        mid.tracks.append(_to_track(events, name=name))
    return mid


def _conductor_track(score: Score, vocab: Vocab) -> mido.MidiTrack:
    tps = TICKS_PER_STEP
    events: list[tuple[int, int, str, dict]] = []
    for b in range(score.n_bars):
        if b == 0 or score.ts[b] != score.ts[b - 1]:
            num, den = vocab.time_sigs[int(score.ts[b])]
            fields = {"numerator": num, "denominator": den}
            events.append((int(score.starts[b]) * tps, 0, "time_signature", fields))
    for b, p, k in score.tempos:
        events.append(
            ((int(score.starts[b]) + p) * tps, 1, "set_tempo", {"tempo": bin_uspq(k, vocab)})
        )
    return _to_track(events, name="conductor")


def _to_track(events: list[tuple[int, int, str, dict]], name: str) -> mido.MidiTrack:
    """Sort (tick, order, type, fields) and build messages with delta times."""
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
    now = 0
    for tick, _, kind, fields in sorted(events, key=lambda e: (e[0], e[1])):
        make = mido.MetaMessage if kind in ("time_signature", "set_tempo") else mido.Message
        track.append(make(kind, time=tick - now, **fields))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track
