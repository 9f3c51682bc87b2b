"""Does a continuation keep the prompt's instrumentation? For each track silent in the
prompt's last PROMPT_TAIL bars, the share of the generated bars in which it plays (a model
that "explodes into every instrument" scores near 1; the goal is <= 0.5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meloformer.hid import Score

PROMPT_TAIL = 4


def silent_track_share(score: Score, prompt_bars: int, tail: int = PROMPT_TAIL) -> float | None:
    """Mean over the tracks with no note in bars [prompt_bars - tail, prompt_bars) of the
    share of bars >= prompt_bars where they play; None when no track is silent there or
    nothing was generated."""
    generated = score.n_bars - prompt_bars
    if generated <= 0:
        return None
    shares = []
    for t in range(len(score.programs)):
        bars = score.bar[score.track == t]
        if ((bars >= prompt_bars - tail) & (bars < prompt_bars)).any():
            continue
        shares.append(len(np.unique(bars[bars >= prompt_bars])) / generated)
    return float(np.mean(shares)) if shares else None


def continuation_metrics(scores: Sequence[Score], prompt_bars: Sequence[int | None]) -> dict:
    """{"silent_track_share": mean over the continuations that have a silent track,
    "continuations": how many samples were continuations, "with_silent_tracks": how many
    of them had one}."""
    values = [silent_track_share(s, p) for s, p in zip(scores, prompt_bars, strict=True)
              if p is not None]
    kept = [v for v in values if v is not None]
    return {"silent_track_share": float(np.mean(kept)) if kept else float("nan"),
            "continuations": len(values), "with_silent_tracks": len(kept)}
