"""Small MIDI files built in code for the audio tests (the good and the bad cases)."""

from __future__ import annotations

from pathlib import Path

import mido

TPQ = 480  # ticks per quarter


def song(path: Path, channels: dict[int, list[int]], bars: int = 16, program: int = 0,
         tempos: tuple[int, ...] = (500_000,), end_beats: int | None = None) -> Path:
    """A type-1 MIDI: one track per channel playing `pitches` in turn, a quarter note each beat
    for `bars` 4/4 bars; tempo i of `tempos` (us per quarter) starts at bar i.

    Args:
        channels: channel -> pitches cycled through (channel 9 is drums).
        program: the program change sent on every non-drum channel.
        end_beats: where end-of-track sits (default: after the last note).
    """
    midi = mido.MidiFile(ticks_per_beat=TPQ)
    conductor = mido.MidiTrack([mido.MetaMessage("time_signature", numerator=4, denominator=4)])
    for i, tempo in enumerate(tempos):
        conductor.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0 if i == 0 else
                                          4 * TPQ))
    midi.tracks.append(conductor)
    for channel, pitches in channels.items():
        track = mido.MidiTrack()
        if channel != 9:
            track.append(mido.Message("program_change", channel=channel, program=program))
        for beat in range(4 * bars):
            pitch = pitches[beat % len(pitches)]
            track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=90))
            track.append(mido.Message("note_off", channel=channel, note=pitch, time=TPQ))
        if end_beats is not None:
            track.append(mido.MetaMessage("end_of_track", time=(end_beats - 4 * bars) * TPQ))
        midi.tracks.append(track)
    midi.save(str(path))
    return path


def band(path: Path) -> Path:
    """16 bars at 120 bpm: piano chords' roots, a bass line and drums (32 s)."""
    return song(path, {0: [60, 64, 67, 72], 1: [36, 43], 9: [36, 42, 38, 42]})


def no_notes(path: Path) -> Path:
    """A well-formed MIDI with a tempo and a program change but no note."""
    midi = mido.MidiFile(ticks_per_beat=TPQ)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000),
                                       mido.Message("program_change", program=5),
                                       mido.MetaMessage("end_of_track", time=16 * TPQ)]))
    midi.save(str(path))
    return path


def thirty_minutes(path: Path) -> Path:
    """Two bars of notes, then silence to 30 minutes at 120 bpm (3600 beats)."""
    return song(path, {0: [60]}, bars=2, end_beats=3600)


def sixteen_drum_channels(path: Path) -> Path:
    """Drum-kit note numbers (kick, snare, hats) on all 16 channels at once. General MIDI
    plays only channel 10 as drums: the other 15 sound as pianos."""
    return song(path, {ch: [36, 38, 42, 46] for ch in range(16)}, bars=4)
