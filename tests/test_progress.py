"""The progress line (meloformer/progress.py): no nan before the first item, lines printed
above a terminal bar land on their own line."""

from __future__ import annotations

import io

from meloformer.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_eta_is_unknown_before_the_first_item_and_never_nan():
    out = io.StringIO()
    bar = Progress(10, "preprocess", out)
    bar.every = 0.0
    bar(0)
    bar(5)
    bar(10)
    lines = out.getvalue().splitlines()
    assert "eta unknown" in lines[0]
    assert "eta" in lines[1] and "unknown" not in lines[1]
    assert lines[2].endswith("eta    0.0 s")
    assert not any("nan" in line for line in lines)


def test_a_resumed_run_counts_its_rate_from_where_it_started():
    out = io.StringIO()
    bar = Progress(100, "train", out, unit="steps", first=90)
    bar.every = 0.0
    bar.start -= 10.0  # 10 s ago
    bar(95)
    assert "0.5 steps/s" in out.getvalue() and "eta   10.0 s" in out.getvalue()


def test_a_line_above_the_bar_clears_it_then_redraws_it():
    term, printed = _Terminal(), []
    bar = Progress(4, "train", term, unit="steps")
    bar.every = 0.0
    bar(1)
    bar.above(lambda: printed.append(term.getvalue()))
    drawn_before, after = printed[0], term.getvalue()[len(printed[0]):]
    assert drawn_before.endswith("\r\x1b[K")  # the bar was cleared before the line
    assert after.startswith("\rtrain: 1/4 steps")  # and redrawn after it
