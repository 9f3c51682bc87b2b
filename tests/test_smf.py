"""The lean SMF reader agrees with mido (the slow oracle) on every note of real files."""

from __future__ import annotations

import io
from collections import Counter

import mido
import pytest
from conftest import corpus_index

from meloformer.hid import MidiError
from meloformer.hid.smf import read_smf


def mido_notes(data: bytes) -> Counter:
    """(track, channel, pitch, on, off, velocity) of every note, FIFO-paired, read by mido."""
    mid = mido.MidiFile(file=io.BytesIO(data))
    out: Counter = Counter()
    for ti, track in enumerate(mid.tracks):
        tick, sounding = 0, {}
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault((msg.channel, msg.note), []).append((tick, msg.velocity))
            elif msg.type in ("note_on", "note_off") and sounding.get((msg.channel, msg.note)):
                on, vel = sounding[(msg.channel, msg.note)].pop(0)
                out[(ti, msg.channel, msg.note, on, tick, vel)] += 1
        for (ch, note), started in sounding.items():
            for on, vel in started:
                out[(ti, ch, note, on, tick, vel)] += 1
    return out


def test_reader_matches_mido_on_fixtures(fixture_midis):
    assert fixture_midis, "tests/fixtures must hold real MIDI files"
    for path in fixture_midis:
        data = path.read_bytes()
        assert Counter(read_smf(data, str(path)).note_rows()) == mido_notes(data), path.name


@pytest.mark.corpus
def test_reader_matches_mido_on_corpus(corpus):
    """Every 4th valid file of each source (mido is slow; the sample still covers all sources)."""
    checked = refused = 0
    for row in corpus_index()[::4]:
        if row["kind"] != "valid":
            continue
        data = (corpus / row["path"]).read_bytes()
        try:
            expected = mido_notes(data)
        except Exception:  # noqa: BLE001 - mido rejects some lenient-valid files; no oracle then
            continue
        if mido.MidiFile(file=io.BytesIO(data)).type == 2:
            continue  # mido's format-2 reading differs only in track timing, not notes
        try:
            ours = read_smf(data, row["path"]).note_rows()
        except MidiError:
            refused += 1  # stricter than mido (e.g. no end-of-track): allowed, but rare
            continue
        assert Counter(ours) == expected, row["path"]
        checked += 1
    assert refused <= 2
    assert checked > 300
