"""Conditions: what the user fixes about a generated song, checked and turned into token ids."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from meloformer.errors import UserError
from meloformer.hid import Family, Span, Vocab, level, tempo_bin


class ConditionError(UserError, ValueError):
    """A condition names something the vocabulary cannot write (the message says which)."""


@dataclass(frozen=True)
class Conditions:
    """User conditions; None leaves a choice to the model.

    Attributes:
        n_bars: bars of the song (the conductor's bar count).
        time_signature: "n/d", held for the whole song.
        tempo: BPM, held for the whole song (snapped to the nearest tempo bin).
        chords: chord names per bar ("Cmaj", "Amin7", "N"), repeated if shorter than the song.
        max_tokens: hard cap on the sequence length; the song is closed in time to fit.
        density, polyphony: per-bar controls (docs/hid.md "Controls"), each
            "TRACK:FIRST-LAST=LEVEL" (0-based instrument track, bars inclusive; LEVEL one of
            lowest low mid high highest, or 0..4): the bins the model is asked to write.
    """

    n_bars: int | None = None
    time_signature: str | None = None
    tempo: float | None = None
    chords: tuple[str, ...] | None = None
    max_tokens: int = 4096
    density: tuple[str, ...] | None = None
    polyphony: tuple[str, ...] | None = None
    programs: tuple[int, ...] | None = None
    """Programs a sampled track may have (the training data's: CorpusProfile.programs);
    None: any. Tracks the script forces (--instruments, a prompt's) are not limited."""


@dataclass(frozen=True)
class Rules:
    """Conditions as token ids (None: free). `controls[(hid track, bar)]` holds the control
    tokens to write after that bar's opener, in grammar order (DENSITY before POLYPHONY)."""

    n_bars: int | None
    ts: int | None
    tempo: int | None
    chords: tuple[int, ...] | None
    max_tokens: int
    controls: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)
    openers: tuple[int, ...] | None = None
    """Track openers a sampled track may start with (None: any)."""


def resolve(cond: Conditions, vocab: Vocab) -> Rules:
    """Check conditions against the vocabulary and convert them to token ids.

    Raises:
        ConditionError: naming the field at fault.
    """
    if cond.n_bars is not None and not 1 <= cond.n_bars <= vocab.config.max_bars:
        raise ConditionError(f"n_bars {cond.n_bars} outside 1..{vocab.config.max_bars}")
    if cond.max_tokens < 8:
        raise ConditionError(f"max_tokens {cond.max_tokens} < 8")
    return Rules(
        n_bars=cond.n_bars,
        ts=None if cond.time_signature is None else _ts(cond.time_signature, vocab),
        tempo=None if cond.tempo is None else _tempo(cond.tempo, vocab),
        chords=None if cond.chords is None else tuple(_chord(c, vocab) for c in cond.chords),
        max_tokens=cond.max_tokens,
        controls=_controls(cond, vocab),
        openers=None if cond.programs is None else tuple(
            vocab.index["DRUMS" if p == 128 else f"PROGRAM_{p}"] for p in cond.programs),
    )


def parse_control(text: str, kind: str) -> tuple[Span, int]:
    """"TRACK:FIRST-LAST=LEVEL" -> (span, bin).

    Raises:
        ConditionError: naming the kind and the text.
    """
    spec, sep, lvl = text.partition("=")
    try:
        if not sep:
            raise ValueError("expected TRACK:FIRST-LAST=LEVEL, e.g. 2:9-12=high")
        return Span.parse(spec), level(lvl)
    except ValueError as e:
        raise ConditionError(f"{kind} {text!r}: {e}") from e


def unreached_control(cond: Conditions, generated: set[tuple[int, int]]) -> str | None:
    """The first control request with a bar outside `generated` (the (hid track, bar)
    cells the run writes), as one line naming it; None when every request can be honoured.
    A control steers only a bar being generated: one on a kept bar would be dropped."""
    for kind in ("density", "polyphony"):
        for text in getattr(cond, kind) or ():
            span, _ = parse_control(text, kind)
            missing = [bar for cell, bar in zip(span.cells(), range(span.first, span.last + 1),
                                                strict=True) if cell not in generated]
            if missing:
                return (f"{kind} {text!r}: bar {missing[0]} of track {span.track} is not "
                        "generated in this run (controls steer only the bars being written: "
                        "the infill spans, the continued bars, the added track)")
    return None


def _controls(cond: Conditions, vocab: Vocab) -> dict[tuple[int, int], tuple[int, ...]]:
    """Per (hid track, bar), the control tokens in grammar order; a later request for the
    same bar and kind wins."""
    want: dict[tuple[int, int], dict[Family, int]] = {}
    for kind, fam in (("density", Family.DENSITY), ("polyphony", Family.POLYPHONY)):
        for text in getattr(cond, kind) or ():
            span, k = parse_control(text, kind)
            for cell in span.cells():
                want.setdefault(cell, {})[fam] = vocab.base(fam) + k
    return {cell: tuple(tok for _, tok in sorted(d.items())) for cell, d in want.items()}


def _ts(text: str, vocab: Vocab) -> int:
    try:
        num, den = (int(x) for x in text.split("/"))
    except ValueError as e:
        raise ConditionError(f"time_signature {text!r}: expected 'n/d'") from e
    if (num, den) not in vocab.ts_index:
        raise ConditionError(f"time_signature {text!r} is not in the vocabulary")
    return vocab.base(Family.TIME_SIG) + vocab.ts_index[(num, den)]


def _tempo(bpm: float, vocab: Vocab) -> int:
    if not (math.isfinite(bpm) and bpm > 0):
        raise ConditionError(f"tempo {bpm!r}: expected a positive BPM")
    return vocab.base(Family.TEMPO) + tempo_bin(round(60_000_000 / bpm), vocab)


def _chord(name: str, vocab: Vocab) -> int:
    if not vocab.config.chords:
        raise ConditionError("chords: this vocabulary has no chord tokens (chords: false)")
    token = name if name.startswith("CHORD_") else f"CHORD_{name}"
    if token not in vocab.index:
        raise ConditionError(f"chord {name!r} is not in the vocabulary")
    return vocab.index[token]
