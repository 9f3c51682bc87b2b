"""Batch packing, cells, summary slots and the bar-major order (plus song builders that the
other model tests import: synthetic HID songs and bar-window crops of real ones)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CORPUS, FIXTURES

from meloformer.hid.song import META_FIELDS, Encoding
from meloformer.hid.vocab import BOS, EOS, Family, Vocab
from meloformer.model.batch import IGNORE, PAD_DOC, Batch
from meloformer.model.cells import find_cells
from meloformer.model.layout import (
    BODY,
    HEADER,
    PAD,
    SUMMARY,
    bar_major_perm,
    build_layout,
    summary_slots,
)

VOCAB = Vocab()
MULTITRACK = [
    "freedoom/freedoom1_D_E1M1.mid",
    "freedoom/freedoom1_D_E1M2.mid",
    "openttd-openmsx/busy_schedule.mid",
]


def synthetic_song(
    seed: int, n_tracks: int = 3, n_bars: int = 4, p_empty: float = 0.3
) -> Encoding:
    """A random song laid out by the HID contract (conductor, tracks, empty bars, EOS)."""
    rng = np.random.default_rng(seed)
    rows = [(BOS, 0, 0, Family.SPECIAL, 0, 129)]
    for b in range(n_bars):  # conductor: BAR, TS (bar 0), CHORD
        rows.append((VOCAB.index["BAR"], 0, b, Family.BAR, 0, 129))
        if b == 0:
            rows.append((VOCAB.index["TS_4/4"], 0, b, Family.TIME_SIG, 0, 129))
        rows.append((VOCAB.base(Family.CHORD) + int(rng.integers(5)), 0, b, Family.CHORD, 0, 129))
    for t in range(1, n_tracks + 1):
        program = 128 if t == 1 else int(rng.integers(128))
        opener = VOCAB.index["DRUMS"] if program == 128 else VOCAB.index[f"PROGRAM_{program}"]
        rows.append((opener, t, 0, Family.TRACK, 0, program))
        for b in range(n_bars):
            rows.append((VOCAB.index["BAR"], t, b, Family.BAR, 0, program))
            n_notes = 0 if rng.random() < p_empty else int(rng.integers(1, 4))
            for pos in sorted(rng.choice(48, n_notes, replace=False)):
                for family, value in (
                    (Family.POSITION, pos),
                    (Family.PITCH, 60),
                    (Family.VELOCITY, 20),
                ):
                    rows.append((VOCAB.base(family) + value, t, b, family, pos, program))
    rows.append((EOS, n_tracks, n_bars - 1, Family.SPECIAL, 0, program))
    cols = np.array(rows, dtype=np.int64).T
    return Encoding(
        *[c.astype(np.int32) for c in cols],
        n_bars=n_bars,
        n_tracks=n_tracks,
        n_notes=int((cols[3] == Family.PITCH).sum()),
    )


def bar_window(song: Encoding, first: int, stop: int) -> Encoding:
    """Header tokens plus the tokens of bars first..stop-1 of every track."""
    keep = (
        (song.ids == BOS) | (song.type == Family.TRACK) | ((song.bar >= first) & (song.bar < stop))
    )
    return replace(song, **{name: getattr(song, name)[keep] for name in ("ids", *META_FIELDS)})


def real_songs(n_bars: int = 3) -> list[Encoding]:
    """Bar windows of real multitrack songs (fixtures first, then the corpus); skips if none."""
    from meloformer.hid.encode import encode_file

    paths = sorted(FIXTURES.glob("*.mid")) + [CORPUS / p for p in MULTITRACK]
    songs = []
    for path in filter(Path.exists, paths):
        song = encode_file(path)
        if song.n_tracks >= 3:
            songs.append(bar_window(song, 4, 4 + n_bars))
    if len(songs) < 2:
        pytest.skip("needs two real multitrack MIDI files (tests/fixtures or the dev corpus)")
    return songs[:3]


def test_from_encodings_packs_and_pads():
    a, b = synthetic_song(0), synthetic_song(1)
    batch = Batch.from_encodings([[a, b], [a]], length=len(a) + len(b) + 5)
    assert batch.shape == (2, len(a) + len(b) + 5)
    n = len(a) + len(b)
    assert batch.doc[0, : len(a)].eq(0).all() and batch.doc[0, len(a) : n].eq(1).all()
    assert batch.doc[1, len(a) :].eq(PAD_DOC).all() and batch.ids[1, len(a) :].eq(0).all()
    # Targets are the next token inside a song; never across songs or into padding.
    assert batch.targets[0, len(a) - 1] == IGNORE and batch.targets[0, n - 1] == IGNORE
    assert torch.equal(batch.targets[0, : len(a) - 1], batch.ids[0, 1 : len(a)])
    assert batch.lengths.tolist() == [len(a) + len(b), len(a)]
    with pytest.raises(ValueError, match="length"):
        Batch.from_encodings([[a]], length=len(a) - 1)
    with pytest.raises(ValueError, match="bar"):
        Batch.from_encodings([[replace(a, bar=a.bar[:-1])]])


def test_cells_group_tracks_and_bars():
    song = synthetic_song(3, n_tracks=3, n_bars=5)
    batch = Batch.from_encodings([[song]])
    cells = find_cells(batch)
    assert int(cells.valid.sum()) == 4 * 5  # conductor + 3 tracks, every bar (empty ones too)
    header = (song.ids == BOS) | (song.type == Family.TRACK)
    assert cells.header[0].numpy().tolist() == header.tolist()
    for c in range(cells.n_cells):
        tokens = np.flatnonzero(cells.token_cell[0].numpy() == c)
        assert len(set(song.track[tokens])) == 1 and len(set(song.bar[tokens])) == 1
        assert tokens[-1] - tokens[0] + 1 == len(tokens)  # contiguous
    # Empty bars (a lone BAR token) get no summary unless asked for.
    sizes = (cells.last - cells.first + 1)[0]
    assert cells.summarised[0].tolist() == (sizes > 1).tolist()
    assert bool(find_cells(batch, summarize_empty=True).summarised[cells.valid].all())


def test_bar_major_perm_orders_documents_headers_bars():
    a, b = synthetic_song(4), synthetic_song(5, n_tracks=2)
    batch = Batch.from_encodings([[a, b]], length=len(a) + len(b) + 3)
    cells = find_cells(batch)
    perm = bar_major_perm(batch, cells)[0]
    assert sorted(perm.tolist()) == list(range(batch.shape[1]))
    doc, bar, track = batch.doc[0][perm], batch.bar[0][perm], batch.track[0][perm]
    header = cells.header[0][perm]
    real = doc >= 0
    assert (doc[real].diff() >= 0).all() and (~real[: int(real.sum())]).sum() == 0
    for d in range(2):
        rows = (doc == d).nonzero().flatten()
        n_head = int(header[rows].sum())
        assert header[rows[:n_head]].all()  # headers first
        body = rows[n_head:]
        key = bar[body] * 100 + track[body]
        assert (key.diff() >= 0).all()  # then bar-major, tracks in order within a bar


@pytest.mark.parametrize("order", ["bar", "track"])
def test_summary_slot_orders(order):
    """Slots hold every summarised cell once, sorted by (doc, bar, track) or (doc, track, bar);
    padding slots come last."""
    a, b = synthetic_song(7, n_tracks=3, n_bars=4), synthetic_song(8, n_tracks=2, n_bars=3)
    batch = Batch.from_encodings([[a, b], [b]])
    cells = find_cells(batch)
    slot_cell, valid = summary_slots(cells, order)
    for r in range(2):
        n = int(cells.summarised[r].sum())
        assert valid[r, :n].all() and not valid[r, n:].any()
        cell = slot_cell[r, :n]
        assert sorted(cell.tolist()) == cells.summarised[r].nonzero().flatten().tolist()
        doc, track, bar = cells.doc[r, cell], cells.track[r, cell], cells.bar[r, cell]
        minor, major = (track, bar) if order == "bar" else (bar, track)
        key = (doc * 1000 + major) * 1000 + minor
        assert (key.diff() > 0).all()
    with pytest.raises(ValueError, match="order"):
        summary_slots(cells, "hid")


def test_layout_tables():
    song = synthetic_song(6)
    batch = Batch.from_encodings([[song], [song, song]])
    cells = find_cells(batch)
    lay = build_layout(batch, cells, bar_major=True, multiple=128)
    T = batch.shape[1]
    assert lay.length % 128 == 0 and lay.n_regular == T
    kinds = lay.kind[0].tolist()
    assert set(kinds[:T]) <= {BODY, HEADER, PAD} and set(kinds[T:]) <= {SUMMARY, PAD}
    n_summaries = (lay.kind == SUMMARY).sum(1)
    assert n_summaries.tolist() == cells.summarised.sum(1).tolist()
    # A summary's clock is right after its cell's last token; its RoPE coords are that token's.
    b, s = 1, T + 2
    cell = int(lay.cell[b, s])
    assert int(lay.clock[b, s]) == 2 * int(cells.last[b, cell]) + 1
    hid_last = int(cells.last[b, cell])
    row = int((lay.perm[b] == hid_last).nonzero())
    assert torch.equal(lay.coords[b, s], lay.coords[b, row])


def test_real_songs_cells():
    songs = real_songs()
    batch = Batch.from_encodings([songs[:2], songs[2:3] or songs[:1]])
    cells = find_cells(batch)
    for r in range(2):
        real = batch.doc[r] >= 0
        body = real & ~cells.header[r]
        keys = set(
            zip(
                batch.doc[r][body].tolist(),
                batch.track[r][body].tolist(),
                batch.bar[r][body].tolist(),
                strict=True,
            )
        )
        assert int(cells.valid[r].sum()) == len(keys)
