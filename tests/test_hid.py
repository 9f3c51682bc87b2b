"""HID codec: exact round trip on real files, note F1 vs mido, timing, empty bars, metadata."""

from __future__ import annotations

import io
from collections import Counter

import mido
import numpy as np
import pytest
from conftest import corpus_index

from meloformer.hid import Family, HIDConfig, MidiError
from meloformer.hid.decode import decode, parse_tokens
from meloformer.hid.encode import encode_bytes, encode_file, encode_midifile, vocab_for
from meloformer.hid.grammar import GrammarState
from meloformer.hid.reference import note_f1, reference_notes

VOCAB = vocab_for(HIDConfig())


def roundtrip(path):
    enc = encode_file(path)
    mid = decode(enc.ids, VOCAB)
    return enc, mid, encode_midifile(mid)


def assert_same_encoding(a, b, name):
    assert np.array_equal(a.ids, b.ids), name
    for field, arr in a.meta().items():
        assert np.array_equal(arr, b.meta()[field]), (name, field)


def test_fixture_roundtrip_is_exact(fixture_midis):
    for path in fixture_midis:
        enc, _, again = roundtrip(path)
        assert_same_encoding(enc, again, path.name)


def test_grammar_metadata_equals_encoder_metadata(fixture_midis):
    for path in fixture_midis:
        enc = encode_file(path)
        st = GrammarState(VOCAB)
        meta = np.array([st.step(t) for t in enc.ids])
        expected = np.stack([enc.track, enc.bar, enc.type, enc.pos, enc.program], axis=1)
        assert np.array_equal(meta, expected), path.name
        assert st.done


def test_layout_is_instrument_major_with_every_bar(fixture_midis):
    for path in fixture_midis:
        enc = encode_file(path)
        assert np.all(np.diff(enc.track) >= 0), "tracks are contiguous, in order"
        for t in range(1, enc.n_tracks + 1):
            bars = (enc.ids == VOCAB.index["BAR"]) & (enc.track == t)
            assert bars.sum() == enc.n_bars, "every track holds every bar, empty ones too"
            assert np.all(np.diff(enc.bar[enc.track == t]) >= 0)


def test_fixture_note_f1(fixture_midis):
    for path in fixture_midis:
        _, mid, _ = roundtrip(path)
        source = reference_notes(mido.MidiFile(path), VOCAB)
        assert note_f1(source, reference_notes(mid, VOCAB))[2] >= 0.97, path.name


def test_empty_bars_and_changes_survive_in_place():
    """A hand-made song: silent bars 1-2, tempo change mid-bar 3, 4/4 -> 3/4 at bar 4."""
    mid = mido.MidiFile(type=1, ticks_per_beat=96)
    cond = mido.MidiTrack()
    cond.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    cond.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    cond.append(mido.MetaMessage("set_tempo", tempo=400_000, time=96 * 4 * 3 + 96 * 2))
    cond.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=96 * 2))
    mid.tracks.append(cond)
    notes = mido.MidiTrack([mido.Message("program_change", program=33, channel=1)])
    for tick_gap, note in ((0, 40), (96 * 4 * 3, 43), (96 * 4 + 96 * 3, 45)):
        notes.append(mido.Message("note_on", note=note, velocity=90, channel=1, time=tick_gap))
        notes.append(mido.Message("note_off", note=note, velocity=0, channel=1, time=96))
    mid.tracks.append(notes)
    enc = encode_midifile(mid)
    score = parse_tokens(enc.ids, VOCAB)
    assert score.n_bars == 6
    assert [VOCAB.time_sigs[i] for i in score.ts] == [(4, 4)] * 4 + [(3, 4)] * 2
    assert [(b, p) for b, p, _ in score.tempos] == [(0, 0), (3, 24)]
    assert score.bar.tolist() == [0, 3, 5]
    again = encode_midifile(decode(enc.ids, VOCAB))
    assert_same_encoding(enc, again, "hand-made")


def onset_seconds(mid: mido.MidiFile) -> list[float]:
    """Note-on times in seconds, in time order (mido applies the tempo map)."""
    now, out = 0.0, []
    for msg in mid:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append(now)
    return sorted(out)


@pytest.mark.parametrize(
    "name", ["freedoom_E1M8_3-4.mid", "groove_rock_6-8.mid", "drywetmidi_sor_7-8.mid"]
)
def test_odd_meters_keep_their_timing(fixture_midis, name):
    """Onsets in quarter notes stay within one grid step; bar length follows the meter."""
    path = next(p for p in fixture_midis if p.name == name)
    src = mido.MidiFile(path)
    enc, dec, _ = roundtrip(path)

    def beats(mid):
        out = []
        for track in mid.tracks:
            tick = 0
            for msg in track:
                tick += msg.time
                if msg.type == "note_on" and msg.velocity > 0:
                    out.append(tick / mid.ticks_per_beat)
        return np.sort(out)

    a, b = beats(src), beats(dec)
    assert len(a) >= len(b) > 0.97 * len(a)
    step = 1 / VOCAB.config.resolution

    def nearest_gap(ref, xs):
        idx = np.searchsorted(ref, xs).clip(1, len(ref) - 1)
        return np.minimum(np.abs(ref[idx] - xs), np.abs(ref[idx - 1] - xs))

    assert nearest_gap(a, b).max() <= step / 2 + 1e-9, "onsets move by at most half a step"
    ts = {VOCAB.time_sigs[i] for i in parse_tokens(enc.ids, VOCAB).ts}
    assert ts & {(3, 4), (6, 8), (7, 8)}
    # In seconds: within one grid step, plus the tempo-bin rounding (bins are 4.2 % apart).
    sa, sb = np.array(onset_seconds(src)), np.array(onset_seconds(dec))
    slowest = max([m.tempo for m in src if m.type == "set_tempo"] or [500_000]) / 1e6
    assert np.all(nearest_gap(sa, sb) <= slowest * step + 0.022 * sb + 1e-6)


def test_decoder_channels_and_programs():
    """Drums on channel 10, every melodic track on its own channel with its program."""
    path_enc = encode_midifile(_three_track_song())
    mid = decode(path_enc.ids, VOCAB)
    chans = {}
    for track in mid.tracks[1:]:
        for msg in track:
            if msg.type == "note_on":
                chans.setdefault(track.name, set()).add(msg.channel)
    assert chans["DRUMS"] == {9}
    melodic = [c for name, c in chans.items() if name != "DRUMS"]
    assert len({next(iter(c)) for c in melodic}) == len(melodic) == 2


def _three_track_song() -> mido.MidiFile:
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.Message("program_change", program=0, channel=0))
    track.append(mido.Message("program_change", program=33, channel=1))
    for ch, note in ((0, 60), (1, 36), (9, 42), (0, 64)):
        track.append(mido.Message("note_on", channel=ch, note=note, velocity=80, time=0))
        track.append(mido.Message("note_off", channel=ch, note=note, velocity=0, time=240))
    mid.tracks.append(track)
    return mid


def test_repeated_notes_keep_their_length():
    """Touching same-pitch notes (the old decoder cut them to zero) round-trip whole."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    for _ in range(4):
        track.append(mido.Message("note_on", note=40, velocity=80, time=0))
        track.append(mido.Message("note_off", note=40, velocity=0, time=480))
    mid.tracks.append(track)
    enc = encode_midifile(mid)
    score = parse_tokens(enc.ids, VOCAB)
    assert score.dur.tolist() == [12] * 4
    dec = decode(enc.ids, VOCAB)
    assert Counter(reference_notes(dec, VOCAB)) == Counter(reference_notes(mid, VOCAB))


def test_decoded_files_read_the_same_in_symusic(fixture_midis, tmp_path):
    symusic = pytest.importorskip("symusic")
    for path in fixture_midis:
        _, mid, _ = roundtrip(path)
        out = tmp_path / path.name
        mid.save(out)
        score = symusic.Score(str(out))  # ticks
        theirs = Counter(
            (n.pitch, n.time, n.time + n.duration, n.velocity)
            for t in score.tracks
            for n in t.notes
        )
        ours = Counter()
        for track in mido.MidiFile(out).tracks:
            tick, on = 0, {}
            for msg in track:
                tick += msg.time
                if msg.type == "note_on" and msg.velocity:
                    on[(msg.channel, msg.note)] = (tick, msg.velocity)
                elif msg.type in ("note_on", "note_off") and (msg.channel, msg.note) in on:
                    start, vel = on.pop((msg.channel, msg.note))
                    ours[(msg.note, start, tick, vel)] += 1
        assert theirs == ours, path.name


@pytest.fixture(scope="module")
def corpus_roundtrips(corpus):
    """encode -> decode -> encode for every valid corpus file, computed once."""
    out = []
    for row in corpus_index():
        path = corpus / row["path"]
        data = path.read_bytes()
        try:
            enc = encode_bytes(data, HIDConfig(), row["path"])
        except MidiError:
            continue
        mid = decode(enc.ids, VOCAB)
        out.append((row, data, enc, mid, encode_midifile(mid)))
    return out


@pytest.mark.corpus
def test_corpus_roundtrip_is_exact_for_every_valid_file(corpus_roundtrips):
    assert len(corpus_roundtrips) > 1350
    for row, _, enc, _, again in corpus_roundtrips:
        assert_same_encoding(enc, again, row["path"])


@pytest.mark.corpus
def test_corpus_note_f1(corpus_roundtrips):
    """Pooled note F1 >= 0.99 over the corpus (every 2nd file: the mido oracle is slow)."""
    hits = src = dec = 0
    for _, data, _, mid, _ in corpus_roundtrips[::2]:
        try:
            source = reference_notes(mido.MidiFile(file=io.BytesIO(data)), VOCAB)
        except Exception:  # noqa: BLE001 - no oracle where mido refuses the file
            continue
        decoded = reference_notes(mid, VOCAB)
        hits += sum((source & decoded).values())
        src += sum(source.values())
        dec += sum(decoded.values())
    p, r = hits / dec, hits / src
    assert 2 * p * r / (p + r) >= 0.99


@pytest.mark.corpus
def test_corpus_tokens_per_note(corpus_roundtrips):
    notes = sum(e.n_notes for _, _, e, _, _ in corpus_roundtrips)
    tokens = sum(len(e) for _, _, e, _, _ in corpus_roundtrips)
    assert tokens / notes <= 3.5
    assert all(
        e.type.dtype == np.int8 and len(e.type) == len(e) for _, _, e, _, _ in corpus_roundtrips
    )
    assert {int(f) for f in Family} >= set(np.unique(corpus_roundtrips[0][2].type).tolist())
