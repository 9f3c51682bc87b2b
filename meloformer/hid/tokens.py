"""Score -> HID tokens and per-token metadata (the encoder's last step), vectorised with numpy.

Each instrument-track token gets a sort key (track, bar, slot, rank) that places it exactly where
the grammar wants it; one argsort lays out every track at once, so the cost is O(tokens log tokens)
in numpy rather than a Python loop per note.
"""

from __future__ import annotations

import numpy as np

from meloformer.hid.score import Score
from meloformer.hid.song import Encoding
from meloformer.hid.vocab import BOS, DRUM_PROGRAM, EOS, GLOBAL_PROGRAM, Family, Vocab


def encode_score(score: Score, vocab: Vocab) -> Encoding:
    """Lay a Score out as BOS, conductor, instrument tracks, EOS (see docs/hid.md)."""
    head = _conductor(score, vocab)
    body = _tracks(score, vocab)
    last_track, last_bar = len(score.programs), score.n_bars - 1
    bos = (BOS, 0, 0, Family.SPECIAL, 0, GLOBAL_PROGRAM)
    eos = (EOS, last_track, last_bar, Family.SPECIAL, 0, score.programs[-1])
    rows = zip(bos, head, body, eos, strict=True)
    cols = [np.concatenate([[b], h, t, [e]]) for b, h, t, e in rows]
    ids, track, bar, typ, pos, program = cols
    return Encoding(
        ids=ids.astype(np.int32),
        track=track.astype(np.int16),
        bar=bar.astype(np.int16),
        type=typ.astype(np.int8),
        pos=pos.astype(np.int16),
        program=program.astype(np.int16),
        n_bars=score.n_bars,
        n_tracks=len(score.programs),
        n_notes=score.n_notes,
    )


def _conductor(score: Score, vocab: Vocab) -> list[np.ndarray]:
    """Conductor bars: (CHORD | BAR) [TS] (POS TEMPO)*; columns ids, track, bar, type, pos, prog.

    With chords on, each conductor bar opens with its chord label instead of a BAR token: the label
    marks the bar line, so chords cost no extra token.
    """
    ts0, pos0, tempo0 = (
        vocab.base(Family.TIME_SIG),
        vocab.base(Family.POSITION),
        vocab.base(Family.TEMPO),
    )
    rows: list[tuple[int, int, int, int]] = []  # (id, bar, type, pos)
    tempos = iter(score.tempos)
    nxt = next(tempos, None)
    for b in range(score.n_bars):
        if score.chords is None:
            rows.append((vocab.index["BAR"], b, Family.BAR, 0))
        else:
            rows.append((vocab.base(Family.CHORD) + int(score.chords[b]), b, Family.CHORD, 0))
        if b == 0 or score.ts[b] != score.ts[b - 1]:
            rows.append((ts0 + int(score.ts[b]), b, Family.TIME_SIG, 0))
        while nxt is not None and nxt[0] == b:
            rows.append((pos0 + nxt[1], b, Family.POSITION, nxt[1]))
            rows.append((tempo0 + nxt[2], b, Family.TEMPO, nxt[1]))
            nxt = next(tempos, None)
    arr = np.array(rows, dtype=np.int64)
    zeros = np.zeros(len(arr), dtype=np.int64)
    return [arr[:, 0], zeros, arr[:, 1], arr[:, 2], arr[:, 3], zeros + GLOBAL_PROGRAM]


def _tracks(score: Score, vocab: Vocab) -> list[np.ndarray]:
    """Every instrument track at once; columns ids, track, bar, type, pos, program."""
    n_tracks, n_bars = len(score.programs), score.n_bars
    programs = np.array(score.programs, dtype=np.int64)
    slots = vocab.config.max_positions + 2  # slot 0 track opener, 1 BAR, 2+p onset at p

    def key(t, b, slot, rank):
        return ((t * n_bars + b) * slots + slot) * 1024 + rank

    t_all = np.repeat(np.arange(n_tracks), n_bars)
    b_all = np.tile(np.arange(n_bars), n_tracks)
    opener = np.where(
        programs == DRUM_PROGRAM, vocab.index["DRUMS"], vocab.base(Family.TRACK) + 1 + programs
    )
    t, b, p = score.track.astype(np.int64), score.bar.astype(np.int64), score.pos.astype(np.int64)
    onset = np.unique(key(t, b, p + 2, 0))
    o_t, rest = np.divmod(onset // 1024, n_bars * slots)
    o_b, o_slot = np.divmod(rest, slots)
    melodic = score.dur > 0
    # VEL comes before a note only where the bin changes inside its (track, bar): the velocity in
    # force is always written inside the note's own bar, which the note attends to token by token.
    cell = t * n_bars + b
    vel_new = np.r_[True, (cell[1:] != cell[:-1]) | (score.vel[1:] != score.vel[:-1])]
    rank = (score.pitch.astype(np.int64) + 1) * 4  # VEL, PITCH, DUR of one note: rank +0, +1, +2
    parts = [  # (keys, ids, track, bar, type, pos)
        (key(np.arange(n_tracks), 0, 0, 0), opener, np.arange(n_tracks), 0, Family.TRACK, 0),
        (key(t_all, b_all, 1, 0), vocab.index["BAR"], t_all, b_all, Family.BAR, 0),
        (onset, vocab.base(Family.POSITION) + o_slot - 2, o_t, o_b, Family.POSITION, o_slot - 2),
        (
            key(t, b, p + 2, rank)[vel_new],
            vocab.base(Family.VELOCITY) + score.vel[vel_new],
            t[vel_new],
            b[vel_new],
            Family.VELOCITY,
            p[vel_new],
        ),
        (
            key(t, b, p + 2, rank + 1),
            vocab.base(Family.PITCH) + score.pitch,
            t,
            b,
            Family.PITCH,
            p,
        ),
        (
            key(t, b, p + 2, rank + 2)[melodic],
            vocab.base(Family.DURATION) - 1 + score.dur[melodic],
            t[melodic],
            b[melodic],
            Family.DURATION,
            p[melodic],
        ),
    ]
    n = [len(k) for k, *_ in parts]
    cols = [
        np.concatenate(
            [np.broadcast_to(np.asarray(part[i]), (m,)) for part, m in zip(parts, n, strict=True)]
        )
        for i in range(6)
    ]
    order = np.argsort(cols[0], kind="stable")
    keys, ids, track, bar, typ, pos = (c[order] for c in cols)
    return [ids, track + 1, bar, typ, pos, programs[track]]
