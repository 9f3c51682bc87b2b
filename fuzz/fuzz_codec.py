"""Coverage-guided fuzzing of the HID codec (read -> encode -> decode) with atheris/libFuzzer.

    python fuzz/fuzz_codec.py WORK_DIR [libFuzzer flags]

WORK_DIR is the growing corpus; when empty it is seeded with the bundled sample's MIDI files
(data/raw/sample). Recommended flags (what tests/test_fuzz.py and docs/fuzzing.md use):
-timeout=2 -rss_limit_mb=512 -max_len=65536 -max_total_time=SECONDS -artifact_prefix=DIR/.
A crash, a slow input (> -timeout s) or a memory blow-up (> -rss_limit_mb) stops the run and
leaves the input in the artifact prefix; replay it with `python fuzz/fuzz_codec.py FILE`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["meloformer", "target"]):
    from target import check

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "raw" / "sample"


def seed(work_dir: Path) -> None:
    """Copy the sample's .mid files into an empty corpus dir (flat: libFuzzer names by hash)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if any(work_dir.iterdir()):
        return
    for i, path in enumerate(sorted(SAMPLE.rglob("*.mid"))):
        shutil.copy(path, work_dir / f"seed-{i:03d}.mid")


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:] if not a.startswith("-")]
    if dirs and not dirs[0].is_file():
        seed(dirs[0])
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
