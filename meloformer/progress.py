"""A dependency-free progress line: done/total, files/s and ETA, on stderr.

On a terminal the line is redrawn in place (at most 5 times a second), and other output goes
above it (`above`); in a log (DVC, CI) a plain line is printed every LOG_EVERY_S seconds so
logs stay short. The ETA reads "unknown" until the first item is done (never nan).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

LOG_EVERY_S = 10.0


class Progress:
    """Reports progress of `total` items.

    Args:
        total: items expected.
        label: prefix of the line.
        stream: where to write (stderr by default); None writes nothing.
        unit: what the items are ("files", "steps").
        first: items done before this process started (a resumed run): the rate and the ETA
            count only the items done since.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = sys.stderr,
                 unit: str = "files", first: int = 0) -> None:
        self.total, self.label, self.stream, self.unit = total, label, stream, unit
        self.start = self.last = time.monotonic()
        self.tty = bool(stream is not None and stream.isatty())
        self.every = 0.2 if self.tty else LOG_EVERY_S
        self.done = self.first = first

    def __call__(self, done: int) -> None:
        """Record that `done` items are finished; redraw if it is time."""
        self.done = done
        now = time.monotonic()
        if self.stream is not None and now - self.last >= self.every:
            self.last = now
            self._write(self._line(now), final=False)

    def above(self, write: Callable[[], None]) -> None:
        """Run `write` (which prints a line elsewhere on the terminal) with the bar cleared
        first and redrawn after it, so the line does not land in the middle of the bar."""
        drawn = self.stream is not None and self.tty and self.last > self.start
        if drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        write()
        if drawn:
            self._write(self._line(time.monotonic()), final=False)

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.stream is not None and self.tty:
            self._write(self._line(time.monotonic()), final=True)

    def _line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = (self.done - self.first) / elapsed
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:6.1f} s" if rate > 0 else ("   0.0 s" if not left else "unknown")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:5.1f}%) "
            f"{rate:7.1f} {self.unit}/s  elapsed {elapsed:6.1f} s  eta {eta}"
        )

    def _write(self, line: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
