"""Scripts: a generation mode as a sequence of forced token runs and free (sampled) runs.

Every mode is prefix forcing on the grammar. `Forced(tokens)` is written as given; `Free(end)`
is sampled under the grammar until the model writes `end`, the only track opener or EOS the
run may close with, which is the first token of the next Forced run (None: the grammar alone
decides, e.g. any further track or EOS). `sealed` forbids a free run from adding to the bar it
starts in, so a forced prompt stays exactly as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from meloformer.errors import UserError
from meloformer.hid import (
    BOS,
    DRUM_PROGRAM,
    EOS,
    Encoding,
    Family,
    Span,
    Vocab,
    infill_layout,
    track_sort_key,
)


@dataclass(frozen=True)
class Forced:
    """Tokens written as given."""

    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Free:
    """Sampled tokens, ending with `end` (a track opener or EOS), or where the grammar ends."""

    end: int | None
    sealed: bool = False
    track_bars: int | None = None
    """The run continues the track opened just before it, whose first `track_bars` bars the
    Forced run wrote; None: the run writes the conductor or whole tracks."""
    sounding: bool = False
    """Every track this run writes from its first bar plays in that bar (from scratch: a
    song whose first bar is silent in every track went on silent, Controller._sounding)."""
    chorded: bool = False
    """The conductor bars this run writes carry a chord, never CHORD_N (from scratch with a
    melodic track: Controller._chorded)."""
    resting: bool = False
    """The track stays silent in the bars this run writes (a continued track that rests
    through the prompt's last RESTING_TAIL bars: Controller._rest), except in bars given a
    control."""


Segment = Forced | Free
Script = tuple[Segment, ...]


class ModeError(UserError, ValueError):
    """A mode's inputs do not fit together (unknown program, too few bars...)."""


def opener(vocab: Vocab, program: int) -> int:
    """The id of the token that opens a track of `program` (128 = drums)."""
    if not 0 <= program <= DRUM_PROGRAM:
        raise ModeError(f"program {program} outside 0..128 (128 = drums)")
    return vocab.index["DRUMS"] if program == DRUM_PROGRAM else vocab.index[f"PROGRAM_{program}"]


def from_scratch(vocab: Vocab, instruments: Sequence[int] | None = None) -> Script:
    """BOS, then everything sampled; with `instruments`, exactly those tracks (canonical order).

    The conductor comes first in HID, before the model knows the instruments: with a melodic
    instrument asked for, its bars carry chords (Free.chorded), since a conductor of CHORD_N
    bars is a drum groove's, and piano written over one came out as off-grid runs of 13-18
    notes per beat (5 of 16 shipped-model samples; docs/generation.md).

    Args:
        instruments: programs (0..127, 128 drums); None lets the model choose.
    """
    if not instruments:
        return (Forced((BOS,)), Free(None, sounding=True))
    melodic = any(p != DRUM_PROGRAM for p in instruments)
    script: list[Segment] = [Forced((BOS,))]
    for program in sorted(instruments, key=track_sort_key):
        token = opener(vocab, program)
        conductor = len(script) == 1
        script += [Free(token, track_bars=None if conductor else 0, sounding=True,
                        chorded=conductor and melodic),
                   Forced((token,))]
    return (*script, Free(EOS, track_bars=0, sounding=True), Forced((EOS,)))


RESTING_TAIL = 4
"""A continued track with no note in the prompt's last this many bars stays silent."""


def resting_tracks(prompt: Encoding, bars: int, tail: int = RESTING_TAIL) -> set[int]:
    """The instrument tracks (0-based, canonical order) with no note in bars
    [bars - tail, bars) of the prompt."""
    recent = (prompt.type == Family.PITCH) & (prompt.bar >= bars - tail) & (prompt.bar < bars)
    playing = set((prompt.track[recent].astype(int) - 1).tolist())
    return set(range(prompt.n_tracks)) - playing


def continuation(
    prompt: Encoding, prompt_bars: int | None = None, new_tracks: bool = False,
    bring_in: Sequence[int] | None = None,
) -> Script:
    """Continue a prompt in time: its first `prompt_bars` bars of the conductor and of every
    track are kept; the model writes the later bars of each (and new tracks if asked).

    The prompt's instrumentation is kept: a track silent through the prompt's last
    RESTING_TAIL bars stays silent (the model alone brought such a track in for 56 % of the
    new bars, real songs 25 %: docs/generation.md), unless `bring_in` names it (0-based
    instrument tracks) or a control is asked for its bar. Where every track is silent there,
    none is held back.

    Raises:
        ModeError: prompt_bars outside 1..prompt.n_bars, or bring_in naming no track.
    """
    bars = prompt.n_bars if prompt_bars is None else prompt_bars
    if not 1 <= bars <= prompt.n_bars:
        raise ModeError(f"prompt_bars {bars} outside 1..{prompt.n_bars} (the prompt's bars)")
    wake = set(bring_in or ())
    if wake - set(range(prompt.n_tracks)):
        raise ModeError(f"bring_in {sorted(wake)}: the prompt has instrument tracks "
                        f"0..{prompt.n_tracks - 1}")
    resting = resting_tracks(prompt, bars, RESTING_TAIL)
    if len(resting) == prompt.n_tracks:  # a silent intro says nothing of the instrumentation
        resting = set()
    resting -= wake
    keep = (prompt.bar < bars) & (prompt.ids != EOS)
    runs = [prompt.ids[keep & (prompt.track == t)] for t in range(prompt.n_tracks + 1)]
    script: list[Segment] = []
    for t, run in enumerate(runs):
        end = int(runs[t + 1][0]) if t + 1 < len(runs) else (None if new_tracks else EOS)
        script += [Forced(tuple(int(i) for i in run)),
                   Free(end, True, bars if t else None, resting=t - 1 in resting)]
    return tuple(script) if new_tracks else (*script, Forced((EOS,)))


def infill(vocab: Vocab, given: Encoding, spans: Sequence[Span]) -> Script:
    """Rewrite the spans' bars of the given song, everything else kept token for token.

    The song is laid out for infilling (docs/hid.md "Infilling"): the spans' bars become
    FILL placeholders in place, and the prompt is the whole song up to the first FILL_START;
    the model then writes each fill, and the grammar alone closes each one (FILL_END), opens
    the next (FILL_START) and ends the song (EOS) once every placeholder is filled.

    Raises:
        ModeError: a span outside the song (names the span and the song's size).
    """
    if not spans:
        raise ModeError("infill: no span given (e.g. --infill 2:9-12)")
    try:
        laid = infill_layout(given, list(spans), vocab)
    except ValueError as e:
        raise ModeError(str(e)) from e
    first = int(np.flatnonzero(laid.ids == vocab.index["FILL_START"])[0])
    return (Forced(tuple(int(i) for i in laid.ids[: first + 1])), Free(None))


def add_track(vocab: Vocab, given: Encoding, program: int) -> Script:
    """Write one new track of `program` under the given song, whose tokens stay identical.

    The new track goes to its canonical position (after the given tracks that sort before or
    equal to it): the prompt is everything before that point plus the new opener, and the
    given tracks after it follow as forced tokens.
    """
    token = opener(vocab, program)
    openers = np.flatnonzero(given.type == Family.TRACK)
    programs = [int(vocab.value_of[given.ids[i]]) for i in openers]
    before = sum(track_sort_key(p) <= track_sort_key(program) for p in programs)
    cut = int(openers[before]) if before < len(openers) else len(given.ids) - 1  # at EOS
    head = tuple(int(i) for i in given.ids[:cut]) + (token,)
    tail = tuple(int(i) for i in given.ids[cut:])
    return (Forced(head), Free(tail[0], track_bars=0), Forced(tail))


SCRATCH_TOKENS = 4096
"""The smallest default budget (what a song from scratch gets)."""


def token_budget(script: Script, n_bars: int | None = None) -> int:
    """A max_tokens that fits `script`: its forced tokens, then room for the sampled runs.

    The room scales with what is forced, so a long prompt never leaves a mode without room:
    adding a track gets the prompt's length again (a track is at most as dense as the whole
    song, with margin), continuing from k kept bars to n_bars gets n_bars / k times the kept
    tokens; 1024 more either way, rounded up to 256, and never below SCRATCH_TOKENS.
    """
    forced = sum(len(s.tokens) for s in script if isinstance(s, Forced))
    kept = max((s.track_bars or 0 for s in script if isinstance(s, Free)), default=0)
    growth = 1.0 if not (kept and n_bars) else max(1.0, n_bars / kept)
    need = int(forced * (1 + growth)) + 1024
    return max(SCRATCH_TOKENS, -(-need // 256) * 256)


def prompt_tokens(script: Script) -> tuple[int, ...]:
    """The leading forced tokens every sample shares (what prefill runs)."""
    first = script[0]
    return first.tokens if isinstance(first, Forced) else ()


def first_bars(song: Encoding, n_bars: int) -> Encoding:
    """The song cut to its first n_bars bars (every track kept, EOS moved to the new last bar).

    Raises:
        ModeError: n_bars outside 1..song.n_bars.
    """
    if not 1 <= n_bars <= song.n_bars:
        raise ModeError(f"first_bars: {n_bars} outside 1..{song.n_bars}")
    keep = (song.bar < n_bars) | (song.ids == EOS)
    meta = {name: getattr(song, name)[keep].copy() for name in ("track", "bar", "type", "pos",
                                                                "program")}
    meta["bar"][-1] = n_bars - 1  # EOS sits in the last bar
    ids = song.ids[keep]
    pitch = (song.type[keep] == Family.PITCH).sum()
    return Encoding(ids=ids, **meta, n_bars=n_bars, n_tracks=song.n_tracks, n_notes=int(pitch))
