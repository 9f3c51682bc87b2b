"""Preprocessing throughput with 1 and 2 workers, beside MidiTok REMI on the same files.

    python -m bench.preprocess [DIR] [--json OUT] [--repeat N] [--shard-size N]

Times the whole preprocess stage (pool start, encoding, shard writing, finalize) on a manifest
of DIR (default: the dev corpus), once per worker count, into fresh output directories. The
baseline, in the same process: read each file, symusic parse, MidiTok REMI
(bench.common.remi_tokenizer). Targets: 2 workers >= 1.8x the files/s of 1; 1-worker
notes/s >= REMI's. On a shared host other jobs take cores and the scaling figure with them,
so the bench also prints the load and the scaling a trivially parallel CPU loop gets on this
machine at the same time (the ceiling for any pool).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.common import remi_tokenizer
from meloformer.data import DiscoverConfig, PreprocessConfig, read_manifest
from meloformer.data.discover import MANIFEST_FILE, discover
from meloformer.data.preprocess import preprocess

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "midi-dev"


def bench_pipeline(work: Path, workers: int, shard_size: int, repeat: int) -> dict:
    """Best of `repeat` full preprocess runs with `workers` processes."""
    cfg = PreprocessConfig(workers=workers, shard_size=shard_size)
    best = None
    for i in range(repeat):
        out = work / f"out-{workers}-{i}"
        t0, cpu0 = time.perf_counter(), time.process_time()
        s = preprocess(work / MANIFEST_FILE, out, cfg, base=Path("/"), progress=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if best is None or seconds < best[0]:
            best = (seconds, cpu, s)
    seconds, cpu, s = best
    row = _row(f"HID pipeline, {workers} worker(s)", s.discovered, s.ok, s.notes, seconds)
    return {**row, "parent_cpu_s": round(cpu, 2)}  # the scheduler's own cost


def bench_remi(paths: list[Path]) -> dict:
    """Read, parse and REMI-tokenize every file in this process (the peer's failures skipped)."""
    import symusic

    tok = remi_tokenizer()
    ok = notes = 0
    t0 = time.perf_counter()
    for path in paths:
        try:
            score = symusic.Score.from_midi(path.read_bytes())
            tok.encode(score)
        except Exception:  # noqa: BLE001 - skipped, as the pipeline rejects its own failures
            continue
        ok, notes = ok + 1, notes + sum(len(t.notes) for t in score.tracks)
    return _row("REMI (MidiTok), 1 process", len(paths), ok, notes, time.perf_counter() - t0)


def _spin(n: int) -> int:
    """Pure-Python CPU work with no I/O and no shared state."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def machine_scaling(n: int = 10_000_000) -> float:
    """Throughput of 2 processes over 1 on the same CPU loop: what this host allows now."""
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_spin, [1, 1]))  # start both processes before timing
        t0 = time.perf_counter()
        list(pool.map(_spin, [n]))
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(_spin, [n, n]))
        two = time.perf_counter() - t0
    return 2 * one / two


def _row(name: str, files: int, ok: int, notes: int, seconds: float) -> dict:
    return {
        "run": name,
        "files": files,
        "ok": ok,
        "notes": notes,
        "seconds": round(seconds, 2),
        "files_per_s": files / seconds,
        "notes_per_s": notes / seconds,
    }


def print_table(rows: list[dict]) -> None:
    head = f"{'run':<28}{'files':>7}{'ok':>7}{'notes':>10}{'sec':>8}{'files/s':>9}{'notes/s':>10}"
    print(head + f"{'parent cpu s':>14}")
    for r in rows:
        print(
            f"{r['run']:<28}{r['files']:>7}{r['ok']:>7}{r['notes']:>10}{r['seconds']:>8.2f}"
            f"{r['files_per_s']:>9.1f}{r['notes_per_s']:>10.0f}{r.get('parent_cpu_s', ''):>14}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    ap.add_argument("--json", help="also write the rows and ratios here")
    ap.add_argument("--repeat", type=int, default=1, help="runs per worker count (best kept)")
    ap.add_argument("--shard-size", type=int, default=32, help="files per shard")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        work = Path(tmp)
        discover([Path(args.dir).resolve()], work, DiscoverConfig(), base=Path("/"))
        paths = [Path("/") / p for p in read_manifest(work / MANIFEST_FILE)["path"]]
        # Warm-up on a few files: starts the forkserver so neither timed run pays for it.
        bench_pipeline_warmup(work, paths[:8])
        load_before = os.getloadavg()[0]
        ceiling = [machine_scaling()]
        one = bench_pipeline(work, 1, args.shard_size, args.repeat)
        two = bench_pipeline(work, 2, args.shard_size, args.repeat)
        ceiling.append(machine_scaling())
        remi = bench_remi(paths)
    ratios = {
        "files_per_s_2_over_1": two["files_per_s"] / one["files_per_s"],
        "cpu_loop_2_over_1": sum(ceiling) / 2,
        "notes_per_s_1_worker_over_remi": one["notes_per_s"] / remi["notes_per_s"],
    }
    print(f"{len(paths)} unique files from {args.dir}; {os.cpu_count()} CPUs, "
          f"load average {load_before:.2f} before the timed runs")  # fmt: skip
    print_table([one, two, remi])
    print(
        f"scaling 1 -> 2 workers: {ratios['files_per_s_2_over_1']:.2f}x (target >= 1.8x; "
        f"a CPU loop gets {ratios['cpu_loop_2_over_1']:.2f}x on this host now)\n"
        f"1-worker notes/s vs REMI: {ratios['notes_per_s_1_worker_over_remi']:.2f}x (target >= 1)"
    )
    if args.json:
        body = {"rows": [one, two, remi], **ratios, "cpus": os.cpu_count(), "load": load_before}
        Path(args.json).write_text(json.dumps(body, indent=1) + "\n")


def bench_pipeline_warmup(work: Path, paths: list[Path]) -> None:
    """Preprocess a handful of files once (untimed)."""
    listing = work / "warmup.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    discover([listing], work / "warmup", DiscoverConfig(), base=Path("/"))
    cfg = PreprocessConfig(workers=2, shard_size=4)
    preprocess(work / "warmup" / MANIFEST_FILE, work / "warmup", cfg, Path("/"), progress=False)


if __name__ == "__main__":
    main()
