"""Infilling and per-bar controls of a trained checkpoint, in one table.

    python bench/infill.py --checkpoint runs/ic/checkpoints/last.pt --processed DIR
                           [--songs 6] [--samples 8] [--bars 4] [--seed 0] [--json OUT]

1. Infill quality (meloformer/evaluate/infill.py): one random span (1-4 bars around a note)
   per val song (each cropped to a 1024-token window of whole bars, seeded), its notes scored
   as a fill with the whole song as context and without it (the conductor and the span alone);
   bits per note summed over songs, and the share of spans the context helps.
2. Control adherence: `--samples` songs from scratch (drums, bass, piano; `--bars` bars), each
   with a random density bin and a random polyphony bin asked for every bar of the piano track,
   drawn once with the requests (forced after each bar's BAR) and once without (the baseline,
   checked against the same requests). The bins are the corpus's (meta.json control_bins).
3. Music-metric gap: one random span per val song (the song's first bars that fit 1024
   tokens), filled by the model (top-p 0.95); per metric the mean over the real spans, over
   the filled ones, and |gap| (meloformer/evaluate/infill.py fill_metric_gap).
One process; CPU timings are not the point here.
"""

from __future__ import annotations

import sys

sys.path.append(sys.path.pop(0))  # bench/ last: its script names must not shadow modules

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import print_table, write_json  # noqa: E402

from meloformer.data.controls import read_control_bins  # noqa: E402
from meloformer.data.crop import crop  # noqa: E402
from meloformer.data.shards import ShardReader, build_index  # noqa: E402
from meloformer.evaluate.infill import adherence, fill_metric_gap, infill_quality  # noqa: E402
from meloformer.generate.conditions import Conditions  # noqa: E402
from meloformer.generate.generate import Request, generate  # noqa: E402
from meloformer.generate.sampling import SamplingConfig  # noqa: E402
from meloformer.generate.script import first_bars, from_scratch  # noqa: E402
from meloformer.hid.controls import LEVELS  # noqa: E402
from meloformer.train.checkpoint import load_trained  # noqa: E402

INSTRUMENTS = (128, 33, 0)  # canonical order: drums (track 0), bass (1), piano (2)
PIANO = 2


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


def control_runs(model, vocab, bins, n: int, bars: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    script = from_scratch(vocab, INSTRUMENTS)
    requests, texts = [], []
    for _ in range(n):
        d, p = int(rng.integers(5)), int(rng.integers(5))
        requests.append({(PIANO + 1, b): {"density": d, "polyphony": p} for b in range(bars)})
        span = f"{PIANO}:0-{bars - 1}"
        texts.append(((f"{span}={LEVELS[d]}",), (f"{span}={LEVELS[p]}",)))
    rows = []
    for name, forced in (("with controls", True), ("no-control baseline", False)):
        songs = []
        for k, (dens, poly) in enumerate(texts):
            cond = Conditions(n_bars=bars, max_tokens=160 * bars,
                              density=dens if forced else None,
                              polyphony=poly if forced else None)
            req = Request(script, cond, SamplingConfig(seed=seed + k))
            songs += generate(model, vocab, req)
        share = adherence(songs, requests, vocab, bins)
        rows.append({"run": name, "samples": n, "density_match": share["density"],
                     "polyphony_match": share["polyphony"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--processed", type=Path, required=True)
    ap.add_argument("--songs", type=int, default=6)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--bars", type=int, default=4)
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
    controls = control_runs(model, vocab, bins, args.samples, args.bars, args.seed)
    print_table(controls, ["run", "samples", "density_match", "polyphony_match"])
    index = build_index(args.processed, "val")
    reader = ShardReader(index)
    windows = [first_bars_within(reader.song(i), 1024)
               for i in range(min(args.songs, len(index)))]
    gap = fill_metric_gap(model, windows, vocab, args.seed)
    print_table([{"metric": k, **v} for k, v in gap.items()], ["metric", "real", "filled", "gap"])
    if args.json:
        write_json(args.json, {"infill": quality, "controls": controls, "metric_gap": gap,
                               "checkpoint": str(args.checkpoint)})


if __name__ == "__main__":
    main()
