"""Replay inputs through the fuzz target without atheris: a corpus summary, or a finding.

    python fuzz/replay.py DIR_OR_FILE...

Prints how many inputs ended as tokens and how many as each MidiError kind, and the slowest
input. Under coverage.py it measures what a fuzz corpus reaches (docs/fuzzing.md):
    python -m coverage run --include='meloformer/hid/*' fuzz/replay.py CORPUS
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from target import check


def main(args: list[str]) -> None:
    files = [f for a in map(Path, args) for f in ([a] if a.is_file() else sorted(a.rglob("*")))
             if f.is_file()]
    counts: Counter = Counter()
    slowest = (0.0, "")
    for path in files:
        start = time.perf_counter()
        counts[check(path.read_bytes())] += 1
        slowest = max(slowest, (time.perf_counter() - start, path.name))
    print(f"{len(files)} inputs: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    print(f"slowest: {slowest[1]} in {slowest[0]:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
