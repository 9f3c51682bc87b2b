"""Piano-roll PNG of a Score: one colour per track, bar lines, time in quarter notes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from meloformer.hid import DRUM_PROGRAM, Score  # noqa: E402
from meloformer.io import atomic_path  # noqa: E402


def track_label(program: int) -> str:
    return "drums" if program == DRUM_PROGRAM else f"program {program}"


# Bars per row of the picture: a long song wraps over several rows (a 60-bar song on one
# row was a 4000 x 500 picture nobody could read).
BARS_PER_ROW = 16


def plot_pianoroll(score: Score, resolution: int, path: Path, title: str = "",
                   marks: list[tuple[int, int, int]] | None = None) -> Path:
    """Draw every note as a bar (pitch x time) and write the PNG atomically; BARS_PER_ROW
    bars per row, as many rows as the song needs.

    Args:
        score: the song on the HID grid.
        resolution: grid steps per quarter note (HIDConfig.resolution).
        path: the .png to write.
        title: figure title.
        marks: (track, first bar, last bar) spans drawn as regenerated (infilling): a band
            in the track's colour over those bars, hatched, with its own legend entry.

    Returns:
        The path written.
    """
    end = _song_end(score)
    bounds = np.r_[score.starts, end] / resolution  # bar b spans bounds[b]..bounds[b + 1]
    rows = [(bounds[i], bounds[min(i + BARS_PER_ROW, score.n_bars)])
            for i in range(0, score.n_bars, BARS_PER_ROW)] or [(0.0, max(end / resolution, 1))]
    width = max(rows[0][1] - rows[0][0], 1)
    fig, axes = plt.subplots(len(rows), 1, squeeze=False, dpi=100,
                             figsize=(max(6.0, min(20.0, width / 4)), 1.0 + 2.4 * len(rows)))
    colours = plt.get_cmap("tab10")
    marked: list[Patch] = []
    for (lo, hi), ax in zip(rows, axes[:, 0], strict=True):
        _draw_notes(ax, score, resolution, colours, lo, hi)
        marked = _mark_spans(ax, score, resolution, marks or [], colours, end)
        ax.set_xlim(lo, lo + max(width, hi - lo))  # every row at one scale
        ax.set_ylabel("pitch")
    axes[-1, 0].set_xlabel("quarter notes (drums: pitch = GM key)")
    axes[0, 0].set_title(title)
    handles = [Patch(color=colours(t % 10), label=track_label(p))
               for t, p in enumerate(score.programs)] + marked
    if handles:
        axes[0, 0].legend(handles=handles, loc="upper right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _draw_notes(ax, score: Score, resolution: int, colours, lo: float, hi: float) -> None:
    """The notes sounding in quarter notes [lo, hi), one colour per track, and bar lines."""
    onset = score.onsets() / resolution
    length = np.maximum(score.dur, 1) / resolution  # drums: one grid step
    inside = (onset < hi) & (onset + length > lo)
    for t in range(len(score.programs)):
        sel = inside & (score.track == t)
        ax.barh(score.pitch[sel], length[sel], left=onset[sel], height=0.8,
                color=colours(t % 10), edgecolor="none")
    for start in score.starts / resolution:
        if lo <= start <= hi:
            ax.axvline(start, color="0.75", linewidth=0.6, zorder=0)


def _mark_spans(ax, score: Score, resolution: int, marks: list[tuple[int, int, int]],
                colours, end: int) -> list[Patch]:
    """Shade each regenerated (track, bars) span; return its legend entries."""
    handles = []
    bounds = np.r_[score.starts, end] / resolution  # bar b spans bounds[b]..bounds[b + 1]
    for track, first, last in marks:
        if not (0 <= track < len(score.programs) and 0 <= first <= last < score.n_bars):
            raise ValueError(f"piano roll mark {track}:{first}-{last} outside the song")
        colour = colours(track % 10)
        ax.axvspan(bounds[first], bounds[last + 1], color=colour, alpha=0.15, hatch="//",
                   zorder=0)
        name = track_label(score.programs[track])
        label = f"regenerated: track {track} ({name}), bars {first}-{last}"
        handles.append(Patch(facecolor=colour, alpha=0.3, hatch="//", label=label))
    return handles


def _song_end(score: Score) -> int:
    """Grid step where the last bar ends (bar lengths from the starts; last bar as the one
    before, or one note's end if longer)."""
    if score.n_bars == 0:
        return 0
    last = int(score.starts[-1] - score.starts[-2]) if score.n_bars > 1 else 0
    note_end = int((score.onsets() + np.maximum(score.dur, 1)).max()) if score.n_notes else 0
    return max(int(score.starts[-1]) + last, note_end, 1)
