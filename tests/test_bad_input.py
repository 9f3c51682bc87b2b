"""Bad MIDI always yields a MidiError subclass naming the file and the reason, and never hangs."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import corpus_index
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_smf import mido_notes

from meloformer.hid import HIDConfig, MidiError, MidiParseError, MidiTooLarge
from meloformer.hid.encode import encode_bytes, encode_file
from meloformer.hid.smf import read_smf


def test_corrupt_fixture_names_path_and_reason(fixture_midis):
    path = fixture_midis[0].parent / "corrupt" / "miditok_Control168.mid"
    with pytest.raises(MidiParseError) as err:
        encode_file(path)
    assert str(path) in str(err.value) and "byte" in err.value.reason


def test_missing_file_is_a_midi_error(tmp_path):
    with pytest.raises(MidiError, match="cannot read"):
        encode_file(tmp_path / "nope.mid")


# "Broken" for a strict reader only: running status after a meta event, which mido and this
# reader accept (smf.read_smf explains why); its notes must then be mido's.
LENIENT_OK = {"symusic-tests/MIDIs_corrupted/RunTimeError_unexpected_EOF.mid"}


@pytest.mark.corpus
def test_every_broken_by_design_file_is_a_midi_error(corpus):
    rows = [r for r in corpus_index() if r["kind"] == "broken-by-design"]
    assert len(rows) == 31
    for row in rows:
        if row["path"] in LENIENT_OK:
            data = (corpus / row["path"]).read_bytes()
            assert Counter(read_smf(data).note_rows()) == mido_notes(data)
            continue
        with pytest.raises(MidiError) as err:
            encode_file(corpus / row["path"])
        assert row["path"] in str(err.value) and err.value.reason


def test_absurd_ticks_are_refused_fast():
    """A note at tick 2^28 would mean millions of bars: MidiTooLarge, not a hang."""
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
    header += (96).to_bytes(2, "big")
    body = bytes([0x00, 0x90, 60, 100, 0xFF, 0xFF, 0xFF, 0x7F, 0x80, 60, 0])
    body += bytes([0x00, 0x90, 62, 100, 0x10, 0x80, 62, 0, 0x00, 0xFF, 0x2F, 0x00])
    data = header + b"MTrk" + len(body).to_bytes(4, "big") + body
    with pytest.raises(MidiTooLarge):
        encode_bytes(data)


def test_event_budget_bounds_work():
    cfg = HIDConfig(max_events=100)
    body = b"".join(bytes([0x00, 0x90, 60, 100, 0x01, 0x80, 60, 0]) for _ in range(100))
    header = b"MThd" + (6).to_bytes(4, "big") + bytes([0, 0, 0, 1, 0, 96])
    with pytest.raises(MidiTooLarge, match="max_events"):
        encode_bytes(header + b"MTrk" + len(body).to_bytes(4, "big") + body, cfg)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_files_raise_only_midi_errors(fixture_midis, data):
    """Flip, cut and splice bytes of real files: encode succeeds or raises a MidiError."""
    src = bytearray(data.draw(st.sampled_from(fixture_midis)).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(src) - 1))
        if op == "flip":
            src[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del src[at : at + data.draw(st.integers(1, 64))]
        else:
            src[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        if not src:
            src = bytearray(b"\x00")
    try:
        encode_bytes(bytes(src), HIDConfig(), "mutant.mid")
    except MidiError as e:
        assert str(e).startswith("mutant.mid: ")
