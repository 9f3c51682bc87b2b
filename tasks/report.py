"""Stage report: the listening page (data/report/index.html) over the samples and the eval
metrics (it links the samples' piano rolls and audio relatively), and copies of the piano rolls
in data/report/rolls/ (dvc image plots)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.report import build_page, copy_rolls

METRIC_FILES = ("train.json", "eval.json", "samples.json")  # what train and evaluate write


def read_json(path: Path, default):
    """The JSON at path, or `default` when the file is not there (no evaluation yet)."""
    return json.loads(path.read_text()) if path.is_file() else default


@task
def report(samples: Path, metrics: Path, out: Path) -> Path:
    """Write `out` (the page) from samples/ and metrics/eval.json + samples.json, and the
    piano-roll copies in <out's folder>/rolls."""
    copy_rolls(samples, Path(out).parent / "rolls")
    return build_page(samples, read_json(metrics / "eval.json", None),
                      read_json(metrics / "samples.json", []), out)


def where(samples: Path, metrics: Path, page: Path) -> str:
    """The stage's last words, and so the pipeline's: where the page, the samples and the
    metrics are (only the metric files that exist)."""
    songs = len(list(Path(samples).glob("sample-*.mid")))
    files = [str(p) for p in (Path(metrics) / name for name in METRIC_FILES) if p.is_file()]
    listed = ", ".join(files) + " (dvc metrics show)" if files else "none yet (run evaluate)"
    return (f"report: open {page} in a browser\n"
            f"  samples: {samples} ({songs} songs: .mid, .png piano roll, .ogg audio)\n"
            f"  metrics: {listed}")


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.report --samples S --metrics M --out data/report/index.html."""
    ap = argparse.ArgumentParser(prog="python -m tasks.report")
    for name in ("samples", "metrics", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args(argv)
    page = run_cli(lambda: report.fn(args.samples, args.metrics, args.out))
    print(where(args.samples, args.metrics, page))


if __name__ == "__main__":
    main()
