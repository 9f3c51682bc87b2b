"""The token budget: how many tokens a partly written song still needs at least, and which
next tokens would grow it. A row closes its song in time for `max_tokens` by refusing growing
tokens once `length + need + slack` reaches the cap (slack bounds what one token can add)."""

from __future__ import annotations

import numpy as np

from meloformer.generate.script import Forced, Script
from meloformer.hid import DRUM_PROGRAM, EOS, Family, Vocab
from meloformer.hid import grammar as g
from meloformer.hid.grammar import GrammarState

F = Family


def final_bars(st: GrammarState, n_bars: int | None) -> int:
    """The song's bar count: fixed once a track is open, else the condition or the bars so far."""
    if st.track > 0:
        return st.n_bars
    return max(st.n_bars, n_bars or 0, 1)


def element_rest(st: GrammarState) -> int:
    """At most how many tokens finish the element being written (a note, bar 0's header)."""
    drums = st.program == DRUM_PROGRAM
    rest = {
        g.START: 5, g.AFTER_BOS: 4, g.C_POS: 1,
        g.T_POS: 2 if drums else 3, g.T_VEL: 1 if drums else 2, g.T_PITCH: 1,
    }
    if st.bar == 0 and st.track == 0:  # bar 0 must hold TS, POS_0, TEMPO
        rest.update({g.C_BAR: 3, g.C_TS: 2})
    return rest.get(st.state, 0)


def need(st: GrammarState, script: Script, seg: int, k: int, n_bars: int | None) -> int:
    """Fewest tokens (an upper bound on the closing path) that finish the song from here.

    Args:
        st: the row's grammar state; script, seg, k: where the row is in its script.
        n_bars: the n_bars condition (None: free).
    """
    if st.done:
        return 0
    n = final_bars(st, n_bars)
    total = element_rest(st)
    # Infilling: FILL_END closes the fill being written, and each placeholder not reached
    # yet takes a FILL_START and a FILL_END (docs/hid.md "Infilling").
    total += 2 * (len(st.holes) - st.filled) - int(st.in_fill)
    if st.track == 0:
        total += n - max(st.n_bars, 1)  # conductor bars still to open
    elif st.in_fill or st.state == g.F_END:
        pass  # every track is written: only fills and EOS are left
    else:
        total += n if st.state == g.T_OPEN else n - 1 - st.bar  # BARs left in this track
    for i in range(seg, len(script)):
        part = script[i]
        if isinstance(part, Forced):
            total += len(part.tokens) - (k if i == seg else 0)
        elif i > seg and part.track_bars is not None:
            total += n - part.track_bars  # a later free run of a track: its empty bars
        elif part.end is None:  # open end: a first track if none yet, then EOS
            total += (0 if st.programs else 1 + n) + 1
    return total


def slack(st: GrammarState, n_bars: int | None, tracks_left: int) -> int:
    """The most one growing token can add to length + need: a note (4), a conductor bar
    (itself + one BAR per track), or a new track (its opener + its BARs)."""
    n = final_bars(st, n_bars)
    return max(4, 2 + tracks_left, 1 + n)


def growing(st: GrammarState, vocab: Vocab, fixed_bars: bool, open_end: bool) -> np.ndarray:
    """bool[V]: tokens that would make the song longer than its closing path."""
    r, grow = vocab.ranges, np.zeros(len(vocab), dtype=bool)
    if st.track == 0:
        grow[r[F.POSITION].start : r[F.POSITION].stop] = st.bar > 0 or bool(st.tempos)
        grow[r[F.TIME_SIG].start : r[F.TIME_SIG].stop] = st.bar > 0
        if not fixed_bars and st.n_bars >= 1:
            grow[r[F.CHORD].start : r[F.CHORD].stop] = True
            grow[vocab.index["BAR"]] = True
    else:
        for fam in (F.POSITION, F.VELOCITY, F.PITCH):
            grow[r[fam].start : r[fam].stop] = st.state in (g.T_BAR, g.T_NOTE, g.F_OPEN,
                                                            g.T_DENS, g.T_POLY)
        if open_end and st.programs:
            grow[r[F.TRACK].start : r[F.TRACK].stop] = True
    grow[EOS] = False
    return grow
