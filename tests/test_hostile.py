"""Hostile MIDI files, built here: each is encoded, or refused with a typed error naming the
file and the field, quickly and without a blow-up (issue 21; docs/fuzzing.md)."""

from __future__ import annotations

import time

import pytest
from hostile import (
    EOT,
    chunk,
    dense_bar,
    header,
    meta,
    note,
    rmid,
    smf,
    tempo,
    time_sig,
    varlen,
)

from meloformer.hid import HIDConfig, MidiParseError, MidiTooLarge
from meloformer.hid.encode import encode_bytes, score_bytes
from meloformer.hid.errors import UnsupportedMidi
from meloformer.hid.smf import read_smf


def refused(data: bytes, error: type, *words: str) -> str:
    """Encode `data` as hostile.mid; assert it raises `error` naming the file and `words`."""
    with pytest.raises(error) as err:
        encode_bytes(data, HIDConfig(), "hostile.mid")
    assert str(err.value).startswith("hostile.mid: ")
    for word in words:
        assert word in err.value.reason
    return err.value.reason


def test_65535_tracks_promised_is_refused_before_reading_any():
    reason = refused(header(ntracks=65535) + chunk(note() + EOT), MidiParseError, "65535 tracks")
    assert "bytes follow" in reason  # checked against the remaining bytes, not after a loop


def test_65535_real_tracks_encode_or_hit_max_tracks():
    one_note = [note() if i == 0 else b"" for i in range(65535)]
    assert encode_bytes(smf(*one_note)).n_notes == 1
    refused(smf(*[note(pitch=i % 128) for i in range(65535)]), MidiTooLarge, "max_tracks")


def test_track_length_of_2_to_the_32_minus_1_is_refused():
    refused(header() + chunk(note() + EOT, size=2**32 - 1), MidiParseError, "track 0",
            "4294967295 bytes")


def test_a_million_notes_in_one_bar_encode_to_at_most_one_per_grid_cell():
    cfg = HIDConfig()
    enc = encode_bytes(smf(dense_bar(999_999)), cfg)  # 2M events: just under max_events
    assert enc.n_bars == 1
    assert 0 < enc.n_notes <= 128 * cfg.resolution * 4  # one per (pitch, step) of a 4/4 bar


def test_tempo_0_is_refused_and_tempo_2_to_the_24_minus_1_is_the_slowest_bin():
    refused(smf(tempo(0) + note()), MidiParseError, "tempo of 0")
    score = score_bytes(smf(tempo(2**24 - 1) + note()))
    assert [t[2] for t in score.tempos] == [0]


@pytest.mark.parametrize("num, den_pow", [(255, 255), (0, 0)])
def test_impossible_time_signatures_are_refused(num, den_pow):
    refused(smf(time_sig(num, den_pow) + note()), MidiParseError, "time signature",
            f"{num}/2^{den_pow}")


def test_a_255_quarter_bar_is_unsupported():
    refused(smf(time_sig(255, 2) + note()), UnsupportedMidi, "255/4")


def test_note_ons_never_released_end_with_the_track_capped_at_max_duration():
    cfg = HIDConfig()
    body = bytes([0, 0x90, 60, 100, 0, 62, 100]) + varlen(96 * 100) + bytes([64, 100])
    score = score_bytes(smf(body), cfg)
    assert sorted(score.pitch.tolist()) == [60, 62, 64]
    assert score.dur.max() == cfg.max_duration  # 100 quarters, cut to the cap


def test_many_overlapping_notes_of_one_pitch_pair_in_linear_time():
    """200k note-ons of one pitch, then 200k note-offs: FIFO pairing must not be quadratic."""
    n = 200_000
    body = bytes([0, 0x90, 60, 100]) + bytes([0, 60, 100]) * (n - 1)
    body += bytes([1, 0x80, 60, 0]) + bytes([0, 60, 0]) * (n - 1)
    start = time.perf_counter()
    song = read_smf(smf(body))
    assert time.perf_counter() - start < 3.0  # ~0.3 s; list.pop(0) pairing took minutes
    assert len(song.notes) == 6 * n


def test_running_status_carries_across_meta_and_sysex():
    body = bytes([0, 0x90, 60, 100])  # note-on, status 0x90
    body += meta(0x01, b"text")  # a meta event...
    body += bytes([0, 62, 100])  # ...then a data byte: still note-on (running status)
    body += bytes([0, 0xF0, 3, 0x7E, 0x01, 0xF7])  # a sysex event...
    body += bytes([48, 60, 0, 0, 62, 0])  # ...then both notes end, in running status
    song = read_smf(smf(body))
    assert sorted(song.note_rows()) == [(0, 0, 60, 0, 48, 100), (0, 0, 62, 0, 48, 100)]


def test_smpte_division_is_unsupported():
    refused(smf(note(), division=0xE728), UnsupportedMidi, "SMPTE")


def test_kar_lyrics_in_an_odd_encoding_encode():
    """Karaoke lyrics in Shift-JIS and cp1251, and bytes that are no encoding at all."""
    words = ["さくら".encode("shift_jis"), "песня".encode("cp1251"), b"\xff\xfe\x80\x00"]
    body = meta(0x01, b"@KMIDI KARAOKE FILE") + b"".join(meta(0x05, w) for w in words)
    plain = encode_bytes(smf(note()))
    assert encode_bytes(smf(body + note())).ids.tolist() == plain.ids.tolist()


def test_valid_midi_followed_by_junk_encodes_as_without_it():
    data = smf(note(), note(64))
    junk = data + b"MTrk\xff\xff\xff\xff" + bytes(range(256)) * 40
    assert encode_bytes(junk).ids.tolist() == encode_bytes(data).ids.tolist()


def test_rmid_wrapped_midi_encodes_as_the_bare_file():
    data = smf(note(), note(64, channel=3))
    assert encode_bytes(rmid(data)).ids.tolist() == encode_bytes(data).ids.tolist()


def test_rmid_lying_about_its_data_chunk_is_refused():
    lying = bytearray(rmid(smf(note())))
    lying[16:20] = (2**31).to_bytes(4, "little")  # the data chunk's size
    refused(bytes(lying), MidiParseError, "RIFF", "run past the end")
    refused(b"RIFF\x04\x00\x00\x00RMID", MidiParseError, "no data chunk")
