"""The reference model's figures: samples from scratch and continuations, scored by the
evaluate stage against the targets of docs/model.md (the card in models/pretrained).

    python -m bench.reference --checkpoint runs/reference/checkpoints/last.pt \\
        --data runs/dev/processed --out runs/reference/eval [--samples 16] [--prompts 16]

- scratch: `--samples` songs of 16 bars from nothing (the data's meter, tempo and
  instruments: generate's defaults);
- continuation (the MIREX 2025 symbolic-generation protocol): the first 4 bars of
  `--prompts` test-split songs (drawn across the split), continued to 16 bars;
then the evaluate stage's metrics on each set (val bits/note, music metrics against the val
songs, memorisation: a continuation's spans in the bars the model wrote), and a table of the
targets, met or not. More references, since a figure against the whole val set mixes drum
grooves, folk tunes and piano scores:
- the val songs with the scratch samples' instrumentation (whole), beside scratch;
- the real test songs' bars 4-15, beside the continuations' memorised share (real music
  shares grooves and riffs with other songs too);
- the continuations again with every track free to come in (`bring_in` all: the model alone,
  without the rule that keeps the prompt's instrumentation), beside the silent-track share.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from meloformer.data import ShardReader, build_index, opener_program
from meloformer.evaluate import (
    EvaluateConfig,
    continuation_metrics,
    evaluate,
    memorised_share,
    same_instruments,
    spread_subset,
    train_span_keys,
)
from meloformer.generate import (
    Conditions,
    GenerateConfig,
    Request,
    SamplingConfig,
    continuation,
    first_bars,
    generate,
    read_sample_ids,
    run_generate,
    write_sample,
)
from meloformer.hid import Encoding, Family, Vocab, parse_tokens
from meloformer.train import load_profile, load_trained

PROMPT_BARS, SONG_BARS = 4, 16


def prompt_songs(data: Path, prompts: int) -> list[tuple[int, int, Encoding]]:
    """(draw k, test-split index, song) of `prompts` test songs drawn across the split, those
    of SONG_BARS bars or more (k seeds the song's continuation)."""
    index = build_index(data, split="test")
    reader = ShardReader(index)
    drawn = spread_subset(len(index), prompts, seed=0)
    songs = [(k, int(i), reader.song(int(i))) for k, i in enumerate(drawn)]
    return [(k, i, s) for k, i, s in songs if s.n_bars >= SONG_BARS]


def continuations(model, vocab: Vocab, profile, checkpoint: Path, songs, out: Path,
                  free: bool = False) -> tuple[list, list]:
    """Continue the first PROMPT_BARS bars of each prompt_songs entry to SONG_BARS bars;
    return the real songs' and the continuations' Scores. `free`: every track may come in."""
    real, made_scores = [], []
    for k, i, song in songs:
        head = first_bars(song, SONG_BARS)
        real.append(parse_tokens(head.ids, vocab))
        cond = Conditions(n_bars=SONG_BARS, max_tokens=len(head) * 3,
                          programs=profile.programs if profile else None)
        bring_in = range(song.n_tracks) if free else None
        req = Request(continuation(song, PROMPT_BARS, bring_in=bring_in), cond,
                      SamplingConfig(seed=k))
        (made,) = generate(model, vocab, req)
        made_scores.append(parse_tokens(made.ids, vocab))
        write_sample(made, vocab, out, f"sample-{k:03d}",
                     {"checkpoint": str(checkpoint), "index": k,
                      "mode": {"prompt": f"test song {int(i)}", "prompt_bars": PROMPT_BARS,
                               "bring_in": "all" if free else None}})
    return real, made_scores


def programs_of(song, vocab: Vocab) -> tuple[int, ...]:
    """The song's track programs, sorted (128 = drums)."""
    openers = song.ids[song.type == Family.TRACK]
    return tuple(sorted(opener_program(vocab, int(t)) for t in openers))


def same_as_scratch(data: Path, written: list[dict[str, Path]], vocab: Vocab) -> dict | None:
    """The scratch samples' music metrics against the val songs with their instruments, whole
    (the evaluate stage's same_instruments, over the whole val split where the stage reads a
    64-song subset); None when no val song has them."""
    index = build_index(data, split="val")
    reader = ShardReader(index)
    real = [parse_tokens(reader.song(i).ids, vocab) for i in range(len(index))]
    made = [parse_tokens(read_sample_ids(p["json"]), vocab) for p in written]
    return same_instruments(real, made, vocab, max_distance=SONG_BARS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=16)
    args = ap.parse_args()
    scratch, cont = args.out / "scratch", args.out / "continuation"
    cfg = GenerateConfig(n_samples=args.samples, n_bars=SONG_BARS, max_tokens=4096, threads=0)
    written = run_generate(args.checkpoint, scratch, cfg, report=print)
    model, record = load_trained(args.checkpoint)
    vocab, profile = record.vocab(), load_profile(args.checkpoint)
    songs = prompt_songs(args.data, args.prompts)
    real, _ = continuations(model, vocab, profile, args.checkpoint, songs, cont)
    _, free = continuations(model, vocab, profile, args.checkpoint, songs,
                            args.out / "continuation-free", free=True)
    ecfg = EvaluateConfig(max_songs=64)
    keys = train_span_keys(args.data, vocab)  # read once for the three memorisation shares
    results = {name: evaluate(args.checkpoint, args.data, d, args.out / f"metrics-{name}", ecfg,
                              train_keys=keys)
               for name, d in (("scratch", scratch), ("continuation", cont))}
    results["real_continuation"] = continuation_metrics(real, [PROMPT_BARS] * len(real))
    results["free_continuation"] = continuation_metrics(free, [PROMPT_BARS] * len(free))
    results["real_memorised"] = memorised_share(  # real music's own share: the bar to read by
        real, keys, [PROMPT_BARS] * len(real))
    same = same_as_scratch(args.data, written, vocab)
    if same is not None:
        results["same_instruments"] = same
    (args.out / "reference.json").write_text(json.dumps(results, indent=1, default=float))
    print_table(results)


GOALS = [  # (metric, rule, goal): rule "max_ratio" = generated <= goal x real, etc.
    ("empty_beat_rate", "max_ratio", 2.0), ("scale_consistency", "min", 0.85),
    ("note_density", "within_share", 0.30), ("pitch_class_entropy", "within", 0.3),
    ("last_bar_ratio", "max", 1.5),
]


def print_table(results: dict) -> None:
    """One row per target: real, generated (scratch; continuation), goal, met."""
    bits = results["scratch"]["loss"]["bits_per_note"]
    print(f"\nval bits/note {bits:.2f} (goal <= 11.0: {'met' if bits <= 11.0 else 'NOT met'})")
    same = results.get("same_instruments", {})
    print(f"same instruments as scratch: {same.get('n_real', 0)} val songs of programs "
          f"{same.get('programs')}")
    print(f"{'metric':<22}{'real':>9}{'scratch':>10}{'contin.':>10}{'real-same':>10}  goal")
    for name, rule, goal in GOALS:
        real = results["scratch"]["music"].get(name, {}).get("real", float("nan"))
        row = [results[k]["music"].get(name, {}).get("generated", float("nan"))
               for k in ("scratch", "continuation")]
        alike = same.get(name, {}).get("real", float("nan"))
        ok = [_met(rule, goal, real, g) for g in row] + [_met(rule, goal, alike, row[0])]
        print(f"{name:<22}{real:>9.3f}{row[0]:>10.3f}{row[1]:>10.3f}{alike:>10.3f}  {rule} "
              f"{goal}: {'/'.join('met' if o else 'NOT met' for o in ok)} "
              "(scratch/contin./scratch vs same)")
    mem = [results[k]["memorised"]["share"] for k in ("scratch", "continuation")]
    real = results["real_memorised"]["share"]
    print(f"{'memorised 4-bar spans':<22}{real:>9.4f}{mem[0]:>10.4f}{mem[1]:>10.4f}  < 0.01 "
          "(real: the prompts' songs' own bars 4-15)")
    cont = results["continuation"]["continuation"]["silent_track_share"]
    real = results["real_continuation"]["silent_track_share"]
    free = results["free_continuation"]["silent_track_share"]
    print(f"{'silent-track share':<22}{real:>9.3f}{'':>10}{cont:>10.3f}  <= 0.5 "
          f"(every track free to come in: {free:.3f})")


def _met(rule: str, goal: float, real: float, got: float) -> bool:
    if not np.isfinite(got):
        return False
    return {"max_ratio": got <= goal * real, "min": got >= goal,
            "within_share": abs(got - real) <= goal * real, "within": abs(got - real) <= goal,
            "max": got <= goal}[rule]


if __name__ == "__main__":
    main()
