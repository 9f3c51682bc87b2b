"""MIDI -> audio: a General MIDI rendering (stereo 44.1 kHz OGG Vorbis) to listen to samples.

The synthesizer is TinySoundFont (`tinysoundfont`, MIT) playing the TimGM6mb General MIDI
SoundFont that the `pretty-midi` wheel ships (GPL-2.0, by Tim Brechbill). Channel 10 (index 9)
is drums; program changes, control changes, pitch bends and tempo changes are honoured. The
audio lasts the MIDI's length (mido's, end-of-track included) plus TAIL_S of release tail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import mido
import numpy as np
import soundfile

from meloformer.errors import UserError
from meloformer.io import atomic_path

SAMPLE_RATE = 44100
TAIL_S = 1.0
"""Seconds of audio after the MIDI ends, so the last notes release instead of being cut."""
MAX_SECONDS = 600.0
"""Longer songs are refused: a generated sample is minutes long, a 30-minute file is a mistake
(its OGG would be ~30 MB and take a minute of CPU)."""
DRUM_CHANNEL = 9
GAIN_DB = -6.0  # headroom: a full General MIDI band at once clips at 0 dB
QUALITY = 0.3  # Vorbis quality 0..1 (soundfile's compression_level is 1 - quality)
BLOCK = 1 << 16  # frames rendered per buffer: memory stays flat for long songs


class AudioError(UserError):
    """A MIDI file that is not rendered; `str(e)` names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


class NoNotes(AudioError):
    """The MIDI has no note to play: there is nothing to hear."""


class TooLong(AudioError):
    """The MIDI lasts longer than the limit (MAX_SECONDS by default)."""


@dataclass(frozen=True)
class Rendered:
    """What render_midi wrote."""

    path: Path
    seconds: float
    """The audio's length (the MIDI's plus TAIL_S)."""
    midi_seconds: float
    render_s: float
    """Wall-clock seconds of synthesis and encoding."""
    bytes: int


def soundfont_path() -> Path:
    """The General MIDI SoundFont shipped in the pretty-midi wheel."""
    import pretty_midi  # located lazily: importing it is the only way to find the file

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@cache
def _soundfont_bytes() -> bytes:
    return soundfont_path().read_bytes()


def read_midi(path: Path, max_seconds: float = MAX_SECONDS) -> tuple[mido.MidiFile, float]:
    """The parsed MIDI and its length in seconds (tempo changes applied).

    Raises:
        AudioError: unreadable; NoNotes: no note; TooLong: longer than max_seconds.
    """
    try:
        midi = mido.MidiFile(path)
        seconds = midi.length  # ValueError for type 2 (asynchronous) files
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise AudioError(path, f"not a readable MIDI file ({e})") from e
    if not any(m.type == "note_on" and m.velocity for t in midi.tracks for m in t):
        raise NoNotes(path, "no notes: nothing to render")
    if seconds > max_seconds:
        raise TooLong(path, f"{seconds:.0f} s long, past the {max_seconds:.0f} s audio limit")
    return midi, seconds


def timed_messages(midi: mido.MidiFile) -> Iterator[tuple[float, mido.Message]]:
    """(seconds from the start, channel message) in playing order, all tracks merged."""
    now = 0.0
    for msg in midi:  # mido merges the tracks and turns delta ticks into seconds
        now += msg.time
        if not msg.is_meta and hasattr(msg, "channel"):
            yield now, msg


class NoSynth(AudioError):
    """tinysoundfont is not installed (it is installed with --no-deps: its pyaudio dependency,
    for live playback only, would need the portaudio headers to build)."""


INSTALL = "pip install --no-deps tinysoundfont"


def new_synth(path: Path | str = ""):
    """A TinySoundFont synth with the GM SoundFont: programs 0, drums on channel 10.

    Raises:
        NoSynth: tinysoundfont is missing (the message says how to install it).
    """
    try:
        import tinysoundfont
    except ImportError:
        raise NoSynth(path, f"no synthesizer: tinysoundfont is not installed ({INSTALL})"
                      ) from None

    synth = tinysoundfont.Synth(gain=GAIN_DB, samplerate=SAMPLE_RATE)
    synth.sfload(_soundfont_bytes())
    for channel in range(16):
        set_program(synth, channel, 0)
    return synth


def set_program(synth, channel: int, program: int) -> None:
    """Select a GM program (a drum kit on channel 10); an absent preset falls back to 0."""
    drums = channel == DRUM_CHANNEL
    try:
        synth.program_change(channel, program, drums)
    except RuntimeError:  # TimGM6mb has the 128 GM programs but only some drum kits
        synth.program_change(channel, 0, drums)


def send(synth, msg: mido.Message) -> None:
    """Play one channel message (system and aftertouch messages are ignored)."""
    ch = msg.channel
    if msg.type == "note_on" and msg.velocity:
        synth.noteon(ch, msg.note, msg.velocity)
    elif msg.type in ("note_on", "note_off"):
        synth.noteoff(ch, msg.note)
    elif msg.type == "program_change":
        set_program(synth, ch, msg.program)
    elif msg.type == "control_change":
        synth.control_change(ch, msg.control, msg.value)
    elif msg.type == "pitchwheel":
        synth.pitchbend(ch, msg.pitch + 8192)  # mido: -8192..8191, MIDI: 0..16383


class Tape:
    """Synth frames into an open SoundFile, BLOCK frames at a time."""

    def __init__(self, synth, out: soundfile.SoundFile) -> None:
        self.synth, self.out = synth, out
        self.buf = np.zeros((BLOCK, 2), np.float32)  # (frames, stereo), interleaved rows
        self.fill = 0
        self.frames = 0

    def advance_to(self, frame: int) -> None:
        """Render until `frame` frames have been produced."""
        while self.frames < frame:
            n = min(frame - self.frames, BLOCK - self.fill)
            view = memoryview(self.buf[self.fill:self.fill + n].reshape(-1)).cast("B")
            self.synth.generate_simple(n, buffer=view)
            self.fill, self.frames = self.fill + n, self.frames + n
            if self.fill == BLOCK:
                self.flush()

    def flush(self) -> None:
        self.out.write(np.clip(self.buf[:self.fill], -1.0, 1.0))
        self.fill = 0


def render_midi(path: Path, out: Path, max_seconds: float = MAX_SECONDS) -> Rendered:
    """Render a MIDI file to a stereo 44.1 kHz OGG Vorbis file (atomically).

    Args:
        path: the MIDI file.
        out: the .ogg to write (its folder is created).
        max_seconds: longer MIDIs are refused (TooLong).

    Returns:
        What was written, with its timings.

    Raises:
        AudioError (NoNotes, TooLong, NoSynth): the file is not rendered; the message names
            it.
    """
    start = time.perf_counter()
    midi, seconds = read_midi(Path(path), max_seconds)
    synth = new_synth(path)
    try:
        with atomic_path(Path(out)) as tmp, soundfile.SoundFile(
                tmp, "w", SAMPLE_RATE, 2, format="OGG", subtype="VORBIS",
                compression_level=1.0 - QUALITY) as sink:
            tape = Tape(synth, sink)
            for t, msg in timed_messages(midi):
                tape.advance_to(round(t * SAMPLE_RATE))
                send(synth, msg)
            tape.advance_to(round((seconds + TAIL_S) * SAMPLE_RATE))
            tape.flush()
    except soundfile.LibsndfileError as e:  # e.g. an unwritable folder
        raise AudioError(out, f"cannot write the audio ({e})") from e
    return Rendered(Path(out), tape.frames / SAMPLE_RATE, seconds,
                    time.perf_counter() - start, Path(out).stat().st_size)
