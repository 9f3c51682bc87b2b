"""Audio rendering speed and size (meloformer.audio), scaled to 16 bars at 120 bpm (32 s).

    python -m bench.audio [FOLDER ...] [--max-files 20]

Renders each MIDI of the folders (default: the bundled sample) to a temp OGG and prints one row
per file: its length, render time (synthesis + Vorbis encoding, one process, one thread) and
size, both also scaled to 32 s of music; then the median and the worst of the scaled figures,
with the load average, since a busy machine slows the render.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from meloformer.audio import AudioError, render_midi

BARS_16_AT_120 = 32.0  # seconds of 16 bars of 4/4 at 120 bpm


def rows(files: list[Path], out: Path) -> list[tuple[str, float, float, float]]:
    """(name, MIDI seconds, render s per 32 s, KiB per 32 s) of each file that renders."""
    found = []
    for path in files:
        try:
            done = render_midi(path, out)
        except AudioError as e:
            print(f"skip {e}")
            continue
        scale = BARS_16_AT_120 / done.midi_seconds
        found.append((path.name, done.midi_seconds, done.render_s * scale,
                      done.bytes / 1024 * scale))
        print(f"{path.name[:40]:40s} {done.midi_seconds:7.1f} s  render {done.render_s:5.2f} s"
              f"  {done.bytes / 1024:7.0f} KiB  | per 32 s: {found[-1][2]:5.2f} s "
              f"{found[-1][3]:6.0f} KiB")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folders", nargs="*", type=Path, default=[Path("data/raw/sample")])
    ap.add_argument("--max-files", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=BARS_16_AT_120,
                    help="the second summary keeps files at least this long")
    args = ap.parse_args()
    files = sorted(p for f in args.folders for p in f.rglob("*.mid"))[: args.max_files]
    with tempfile.TemporaryDirectory() as tmp:
        found = rows(files, Path(tmp) / "out.ogg")
    summary("all files", found)
    # a file of a few seconds scaled to 32 s multiplies its fixed cost (process start of the
    # encoder, SoundFont load, fsync) and any scheduling hiccup by 10 or more
    summary(f"files of {args.min_seconds:.0f} s or more",
            [r for r in found if r[1] >= args.min_seconds])


def summary(what: str, found: list[tuple[str, float, float, float]]) -> None:
    """Median and worst of the scaled figures, with the load average."""
    if not found:
        return
    speed, size = [r[2] for r in found], [r[3] for r in found]
    print(f"{what} ({len(found)}): per 16 bars at 120 bpm: render median "
          f"{statistics.median(speed):.2f} s, worst {max(speed):.2f} s; size median "
          f"{statistics.median(size):.0f} KiB, worst {max(size):.0f} KiB; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
