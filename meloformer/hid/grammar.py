"""The HID grammar as an incremental checker: one token at a time -> its metadata, or GrammarError.

    song      := BOS conductor track+ EOS
    conductor := cbar{n_bars}              (n_bars >= 1, fixed by the conductor)
    cbar      := (CHORD | BAR) [TS] (POS TEMPO)*
                 the bar opens with its CHORD label when chords are on, else with BAR;
                 TS required in bar 0, elsewhere only when it changes;
                 bar 0 goes on with POS_0 TEMPO; a TEMPO differs from the one in force
    track     := (DRUMS | PROGRAM_k) tbar{n_bars}     tracks in non-decreasing (rank, program)
    tbar      := BAR [DENSITY] [POLYPHONY] (POS note+)* | FILL
    note      := [VEL] PITCH DUR (melodic) | [VEL] PITCH (drums)
    fills     := (FILL_START [DENSITY] [POLYPHONY] (POS note+)* FILL_END){FILL placeholders}
Infilling (docs/hid.md "Infilling"): `song := BOS conductor track+ fills EOS`. A FILL opens a
bar whose content comes later: after the last track, one fill per placeholder, in placeholder
order (track, then bar); each fill's tokens carry the placeholder's (track, bar) and follow the
bar's rules (positions below its length, a VEL before its first note).
POS values rise strictly within a bar and stay below the bar's length; PITCH values rise strictly
within an onset. VEL sets the velocity bin of the notes after it until the next VEL; it is written
exactly where the bin changes, and every bar's first note has one (nothing carries across bars).
The decoder runs every sequence through this; constrained sampling asks
`allowed()` before each step, so everything it writes decodes.
"""

from __future__ import annotations

import numpy as np

from meloformer.hid.errors import GrammarError
from meloformer.hid.score import track_sort_key
from meloformer.hid.vocab import BOS, DRUM_PROGRAM, EOS, FILL_TOKENS, GLOBAL_PROGRAM, Family, Vocab

F = Family
_MASK_CACHE: dict[str, dict[tuple, np.ndarray]] = {}  # per vocabulary: state key -> mask
# Parser states: what was just read.
START, AFTER_BOS, C_BAR, C_TS, C_POS, C_TEMPO = range(6)
T_OPEN, T_BAR, T_POS, T_VEL, T_PITCH, T_NOTE, DONE = range(6, 13)
T_FILL, F_OPEN, F_END = range(13, 16)  # after a FILL placeholder, a FILL_START, a FILL_END
T_DENS, T_POLY = range(16, 18)  # after a DENSITY / POLYPHONY control (hid/controls.py)


class GrammarState:
    """Reads a token sequence left to right, checking it and recording what it says.

    `step(id)` returns the token's metadata (track, bar, type, pos, program) — the same values
    the encoder writes — and records bars, tempos and notes for `meloformer.hid.decode`.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab, self.cfg = vocab, vocab.config
        self.fam, self.val = vocab.family_of, vocab.value_of
        self._cache = _MASK_CACHE.setdefault(vocab.hash + str(vocab.config), {})
        self.state, self.index = START, 0
        self.track, self.bar, self.pos, self.program = 0, 0, 0, GLOBAL_PROGRAM
        self.n_bars = 0  # conductor bars so far (fixed once the first track opens)
        self.ts: list[int] = []
        self.chords: list[int] = []
        self.tempos: list[tuple[int, int, int]] = []
        self.programs: list[int] = []
        self.notes: list[
            tuple[int, int, int, int, int, int]
        ] = []  # track, bar, pos, pitch, dur, vel
        self._pitch = -1  # last pitch at the current onset
        self._vel = -1  # velocity bin in force in this bar (-1: none yet)
        self.holes: list[tuple[int, int]] = []  # (track, bar) of each FILL placeholder, in order
        self.filled = 0  # fills written (FILL_END read)
        self.in_fill = False  # between a FILL_START and its FILL_END
        self._fill = {name: vocab.index[name] for name in FILL_TOKENS}
        self.controls: dict[tuple[int, int], dict[str, int]] = {}  # (track, bar) -> bins

    @property
    def done(self) -> bool:
        return self.state == DONE

    # -- stepping ------------------------------------------------------------------------------
    def step(self, tok: int) -> tuple[int, int, int, int, int]:
        """Consume one token id; return its (track, bar, type, pos, program)."""
        tok = int(tok)
        if not 0 <= tok < len(self.fam):
            self._fail(f"id {tok}", "an id inside the vocabulary")
        fam, val = Family(int(self.fam[tok])), int(self.val[tok])
        if not self.allowed()[tok]:
            why = ""
            if fam in self.expected_families():
                why = "value not allowed here (position past the bar, pitch not rising, repeat)"
            self._fail(self.vocab.tokens[tok], why)
        self._apply(tok, fam, val)
        self.index += 1
        return (self.track, self.bar, int(fam), self.pos, self.program)

    def _fail(self, got: str, detail: str) -> None:
        raise GrammarError(self.index, got, self.expected(), detail)

    def expected(self) -> list[str]:
        return [f.name for f in self.expected_families()] or ["nothing (sequence ended)"]

    def expected_families(self) -> list[Family]:
        mask = self.allowed()
        return sorted({Family(int(f)) for f in self.fam[mask]})

    # -- what may come next ----------------------------------------------------------------------
    def _mask_key(self) -> tuple:
        """Everything `allowed()` depends on; equal keys give equal masks."""
        in_bar = self.ts and self.bar < len(self.ts)
        return (
            self.state,
            self.track == 0,
            self.bar > 0,
            self.bar + 1 < self.n_bars,
            self.ts[self.bar] if in_bar else -1,
            self.ts[self.bar - 1] if in_bar and self.bar else -1,
            self.pos,
            self._pitch,
            self._vel,
            self.program,
            self.tempos[-1][2] if self.tempos else -1,
            self.n_bars < self.cfg.max_bars,
            len(self.programs) < self.cfg.max_tracks,
            self.in_fill,
            len(self.holes) > self.filled,
        )

    def allowed(self) -> np.ndarray:
        """Boolean mask [V] of the tokens that may come next (read-only; cached by state)."""
        key = self._mask_key()
        mask = self._cache.get(key)
        if mask is None:
            if len(self._cache) > 50_000:
                self._cache.clear()
            mask = self._cache[key] = self._compute_allowed()
            mask.flags.writeable = False
        return mask

    def _compute_allowed(self) -> np.ndarray:
        v, r = self.vocab, self.vocab.ranges
        mask = np.zeros(len(v), dtype=bool)
        s = self.state
        if s == START:
            mask[BOS] = True
        elif s in (AFTER_BOS, C_TEMPO):
            self._conductor_next(mask, r)
        elif s == C_BAR:
            mask[r[F.TIME_SIG].start : r[F.TIME_SIG].stop] = True
            if self.bar > 0:  # a TS only where it changes; else go on as after a TS
                mask[v.base(F.TIME_SIG) + self.ts[self.bar - 1]] = False
                self._conductor_next(mask, r)
        elif s == C_TS:
            if self.bar == 0:  # the song's first tempo sits at bar 0, position 0
                mask[v.base(F.POSITION)] = True
            else:
                self._conductor_next(mask, r)
        elif s == C_POS:
            mask[r[F.TEMPO].start : r[F.TEMPO].stop] = True
            if self.tempos:
                mask[v.base(F.TEMPO) + self.tempos[-1][2]] = False
        elif s in (T_OPEN, T_BAR, T_NOTE, T_FILL, F_OPEN, F_END, T_DENS, T_POLY) or s == DONE:
            self._track_next(mask, r)
        elif s == T_POS:
            self._note_start(mask, r)
        elif s == T_VEL:
            mask[v.base(F.PITCH) + self._pitch + 1 : r[F.PITCH].stop] = True
        elif s == T_PITCH:  # melodic: the duration
            mask[r[F.DURATION].start : r[F.DURATION].stop] = True
        return mask

    def _bar_len(self) -> int:
        return int(self.vocab.bar_steps[self.ts[self.bar]])

    def _conductor_next(self, mask: np.ndarray, r) -> None:
        """After a complete conductor element: a tempo POS, the next bar, or the first track."""
        in_bar = self.state != AFTER_BOS
        if in_bar:
            lo = self.pos + 1 if self.state == C_TEMPO else 0
            mask[
                self.vocab.base(F.POSITION) + lo : self.vocab.base(F.POSITION) + self._bar_len()
            ] = True
        if self.n_bars < self.cfg.max_bars:  # the next conductor bar
            if self.cfg.chords:
                mask[r[F.CHORD].start : r[F.CHORD].stop] = True
            else:
                mask[self.vocab.index["BAR"]] = True
        if in_bar:
            mask[r[F.TRACK].start : r[F.TRACK].stop] = True

    def _note_start(self, mask: np.ndarray, r) -> None:
        """A note may open with a VEL (a new bin) or, once a bin is in force, with its PITCH."""
        mask[r[F.VELOCITY].start : r[F.VELOCITY].stop] = True
        if self._vel >= 0:
            mask[self.vocab.base(F.VELOCITY) + self._vel] = False
            mask[self.vocab.base(F.PITCH) + self._pitch + 1 : r[F.PITCH].stop] = True

    def _track_next(self, mask: np.ndarray, r) -> None:
        """Inside or between tracks: a note, a POS, the next BAR, the next track, or EOS."""
        s = self.state
        if s == DONE:
            return
        if s == T_NOTE and self._pitch < 127:
            self._note_start(mask, r)
        if s in (T_BAR, T_NOTE, F_OPEN, T_DENS, T_POLY):
            lo = self.pos + 1 if s == T_NOTE else 0
            mask[
                self.vocab.base(F.POSITION) + lo : self.vocab.base(F.POSITION) + self._bar_len()
            ] = True
        if s in (T_BAR, F_OPEN):  # optional controls, right after the bar's opener
            mask[r[F.DENSITY].start : r[F.DENSITY].stop] = True
        if s in (T_BAR, F_OPEN, T_DENS):
            mask[r[F.POLYPHONY].start : r[F.POLYPHONY].stop] = True
        if self.in_fill:  # a fill's bar closes with FILL_END
            mask[self._fill["FILL_END"]] = True
            return
        if s == F_END:
            self._after_tracks(mask)
            return
        bars_done = self.bar + 1 if s != T_OPEN else 0
        if bars_done < self.n_bars:
            mask[self.vocab.index["BAR"]] = True
            mask[self._fill["FILL"]] = True
        elif s != T_OPEN:
            self._after_tracks(mask)
            if len(self.programs) < self.cfg.max_tracks:
                key = track_sort_key(self.program)
                ok = [track_sort_key(int(self.val[t])) >= key for t in r[F.TRACK]]
                mask[r[F.TRACK].start : r[F.TRACK].stop] = ok

    def _after_tracks(self, mask: np.ndarray) -> None:
        """The song's end: the next fill while placeholders wait for one, else EOS."""
        if len(self.holes) > self.filled:
            mask[self._fill["FILL_START"]] = True
        else:
            mask[EOS] = True

    # -- recording -------------------------------------------------------------------------------
    def _apply(self, tok: int, fam: Family, val: int) -> None:
        s = self.state
        if tok == BOS:
            self.state = AFTER_BOS
        elif tok == EOS:
            self.state, self.pos = DONE, 0
        elif fam == F.BAR:
            self._open_bar(s)
        elif fam == F.TIME_SIG:
            self.ts[self.bar] = val
            self.state = C_TS
        elif fam == F.CHORD:
            self.chords.append(val)
            self._open_bar(s)
        elif fam == F.TEMPO:
            self.tempos.append((self.bar, self.pos, val))
            self.state = C_TEMPO
        elif fam == F.TRACK:
            self.programs.append(val)
            self.track, self.bar, self.pos, self.program = len(self.programs), 0, 0, val
            self.state = T_OPEN
        elif fam == F.POSITION:
            self.pos, self._pitch = val, -1
            self.state = C_POS if self.track == 0 else T_POS
        elif fam == F.VELOCITY:
            self._vel = val
            self.state = T_VEL
        elif fam == F.PITCH:
            self._pitch = val
            if self.program == DRUM_PROGRAM:
                self.notes.append((self.track - 1, self.bar, self.pos, val, 0, self._vel))
                self.state = T_NOTE
            else:
                self.state = T_PITCH
        elif fam == F.DURATION:
            self.notes.append((self.track - 1, self.bar, self.pos, self._pitch, val, self._vel))
            self.state = T_NOTE
        elif fam in (F.FILL, F.FILL_MARK):
            self._apply_fill(tok)
        elif fam in (F.DENSITY, F.POLYPHONY):
            cell = self.controls.setdefault((self.track, self.bar), {})
            cell[fam.name.lower()] = val
            self.state = T_DENS if fam == F.DENSITY else T_POLY

    def _apply_fill(self, tok: int) -> None:
        """FILL: a placeholder bar; FILL_START: enter the next placeholder's bar; FILL_END."""
        if tok == self._fill["FILL"]:
            self._open_bar(self.state)
            self.holes.append((self.track, self.bar))
            self.state = T_FILL
        elif tok == self._fill["FILL_START"]:
            self.track, self.bar = self.holes[self.filled]
            self.program = self.programs[self.track - 1]
            self.pos, self._pitch, self._vel = 0, -1, -1
            self.in_fill, self.state = True, F_OPEN
        else:
            self.pos, self.filled = 0, self.filled + 1
            self.in_fill, self.state = False, F_END

    def _open_bar(self, s: int) -> None:
        self.pos = 0
        if self.track == 0:  # conductor: a new bar; its TS is the previous one unless changed
            self.bar = self.n_bars
            self.n_bars += 1
            self.ts.append(self.ts[-1] if self.ts else 0)  # in force unless a TS follows
            self.state = C_BAR
        else:
            self.bar = 0 if s == T_OPEN else self.bar + 1
            self._vel = -1
            self.state = T_BAR
