"""Infilling and per-bar controls of a trained checkpoint, in one table.

    python -m bench.infill --checkpoint runs/ic/checkpoints/last.pt --processed DIR
                           [--songs 16] [--seed 0] [--json OUT]

1. Infill quality (bench/infill_eval.py): one random span (1-4 bars around a note)
   per val song (each cropped to a 1024-token window of whole bars, seeded), its notes scored
   as a fill with the whole song as context and without it (the conductor and the span alone);
   bits per note summed over songs, and the share of spans the context helps.
2. Steering (meloformer/evaluate/steering.py): per control kind, `--songs` val spans of 4
   bars, each filled once per level and once without a control with the same seed (paired);
   per level the realised values, exact and +-1-bin adherence against the no-control
   baseline with 95 % intervals, Spearman's rho between level and realised value, and the
   teacher-forced bits saved by the true bin on bars whose bin changed vs stayed.
3. Music-metric gap: one random span per val song (the song's first bars that fit 1024
   tokens), filled by the model (top-p 0.95, as generate samples); per metric the mean
   over the real spans, over the filled ones, and |gap| (bench/infill_eval.py
   fill_metric_gap).
One process; CPU timings are not the point here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.common import print_table, write_json
from bench.infill_eval import fill_metric_gap, infill_quality
from meloformer.data import ShardReader, build_index, crop, read_control_bins
from meloformer.evaluate import steering_report
from meloformer.generate import first_bars
from meloformer.train import load_trained


def val_songs(processed: Path, n: int, seed: int) -> list:
    index = build_index(processed, "val")
    reader = ShardReader(index)
    rng = np.random.default_rng(seed)
    return [crop(reader.song(i), 1024, rng) for i in range(min(n, len(index)))]


def first_bars_within(song, max_tokens: int):
    """The song's first bars (EOS kept) holding at most max_tokens tokens (at least 1 bar)."""
    k = song.n_bars
    while k > 1 and len(first_bars(song, k).ids) > max_tokens:
        k = max(1, k * 3 // 4)
    return first_bars(song, k)


def steering_rows(report: dict) -> list[dict]:
    """One printable row per (kind, level) of a steering report, then its totals."""
    rows = []
    for kind, r in report.items():
        for level, v in r["levels"].items():
            rows.append({"control": kind, "level": level, "bars": v["bars"],
                         "mean_value": v["mean"], "median": v["quartiles"][1],
                         "empty": v["empty_share"], "exact": v["exact"]["share"],
                         "within_1": v["within_one"]["share"],
                         "base_exact": v["baseline_exact"]["share"],
                         "base_within_1": v["baseline_within_one"]["share"]})
        c = r["contrast"]
        rows.append({"control": kind, "level": "all", "bars": r["bars"],
                     "mean_value": float("nan"), "median": float("nan"),
                     "empty": float("nan"), "exact": r["exact"]["share"],
                     "within_1": r["within_one"]["share"], "base_exact": float("nan"),
                     "base_within_1": float("nan"), "rho": r["spearman_rho"],
                     "bits_saved_changed": c["changed"]["bits_saved_per_bar"],
                     "bits_saved_stayed": c["stayed"]["bits_saved_per_bar"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--processed", type=Path, required=True)
    ap.add_argument("--songs", type=int, default=16, help="val songs (16 x 4 bars = 64 bars "
                    "per control level)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, record = load_trained(args.checkpoint, "cpu")
    vocab = record.vocab()
    bins = read_control_bins(args.processed / "meta.json")
    if bins is None:
        raise SystemExit(f"error: {args.processed}/meta.json has no control_bins")
    quality = infill_quality(model, val_songs(args.processed, args.songs, args.seed), vocab,
                             args.seed)
    print_table([quality], list(quality))
    report = steering_report(model, vocab, bins, val_songs(args.processed, args.songs,
                                                           args.seed), seed=args.seed)
    rows = steering_rows(report)
    print_table(rows, list(rows[-1]))
    index = build_index(args.processed, "val")
    reader = ShardReader(index)
    windows = [first_bars_within(reader.song(i), 1024)
               for i in range(min(args.songs, len(index)))]
    gap = fill_metric_gap(model, windows, vocab, args.seed)
    print_table([{"metric": k, **v} for k, v in gap.items()], ["metric", "real", "filled", "gap"])
    if args.json:
        write_json(args.json, {"infill": quality, "steering": report, "metric_gap": gap,
                               "checkpoint": str(args.checkpoint)})


if __name__ == "__main__":
    main()
