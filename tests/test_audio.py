"""The General MIDI renderer (meloformer.audio) and `python -m meloformer.hid render`: format,
length, size, speed, drums/programs/tempo honoured, and the bad inputs."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import soundfile
from audio_midis import TPQ, band, no_notes, sixteen_drum_channels, song, thirty_minutes

from meloformer.audio import TAIL_S, NoNotes, TooLong, render_midi
from meloformer.hid.__main__ import main as hid_main


def audio(path):
    data, rate = soundfile.read(path, dtype="float32")
    return data, rate


def onset(data: np.ndarray, rate: int, floor: float = 0.01) -> float:
    """Seconds until the first frame louder than `floor`."""
    return int(np.argmax(np.abs(data).max(axis=1) > floor)) / rate


def test_a_16_bar_song_renders_to_small_stereo_ogg_of_its_length(tmp_path):
    mid = band(tmp_path / "band.mid")
    done = render_midi(mid, tmp_path / "band.ogg")
    info = soundfile.info(tmp_path / "band.ogg")
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "OGG", "VORBIS", 44100, 2)
    assert abs(done.midi_seconds - 32.0) < 1e-6  # 16 bars of 4/4 at 120 bpm
    assert abs(info.duration - (32.0 + TAIL_S)) <= 0.5
    assert done.bytes <= 1_000_000 and done.bytes == (tmp_path / "band.ogg").stat().st_size
    print(f"16 bars: {done.render_s:.2f} s to render, {done.bytes / 1024:.0f} KiB")
    assert done.render_s <= 2.0
    data, _ = audio(tmp_path / "band.ogg")
    assert 0.01 < np.abs(data).max() <= 1.0
    assert not np.allclose(data[:, 0], data[:, 1])  # the GM presets pan: real stereo


def test_drums_play_on_channel_10_and_programs_are_honoured(tmp_path):
    notes = [36, 38, 42, 46]
    renders = {}
    for name, channel, program in (("drums", 9, 0), ("piano", 0, 0), ("flute", 0, 73)):
        mid = song(tmp_path / f"{name}.mid", {channel: notes}, bars=2, program=program)
        render_midi(mid, tmp_path / f"{name}.ogg")
        renders[name] = audio(tmp_path / f"{name}.ogg")[0]
    spectrum = {k: np.abs(np.fft.rfft(v[: 44100 * 2, 0])) for k, v in renders.items()}
    for a, b in (("drums", "piano"), ("piano", "flute"), ("drums", "flute")):
        sa, sb = spectrum[a] / spectrum[a].sum(), spectrum[b] / spectrum[b].sum()
        assert np.abs(sa - sb).sum() > 0.3, (a, b)  # different instruments, not a gain change


def test_tempo_changes_move_the_notes(tmp_path):
    """Beats 0-3 at 60 bpm, then 120 bpm: a lone note on beat 4 sounds at 4 s (not 2 s), and
    the song ends 2 beats later at 5 s."""
    midi = mido.MidiFile(ticks_per_beat=TPQ)
    midi.tracks.append(mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=1_000_000),
        mido.MetaMessage("set_tempo", tempo=500_000, time=4 * TPQ)]))
    midi.tracks.append(mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=100, time=4 * TPQ),
        mido.Message("note_off", note=60, time=2 * TPQ)]))
    midi.save(str(tmp_path / "t.mid"))
    done = render_midi(tmp_path / "t.mid", tmp_path / "t.ogg")
    assert abs(done.midi_seconds - 5.0) < 1e-6
    data, rate = audio(tmp_path / "t.ogg")
    assert abs(len(data) / rate - (5.0 + TAIL_S)) < 0.05
    assert abs(onset(data, rate) - 4.0) < 0.03


def test_a_drum_only_song_renders(tmp_path):
    mid = song(tmp_path / "d.mid", {9: [36, 42, 38, 42]}, bars=4)
    done = render_midi(mid, tmp_path / "d.ogg")
    assert abs(done.seconds - (8.0 + TAIL_S)) < 0.05
    assert np.abs(audio(tmp_path / "d.ogg")[0]).max() > 0.01


def test_sixteen_channels_of_drum_notes_render(tmp_path):
    done = render_midi(sixteen_drum_channels(tmp_path / "x.mid"), tmp_path / "x.ogg")
    data, _ = audio(tmp_path / "x.ogg")
    assert abs(done.seconds - (8.0 + TAIL_S)) < 0.05
    assert 0.01 < np.abs(data).max() <= 1.0  # 16 voices at once: loud, but clipped, not wrapped


@pytest.mark.parametrize(("make", "error", "reason"), [
    (no_notes, NoNotes, "no notes: nothing to render"),
    (thirty_minutes, TooLong, "1800 s long, past the 600 s audio limit"),
])
def test_bad_songs_are_refused_with_a_reason_naming_the_file(tmp_path, make, error, reason):
    mid = make(tmp_path / "bad.mid")
    with pytest.raises(error) as e:
        render_midi(mid, tmp_path / "bad.ogg")
    assert str(e.value) == f"{mid}: {reason}"
    assert not list(tmp_path.glob("bad.ogg*"))  # no audio, no temp file left


def not_midi(path):
    path.write_bytes(b"RIFF....WAVEfmt ")
    return path


@pytest.mark.parametrize("make", [no_notes, thirty_minutes, not_midi])
def test_the_render_command_refuses_with_one_error_line(tmp_path, capsys, make):
    mid = make(tmp_path / "bad.mid")
    with pytest.raises(SystemExit) as e:
        hid_main(["render", str(mid), "-o", str(tmp_path / "bad.ogg")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {mid}: "), err


def test_the_render_command_renders_any_midi(tmp_path, capsys, fixture_midis):
    out = tmp_path / "song.ogg"
    assert hid_main(["render", str(fixture_midis[0]), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert soundfile.info(out).duration > TAIL_S



def test_without_the_synthesizer_a_sample_says_how_to_install_it(tmp_path, monkeypatch):
    """tinysoundfont is installed with --no-deps (its pyaudio needs portaudio headers): when
    it is missing, rendering is refused with the install line, not an ImportError."""
    import sys

    from meloformer.audio import NoSynth

    midi = song(tmp_path / "song.mid", {0: [60, 64]}, bars=2)
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # import fails
    with pytest.raises(NoSynth, match="pip install --no-deps tinysoundfont"):
        render_midi(midi, tmp_path / "song.ogg")
    assert not (tmp_path / "song.ogg").exists()
