"""Samples from scratch in several instrumentations, each against the val songs that have
exactly those instruments: does a model play more than its default instrumentation well?

    python -m bench.instruments --checkpoint models/pretrained/small-dev.pt \\
        --data runs/dev/processed --out runs/instruments [--sets 0,0 0,0,0 128 0] \\
        [--samples 16] [--json OUT]

Per set (default: the val split's most common instrumentations, up to four, each held by at
least 3 songs): `--samples` songs of 16 bars from nothing, with generate's defaults but
`--instruments` (the data's meter and tempo; with two or more tracks each track asking the
density it has in the training songs of these instruments), scored by the evaluate stage's
song metrics against the set's real val songs, whole, as the evaluate stage reads them (a
song's first 16 bars are often a sparse intro: POP909's three-piano songs play 3.2 notes per
beat there, 5.1 over the song); plus memorised 4-bar spans (verbatim in the train split) and
notes held past the end. The table marks each of the reference model's goals
(bench.reference GOALS) met or not against the same-instrument songs. Sample MIDI, piano
rolls and JSON go to --out/<set>/.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from bench.common import write_json
from bench.reference import GOALS, SONG_BARS, _met, programs_of
from meloformer.data import ShardReader, build_index
from meloformer.evaluate import memorised_share, music_metrics, train_span_keys
from meloformer.generate import GenerateConfig, read_sample_ids, run_generate
from meloformer.hid import Score, Vocab, parse_tokens
from meloformer.train import load_trained

MIN_SONGS = 3  # a default set needs this many real val songs to compare against


def val_by_instruments(data: Path, vocab: Vocab) -> dict[tuple[int, ...], list[Score]]:
    """The val songs, whole, grouped by their sorted track programs."""
    index = build_index(data, split="val")
    reader = ShardReader(index)
    groups: dict[tuple[int, ...], list[Score]] = collections.defaultdict(list)
    for i in range(len(index)):
        song = reader.song(i)
        groups[programs_of(song, vocab)].append(parse_tokens(song.ids, vocab))
    return groups


def default_sets(groups: dict[tuple[int, ...], list[Score]]) -> list[tuple[int, ...]]:
    """Up to four most common instrumentations with at least MIN_SONGS songs."""
    common = sorted(groups, key=lambda s: -len(groups[s]))
    return [s for s in common if len(groups[s]) >= MIN_SONGS][:4]


def score_set(checkpoint: Path, programs: tuple[int, ...], real: list[Score], vocab: Vocab,
              train_keys: set[int], out: Path, samples: int) -> dict:
    """Generate `samples` songs in `programs` from scratch into `out`; their metrics beside
    the real songs'."""
    cfg = GenerateConfig(n_samples=samples, n_bars=SONG_BARS, max_tokens=4096, threads=0,
                         instruments=programs)
    written = run_generate(checkpoint, out, cfg, report=print, show_progress=False)
    made = [parse_tokens(read_sample_ids(p["json"]), vocab) for p in written]
    music, _ = music_metrics(real, made, vocab, max_distance=SONG_BARS)
    return {"programs": list(programs), "real_songs": len(real), "samples": len(made),
            "music": music, "memorised": memorised_share(made, train_keys)}


def print_table(rows: list[dict]) -> None:
    """One block per set: each goal metric real vs generated, met or not; memorised share."""
    for row in rows:
        name = ",".join(map(str, row["programs"]))
        print(f"\n--instruments {name}: {row['samples']} samples vs {row['real_songs']} val "
              "songs with these instruments")
        print(f"  {'metric':<22}{'real':>9}{'generated':>11}  goal")
        for metric, rule, goal in GOALS + [("held_past_end", "max", 0.0)]:
            m = row["music"].get(metric, {})
            real, got = m.get("real", float("nan")), m.get("generated", float("nan"))
            verdict = ("n/a (no pitched notes)" if real != real and got != got
                       else "met" if _met(rule, goal, real, got) else "NOT met")
            print(f"  {metric:<22}{real:>9.3f}{got:>11.3f}  {rule} {goal}: {verdict}")
        mem = row["memorised"]
        print(f"  {'memorised 4-bar spans':<22}{'':>9}{mem['share']:>11.4f}  < 0.01 "
              f"({mem['spans']} spans)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", nargs="+", help="comma-separated programs (128 = drums)")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--json", type=Path, help="default: OUT/instruments.json")
    args = ap.parse_args()
    _, record = load_trained(args.checkpoint)
    vocab = record.vocab()
    groups = val_by_instruments(args.data, vocab)
    sets = ([tuple(sorted(int(p) for p in s.split(","))) for s in args.sets] if args.sets
            else default_sets(groups))
    keys = train_span_keys(args.data, vocab)
    rows = [score_set(args.checkpoint, s, groups.get(s, []), vocab, keys,
                      args.out / "-".join(map(str, s)), args.samples) for s in sets]
    write_json(args.json or args.out / "instruments.json", {"sets": rows})
    print_table(rows)


if __name__ == "__main__":
    main()
