"""The reference model's figures: samples from scratch and continuations, scored by the
evaluate stage against the targets of docs/model.md (the card in models/pretrained).

    python -m bench.reference --checkpoint runs/reference/checkpoints/last.pt \\
        --data runs/dev/processed --out runs/reference/eval [--samples 16] [--prompts 16]

- scratch: `--samples` songs of 16 bars from nothing (the data's meter, tempo and
  instruments: generate's defaults);
- continuation (the MIREX 2025 symbolic-generation protocol): the first 4 bars of
  `--prompts` test-split songs (drawn across the split), continued to 16 bars;
then the evaluate stage's metrics on each set (val bits/note, music metrics against the val
songs, memorisation), and a table of the targets, met or not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from meloformer.data import ShardReader, build_index
from meloformer.evaluate import EvaluateConfig, continuation_metrics, evaluate, spread_subset
from meloformer.generate import (
    Conditions,
    GenerateConfig,
    Request,
    SamplingConfig,
    continuation,
    first_bars,
    generate,
    run_generate,
    write_sample,
)
from meloformer.hid import parse_tokens
from meloformer.train import load_profile, load_trained

PROMPT_BARS, SONG_BARS = 4, 16


def continuations(checkpoint: Path, data: Path, out: Path, prompts: int) -> list:
    """Continue the first PROMPT_BARS bars of `prompts` test songs to SONG_BARS bars."""
    model, record = load_trained(checkpoint)
    vocab, profile = record.vocab(), load_profile(checkpoint)
    index = build_index(data, split="test")
    reader, real = ShardReader(index), []
    for k, i in enumerate(spread_subset(len(index), prompts, seed=0)):
        song = reader.song(int(i))
        if song.n_bars < SONG_BARS:
            continue
        real.append(parse_tokens(first_bars(song, SONG_BARS).ids, vocab))
        cond = Conditions(n_bars=SONG_BARS, max_tokens=len(first_bars(song, SONG_BARS)) * 3,
                          programs=profile.programs if profile else None)
        req = Request(continuation(song, PROMPT_BARS), cond, SamplingConfig(seed=k))
        (made,) = generate(model, vocab, req)
        write_sample(made, vocab, out, f"sample-{k:03d}",
                     {"checkpoint": str(checkpoint), "index": k,
                      "mode": {"prompt": f"test song {int(i)}", "prompt_bars": PROMPT_BARS}})
    return real


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
    run_generate(args.checkpoint, scratch, cfg, report=print)
    real = continuations(args.checkpoint, args.data, cont, args.prompts)
    ecfg = EvaluateConfig(max_songs=64)
    results = {name: evaluate(args.checkpoint, args.data, d, args.out / f"metrics-{name}", ecfg)
               for name, d in (("scratch", scratch), ("continuation", cont))}
    results["real_continuation"] = continuation_metrics(real, [PROMPT_BARS] * len(real))
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
    print(f"{'metric':<22}{'real':>9}{'scratch':>10}{'contin.':>10}  goal")
    for name, rule, goal in GOALS:
        real = results["scratch"]["music"].get(name, {}).get("real", float("nan"))
        row = [results[k]["music"].get(name, {}).get("generated", float("nan"))
               for k in ("scratch", "continuation")]
        ok = [_met(rule, goal, real, g) for g in row]
        print(f"{name:<22}{real:>9.3f}{row[0]:>10.3f}{row[1]:>10.3f}  {rule} {goal}: "
              f"{'/'.join('met' if o else 'NOT met' for o in ok)}")
    mem = [results[k]["memorised"]["share"] for k in ("scratch", "continuation")]
    print(f"{'memorised 4-bar spans':<22}{'':>9}{mem[0]:>10.4f}{mem[1]:>10.4f}  < 0.01")
    cont = results["continuation"]["continuation"]["silent_track_share"]
    real = results["real_continuation"]["silent_track_share"]
    print(f"{'silent-track share':<22}{real:>9.3f}{'':>10}{cont:>10.3f}  <= 0.5")


def _met(rule: str, goal: float, real: float, got: float) -> bool:
    if not np.isfinite(got):
        return False
    return {"max_ratio": got <= goal * real, "min": got >= goal,
            "within_share": abs(got - real) <= goal * real, "within": abs(got - real) <= goal,
            "max": got <= goal}[rule]


if __name__ == "__main__":
    main()
