"""Constrained decoding of one sample: the grammar checker, the mode's script and the user's
conditions combined into the mask of tokens that may come next, so every sample decodes."""

from __future__ import annotations

import numpy as np

from meloformer.errors import UserError
from meloformer.generate.budget import growing, need, slack
from meloformer.generate.conditions import Rules
from meloformer.generate.script import Forced, Free, Script
from meloformer.hid import EOS, Family, Vocab
from meloformer.hid import grammar as g
from meloformer.hid.grammar import GrammarState

F = Family


class GenerationError(UserError, RuntimeError):
    """Constrained decoding reached a state with no legal token (the message says where)."""


class Controller:
    """One sample's position in its script and grammar.

    Use: `mask()` before each token, `step(token)` after it (returns the token's metadata),
    until `done`.
    """

    def __init__(self, vocab: Vocab, script: Script, rules: Rules):
        self.vocab, self.script, self.rules = vocab, script, rules
        self.st = GrammarState(vocab)
        self.seg, self.k = 0, 0  # current script segment; tokens already taken from it
        self.length = 0
        r = vocab.ranges
        self._ends = np.zeros(len(vocab), dtype=bool)  # track openers and EOS
        self._ends[r[F.TRACK].start : r[F.TRACK].stop] = True
        self._ends[EOS] = True
        self._fresh = self._ends.copy()  # what a sealed run may start with: a new bar or an end
        self._fresh[r[F.CHORD].start : r[F.CHORD].stop] = True
        self._fresh[vocab.index["BAR"]] = True
        self._next_bar = self._fresh & ~self._ends  # BAR and the CHORD_x that open a bar
        # Inside a fill the bar closes with FILL_END: the model's "bar over" mass (BAR, a
        # track opener, EOS) goes there too (a model trained without fills never wrote one).
        self._fill_closing = self._fresh.copy()
        self._fill_closing[vocab.index["FILL_END"]] = True
        self._placeholder = vocab.index["FILL"]
        self._controls = np.zeros(len(vocab), dtype=bool)
        for fam in (F.DENSITY, F.POLYPHONY):
            self._controls[r[fam].start : r[fam].stop] = True
        self._dur_base = vocab.base(F.DURATION)  # DUR_d has id base + d - 1
        self._track_openers = np.zeros(len(vocab), dtype=bool)
        self._track_openers[r[F.TRACK].start : r[F.TRACK].stop] = True
        self._allowed_openers = np.zeros(len(vocab), dtype=bool)
        self._allowed_openers[list(rules.openers or ())] = True
        self._bar_steps = np.asarray(vocab.bar_steps, dtype=np.int64)
        self._chords = slice(r[F.CHORD].start, r[F.CHORD].stop)
        self._chord_n = vocab.index.get("CHORD_N")  # None in a vocabulary without chords

    @property
    def done(self) -> bool:
        return self.st.done

    def forced(self) -> int | None:
        """The next token if the script fixes it, else None."""
        part = self.script[self.seg] if self.seg < len(self.script) else None
        return part.tokens[self.k] if isinstance(part, Forced) else None

    def forced_run(self) -> int:
        """How many of the next tokens the script fixes (0 when the next one is sampled)."""
        part = self.script[self.seg] if self.seg < len(self.script) else None
        return len(part.tokens) - self.k if isinstance(part, Forced) else 0

    def mask(self) -> np.ndarray:
        """bool[V]: the tokens that may come next (a single one where the script forces it).

        Raises:
            GenerationError: a forced token the grammar refuses, or no legal token left.
        """
        token = self.forced()
        allowed = self.st.allowed()
        if token is not None:
            if not allowed[token]:
                raise GenerationError(
                    f"token {self.length} ({self.vocab.tokens[token]}) of the prompt breaks the "
                    f"grammar; expected {self.st.expected()}"
                )
            out = np.zeros_like(allowed)
            out[token] = True
            return out
        out = self._free_mask(allowed.copy())
        if not out.any():
            raise GenerationError(f"no legal token at {self.length}: {self.st.expected()}")
        return out

    def closing(self, allowed: np.ndarray) -> np.ndarray | None:
        """bool[V]: the tokens whose probability says "this bar ends here", when the bar
        it ends is the last one its track may have; None while another bar may follow.

        In training data the last bar of a track is closed by a track opener or EOS, every
        other bar by BAR (or a CHORD_x that opens the next conductor bar). A model that has
        not pinned down which bar is the last puts its "bar over" mass on BAR; where the
        grammar or the n_bars condition forbids BAR, and where the script keeps only one of
        the openers, masking that mass away leaves only notes. The row then writes notes at
        later and later positions, and at the bar's last position only higher and higher
        pitches (pitches ascend within an onset): the end-of-song burst at pitches 100-127.
        The sampler gives this whole mass to the closing tokens still allowed instead
        (sampling.pool_closing).
        """
        if self.st.in_fill:
            # Right after FILL_START (and its controls) nothing is pooled: the bar mass there
            # is the model's "empty bar" prior, and moving it onto FILL_END closed ~17 % of
            # filled bars empty (3.7 % of real ones). Once a note is written it applies.
            fresh = self.st.state in (g.F_OPEN, g.T_DENS, g.T_POLY)
            return None if fresh else self._fill_closing
        if allowed[self._next_bar].any() or not allowed[self._ends].any():
            return None
        return self._fresh

    def step(self, token: int) -> tuple[int, int, int, int, int]:
        """Append a token; return its (track, bar, type, pos, program)."""
        meta = self.st.step(token)
        self.length += 1
        part = self.script[self.seg] if self.seg < len(self.script) else None
        if isinstance(part, Forced):
            self.k += 1
        elif isinstance(part, Free):
            self.k += 1
            if part.end is not None and token == part.end:  # the next Forced run begins
                self.seg, self.k = self.seg + 1, 1
        if isinstance(part, Forced | Free) and self._spent():
            self.seg, self.k = self.seg + 1, 0
        return meta

    def _spent(self) -> bool:
        part = self.script[self.seg]
        return isinstance(part, Forced) and self.k >= len(part.tokens)

    # -- the free mask --------------------------------------------------------------------------
    def _free_mask(self, m: np.ndarray) -> np.ndarray:
        part = self.script[self.seg]
        assert isinstance(part, Free)
        m[self._placeholder] = False  # placeholders come from the prompt (infill), never sampled
        control = self._control_next()
        if control is not None and m[control]:  # a requested control: written right here
            out = np.zeros_like(m)
            out[control] = True
            return out
        m[self._controls] = False  # controls are written only where asked for
        keep = m[part.end] if part.end is not None else False
        if self.rules.openers is not None:  # no new track of a program the data never had
            m &= ~self._track_openers | self._allowed_openers
        if part.end is not None:  # the run may only close with its end token (a given track)
            m[self._ends] = False
            m[part.end] = keep
        if part.sealed and self.k == 0:  # keep the forced bar as given
            m &= self._fresh
        if self.st.track == 0:
            self._conductor_rules(m)
            if part.chorded:
                self._chorded(m)
        elif self.st.state == g.T_PITCH:
            self._end_by_song_end(m)
        out = self._budget(m, part)
        if out is m and self._opening_bar(part):  # only while max_tokens leaves room for it
            self._sounding(out)
        if part.resting and self._resting_bar(part):
            self._rest(out)
        return out

    def _opening_bar(self, part: Free) -> bool:
        """At the opener of the first bar of a track the run writes whole, in a run whose
        tracks must sound from their first bar (Free.sounding: from scratch)."""
        st = self.st
        return (part.sounding and not part.track_bars and st.bar == 0
                and st.state in (g.T_BAR, g.T_DENS, g.T_POLY))

    def _chorded(self, m: np.ndarray) -> None:
        """A conductor bar opens with a chord, not CHORD_N (Free.chorded), where another
        chord may open it (in place)."""
        n = self._chord_n
        if n is not None and m[n] and m[self._chords].sum() > 1:
            m[n] = False

    def _resting_bar(self, part: Free) -> bool:
        """At the opener of a bar the run writes of a resting track (Free.resting), where no
        control was asked for."""
        st = self.st
        return (st.bar >= (part.track_bars or 0) and st.state in (g.T_BAR, g.T_DENS, g.T_POLY)
                and (st.track, st.bar) not in self.rules.controls)

    def _rest(self, m: np.ndarray) -> None:
        """The bar closes empty: only a bar line or the track's end may follow (in place)."""
        closing = m & self._fresh
        if closing.any():
            m &= closing

    def _sounding(self, m: np.ndarray) -> None:
        """A sampled track opens with a note: its first bar may not close empty.

        Why: from the data's piano defaults the shipped model opened 7 of 16 songs with a
        silent first bar in both hands, and a silent bar followed a silent bar to the end (16
        empty bars, no note; bench/reference.py). Only from scratch: a track added under a
        given song may well enter later, as bass lines do."""
        closing = m.copy()
        closing[self.vocab.index["BAR"]] = False
        closing[self._ends] = False
        closing[self.vocab.index["FILL"]] = False
        if closing.any():
            m &= closing

    def _control_next(self) -> int | None:
        """The requested control token due now: right after the bar's opener (BAR, or
        FILL_START in a fill) the first one asked for that bar, after DENSITY the POLYPHONY."""
        st = self.st
        if st.state not in (g.T_BAR, g.F_OPEN, g.T_DENS):
            return None
        wanted = self.rules.controls.get((st.track, st.bar), ())
        written = st.controls.get((st.track, st.bar), {})
        for tok in wanted:
            fam = Family(int(self.vocab.family_of[tok])).name.lower()
            if fam not in written:
                return tok
        return None

    def _controls_due(self) -> int:
        """Requested control tokens not written yet: the budget keeps room for them, since
        each is forced after its bar's opener whatever the budget says."""
        written = self.st.controls
        return sum(len(tokens) - len(written.get(cell, {}))
                   for cell, tokens in self.rules.controls.items())

    def _end_by_song_end(self, m: np.ndarray) -> None:
        """A note's duration may not run past the end of the song's last bar (the bar count
        is fixed once a track is open), so no sampled note sounds after the song ends."""
        st = self.st
        lens = self._bar_steps[np.asarray(st.ts[: st.n_bars], dtype=np.int64)]
        left = int(lens[st.bar:].sum()) - st.pos  # grid steps from this onset to the end
        stop = self._dur_base + max(left, 1)  # DUR_1 stays: a note needs a duration
        m[stop : self.vocab.ranges[F.DURATION].stop] = False

    def _conductor_rules(self, m: np.ndarray) -> None:
        st, rules, r = self.st, self.rules, self.vocab.ranges
        openers = np.zeros_like(m)
        openers[r[F.CHORD].start : r[F.CHORD].stop] = True
        openers[self.vocab.index["BAR"]] = True
        if rules.n_bars is not None:
            if st.n_bars >= rules.n_bars:
                m[openers] = False
            else:
                m[r[F.TRACK].start : r[F.TRACK].stop] = False
        if rules.chords is not None and m[r[F.CHORD].start]:
            chord = rules.chords[st.n_bars % len(rules.chords)]
            m[r[F.CHORD].start : r[F.CHORD].stop] = False
            m[chord] = True
        for fam, token in ((F.TIME_SIG, rules.ts), (F.TEMPO, rules.tempo)):
            if token is not None:
                keep = m[token]
                m[r[fam].start : r[fam].stop] = False
                m[token] = keep
        if rules.tempo is not None and st.tempos:  # no tempo change: no conductor POS
            m[r[F.POSITION].start : r[F.POSITION].stop] = False

    def _budget(self, m: np.ndarray, part: Free) -> np.ndarray:
        """Refuse growing tokens once the song must close to fit max_tokens (`m` itself is
        returned while there is room)."""
        rules, st = self.rules, self.st
        left = need(st, self.script, self.seg, self.k, rules.n_bars) + self._controls_due()
        tracks = sum(isinstance(p, Free) for p in self.script[self.seg :]) + 1
        if self.length + left + slack(st, rules.n_bars, tracks) < rules.max_tokens:
            return m
        if self.length + left > rules.max_tokens:
            raise GenerationError(
                f"max_tokens {rules.max_tokens} is too small: {self.length} written, "
                f"at least {left} more needed"
            )
        grow = growing(st, self.vocab, rules.n_bars is not None, part.end is None)
        closing = m & ~grow
        return closing if closing.any() else m
