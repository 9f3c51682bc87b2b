"""Quality at equal compute: bits per note of MeloFormer against HID + dense and REMI + dense.

    python -m bench.quality [--out runs/quality] [--steps 200] [--seeds 1337 7] [--json OUT]
                            [--eval-dir DIR] [--gen-samples 4] [--quick]

Three models of one size (`small`), trained here by one loop through the library's training
step, optimizer and schedule (meloformer.train: step.train_step, optim.build_optimizer: AdamW,
weight decay 0.1 on matrices, clip 1.0; optim.lr_at with its floor at the peak: 20 warm-up
steps, then a constant 1e-3, so any point of a curve is a finished run of that length), batch
(2 rows x 1024 tokens, the `cpu` preset) and data order (per step the same songs and the same
start bar for every model):

    (a) hid-sparse  HID + the shipped sparse rules (SDPA executor of the mask on CPU)
    (b) hid-dense   HID + plain causal attention
    (c) remi-dense  MidiTok REMI (programs, tempos, time signatures: the peer every bench
                    uses, bench.common.remi_tokenizer) + the same transformer, plain causal
                    attention

The corpus (default ../shared/data/midi-dev) is split as discover splits it; songs whose HID
token sequences are identical count once (the first by path keeps its split). A file either
codec rejects is left out for all three. Scoring: each val song's first K bars, K the most that
fit in 1024 tokens under *both* tokenisations, so every model reads the same music.
**Bits per note** = the window's summed next-token NLL (bits) / the notes in it (HID's count,
the same number for every model), summed over songs before dividing. Per-family figures are
bits per note too, so they add up to the total.

Music metrics, generated vs real: each model's equal-steps checkpoint writes --gen-samples
songs from scratch (--gen-bars bars, at most --gen-tokens tokens; one temperature, top_p and
sampler seed for all): HID through the project's generate API, decoded by its decoder; REMI by
a plain uncached sampling loop, decoded by miditok. Every MIDI is read back by the HID encoder
and scored by the evaluate stage's music_metrics against the scored songs' first --gen-bars
bars (out-of-range share against the train split's pitch ranges); the table shows
|generated - real| per metric, mean and sd over seeds.

Two columns. Equal steps: every model at --steps. Equal time: the per-step times of the three
are measured side by side in one process (single steps interleaved, 10 rounds, median), and
each model is read at the step where it has spent what (a) spends in --steps; a model faster
than (a) trains on to that step.
Each (model, seed) run keeps a checkpoint and its curve under --out; a rerun continues it.
A process uses one torch thread; on 2 cores run the seeds as two processes on one --out (the
first writes step_times.json, start the second after it), each with --json, then
`--merge A.json B.json` prints the one table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.common import CORPUS, REPO, SAMPLE, remi_tokenizer, write_json
from bench.quality_data import (
    BASE,
    MODELS,
    Song,
    eval_windows,
    load_corpus,
    train_crop,
)
from bench.quality_remi import REMI_FAMILIES, GenSettings, RemiTables, remi_samples
from bench.quality_report import merge, report
from bench.quality_score import (
    hid_samples,
    midi_scores,
    real_scores,
    score,
    train_pitch_ranges,
)
from meloformer.evaluate import music_metrics
from meloformer.hid import Family, HIDConfig, vocab_for
from meloformer.model import Batch, MeloFormer, ModelConfig, Planner
from meloformer.train import (
    LossModule,
    MicroBatch,
    TrainConfig,
    build_optimizer,
    lr_at,
    train_step,
)

SAVE_EVERY = 50  # steps between checkpoints besides the scored ones (an interrupt loses less)
RUN_ORDER = ("hid-sparse", "remi-dense", "hid-dense")  # (a) vs (c) first if time runs out


# ---------------------------------------------------------------- models, training


def build_model(name: str, vocab_size: int, size: str, seed: int) -> MeloFormer:
    torch.manual_seed(seed)
    return MeloFormer(ModelConfig.from_name(size, attention=MODELS[name][1],
                                            vocab_size=vocab_size))


def step_batch(songs: list[Song], kind: str, step: int, seed: int, rows: int,
               length: int) -> Batch:
    """Step `step`'s batch: the same songs and start bars for every model of a seed."""
    rng = np.random.default_rng([seed, step])
    picks = rng.choice(len(songs), size=rows, replace=False)
    starts = rng.random(rows)
    crops = [[train_crop(getattr(songs[i], kind), length, float(u))]
             for i, u in zip(picks, starts, strict=True)]
    return Batch.from_encodings(crops, length=length)


def constant_lr(step: int, peak: float, warmup: int) -> float:
    """The library's schedule with its floor at the peak: linear warm-up, then constant, so
    every curve point is a finished run of that length."""
    return lr_at(step, peak, warmup, total=warmup, min_ratio=1.0)


def timed_step(model: MeloFormer, opt, batch: Batch, lr: float) -> tuple[float, float]:
    """One optimizer step through the library's train_step (fp32 on the CPU, clip 1.0):
    (loss, seconds). The seconds include the batch's mask plan, which the loader builds in
    a training run: every model's step is timed the same way, plan included."""
    model.train()
    t0 = time.perf_counter()
    micro = [MicroBatch(batch, Planner(model.cfg)(batch))]
    loss = train_step(LossModule(model), opt, micro, lr, 1.0, torch.device("cpu")).loss
    return loss, time.perf_counter() - t0


# ---------------------------------------------------------------- the bench


class Bench:
    """Corpus, eval windows and settings shared by every run."""

    def __init__(self, args) -> None:
        self.args = args
        self.out = Path(args.out)
        root = Path(args.corpus)
        self.splits, self.counts = load_corpus(root, args.max_files)
        self.train = self.splits["train"]
        self.hid_vocab = vocab_for(HIDConfig())
        self.remi_tables = RemiTables.of(remi_tokenizer())
        self.vocab = {"hid": len(self.hid_vocab), "remi": len(self.remi_tables.family)}
        hid_family = self.hid_vocab.family_of.astype(np.int64)
        self.family = {"hid": (hid_family, [f.name for f in Family]),
                       "remi": (self.remi_tables.family, list(REMI_FAMILIES))}
        if args.eval_dir:
            ev, _ = load_corpus(Path(args.eval_dir))
            self.eval_songs = ev["train"] + ev["val"] + ev["test"]
        else:
            self.eval_songs = self.splits["val"]
        self.windows = eval_windows(self.eval_songs[: args.max_eval], args.length)
        if not self.train or not self.windows:
            raise SystemExit(f"quality: no train songs or no val window ({self.counts})")
        self.gen = GenSettings(args.gen_samples, args.gen_bars, min(args.gen_tokens, args.length),
                               args.temperature, args.top_p, args.gen_seed)
        # The real side of the gaps: the scored songs' (val, or --eval-dir's) first bars.
        self.real = real_scores(self.eval_songs[: args.max_eval], self.gen.bars, self.hid_vocab)
        self.ranges = train_pitch_ranges(self.train, self.hid_vocab)

    def batch(self, name: str, step: int, seed: int) -> Batch:
        return step_batch(self.train, MODELS[name][0], step, seed, self.args.rows,
                          self.args.length)

    def model(self, name: str, seed: int) -> MeloFormer:
        return build_model(name, self.vocab[MODELS[name][0]], self.args.size, seed)

    def optimizer(self, model):
        return build_optimizer(model, TrainConfig(learning_rate=self.args.lr))

    def step_times(self) -> dict[str, float]:
        """Seconds per optimizer step of each model: single steps interleaved model by model
        for --time-rounds rounds (the machine is shared: a slow spell hits the models of a
        round alike), then the median per model. Written once; a rerun reuses it."""
        path = self.out / "step_times.json"
        if path.exists():
            return json.loads(path.read_text())["median"]
        runs = {n: (m := self.model(n, 0), self.optimizer(m)) for n in MODELS}
        times: dict[str, list[float]] = {n: [] for n in MODELS}
        for r in range(self.args.time_rounds + 1):
            for name, (model, opt) in runs.items():
                _, seconds = timed_step(model, opt, self.batch(name, 10_000 + r, 0), self.args.lr)
                if r:  # round 0 warms up
                    times[name].append(seconds)
        result = {n: statistics.median(v) for n, v in times.items()}
        write_json(path, {"median": result, "rounds": times})
        return result

    def run(self, name: str, seed: int, stop: int, evals: set[int], keep: set[int]) -> list:
        """Train (name, seed) to `stop` steps, scoring at `evals`; resumes from last.pt.

        Returns the curve: [{"step", "seconds", "bits_per_note", ...}] sorted by step.
        """
        run_dir = self.out / f"{name}-s{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        model, start, curve, train_s = self.model(name, seed), 0, [], 0.0
        opt = self.optimizer(model)
        last = run_dir / "last.pt"
        if last.exists():
            state = torch.load(last, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start = int(state["step"])
            curve = json.loads((run_dir / "curve.json").read_text())
            train_s = float(state.get("train_seconds", curve[-1]["train_seconds"] if curve
                                      else 0.0))
        # A run trained past a step this table reads (--steps, its equal-time step) but did not
        # keep then (an earlier, different --steps) cannot go back to it: say so before training.
        missing = [k for k in sorted(evals & keep)
                   if k <= start and not (run_dir / f"step-{k}.pt").exists()]
        if missing:
            raise SystemExit(f"quality: {run_dir} is at step {start}, past step(s) {missing} "
                             f"that this --steps needs and that run did not keep; pick --steps "
                             f"from its step-N.pt files or use a fresh --out")
        for step in range(start, stop):
            loss, seconds = timed_step(model, opt, self.batch(name, step, seed),
                                       constant_lr(step, self.args.lr, self.args.warmup))
            train_s += seconds
            done = step + 1
            if done % SAVE_EVERY == 0:
                print(f"  {name} s{seed} step {done}/{stop} loss {loss:.3f} "
                      f"({train_s:.0f} s)", flush=True)
            scored = done in evals or done == stop
            if scored:
                point = {"step": done, "train_seconds": train_s, **self.evaluate(model, name)}
                curve.append(point)
            if scored or done % SAVE_EVERY == 0:
                self._save(run_dir, model, opt, done, curve, keep, train_s)
        return curve

    def evaluate(self, model: MeloFormer, name: str) -> dict:
        kind = MODELS[name][0]
        family_of, names = self.family[kind]
        windows = [getattr(w, kind) for w in self.windows]
        result = score(model, windows, [w.notes for w in self.windows], family_of, len(names))
        result["family_bits_per_note"] = {
            n: b for n, b in zip(names, result["family_bits_per_note"], strict=True) if b > 0}
        return result

    def gaps(self, name: str, seed: int, step: int) -> dict:
        """The evaluate stage's music metrics of (name, seed)'s samples at `step` beside the
        real songs', with |generated - real| (music_metrics); kept in gaps-<step>.json, reused
        while the sampling settings are unchanged."""
        run_dir = self.out / f"{name}-s{seed}"
        path = run_dir / f"gaps-{step}.json"
        settings = asdict(self.gen)
        if path.exists() and (cached := json.loads(path.read_text()))["settings"] == settings:
            return cached
        model = self.model(name, seed)
        ckpt = torch.load(run_dir / f"step-{step}.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        t0 = time.perf_counter()
        if MODELS[name][0] == "hid":
            midis = hid_samples(model, self.hid_vocab, self.gen)
        else:
            midis = remi_samples(model, remi_tokenizer(), self.remi_tables, self.gen)
        generated, failed = midi_scores(midis)
        music, _ = music_metrics(self.real, generated, self.hid_vocab,
                                 max(1, self.gen.bars - 1), self.ranges)
        result = {"settings": settings, "step": step, "decoded": len(generated),
                  "failed": failed, "seconds": time.perf_counter() - t0, "music": music}
        write_json(path, result)
        return result

    def _save(self, run_dir: Path, model, opt, step: int, curve: list, keep: set[int],
              train_s: float) -> None:
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                 "train_seconds": train_s}
        tmp = run_dir / "last.pt.tmp"
        torch.save(state, tmp)
        if step in keep:
            torch.save({"model": model.state_dict(), "step": step}, run_dir / f"step-{step}.pt")
        write_json(run_dir / "curve.json", curve)  # curve before last.pt: a crash between
        os.replace(tmp, run_dir / "last.pt")  # the two replays one segment, never skips one


def schedule(steps: int, times: dict[str, float], n_evals: int) -> dict[str, dict]:
    """Per model: the equal-time step, the step to train to, and the steps scored."""
    out = {}
    for name, t in times.items():
        eq_time = max(1, round(steps * times[BASE] / t))
        stop = max(steps, eq_time)
        every = max(1, steps // n_evals)
        evals = set(range(every, stop + 1, every)) | {steps, eq_time}
        out[name] = {"eq_time": eq_time, "stop": stop, "evals": evals}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(CORPUS), help="MIDI folder (train/val by discover)")
    ap.add_argument("--out", default=str(REPO / "runs" / "quality"), help="runs + checkpoints")
    ap.add_argument("--steps", type=int, default=200, help="(a)'s optimizer steps")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1337, 7])
    ap.add_argument("--size", default="small")
    ap.add_argument("--length", type=int, default=1024, help="row length (train and eval)")
    ap.add_argument("--rows", type=int, default=2, help="rows per batch")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--evals", type=int, default=2, help="scored points up to --steps")
    ap.add_argument("--max-eval", type=int, default=64, help="val songs scored")
    ap.add_argument("--max-files", type=int, default=None, help="first N corpus files only")
    ap.add_argument("--time-rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    ap.add_argument("--gen-samples", type=int, default=4,
                    help="songs each model generates for the music-metric gaps (0: none)")
    ap.add_argument("--gen-bars", type=int, default=4, help="bars of each generated song")
    ap.add_argument("--gen-tokens", type=int, default=512,
                    help="token budget of a generated song (REMI's uncached sampler re-reads "
                         "the whole prefix per token: its cost grows with the square of this)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--gen-seed", type=int, default=0, help="seeds the sampler")
    ap.add_argument("--eval-dir", help="score the trained runs on this MIDI folder instead")
    ap.add_argument("--json", help="also write the table and curves here")
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="print one table from the --json files of per-seed processes")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, args.json)
        return
    if args.quick:
        args.corpus, args.steps, args.length, args.evals = str(SAMPLE), 4, 256, 2
        args.max_eval, args.time_rounds, args.warmup = 4, 2, 2
        args.gen_samples, args.gen_bars, args.gen_tokens = min(args.gen_samples, 2), 2, 128
    # One thread per process: on a shared 2-core machine two threads stall each other under
    # load (measured 3.5-5 s vs 2 s a step); run seeds as parallel processes instead.
    torch.set_num_threads(args.threads)
    bench = Bench(args)
    times = bench.step_times()
    plan = schedule(args.steps, times, args.evals)
    keep_steps = {args.steps} | {p["eq_time"] for p in plan.values()}
    print(f"corpus {args.corpus}: {bench.counts}; scored: {len(bench.windows)} songs, "
          f"{sum(w.notes for w in bench.windows)} notes", flush=True)
    curves: dict[str, dict[int, list]] = {n: {} for n in MODELS}
    for seed in args.seeds:
        for name in RUN_ORDER:
            p = plan[name]
            if args.eval_dir:
                curves[name][seed] = eval_dir_curve(bench, name, seed, sorted(keep_steps))
            else:
                curves[name][seed] = bench.run(name, seed, p["stop"], p["evals"], keep_steps)
    gaps: dict[str, dict[int, dict]] = {n: {} for n in MODELS}
    for seed in args.seeds if args.gen_samples else ():
        for name in RUN_ORDER:
            gaps[name][seed] = bench.gaps(name, seed, args.steps)
    remi_notes = sum(int(bench.remi_tables.is_note[w.remi.ids].sum()) for w in bench.windows)
    result = {
        "bench": "quality", "counts": bench.counts,
        "settings": {k: v for k, v in vars(args).items()}, "step_times": times,
        "plan": {n: {"eq_time": p["eq_time"], "stop": p["stop"]} for n, p in plan.items()},
        "params": {n: bench.model(n, 0).num_params() for n in MODELS},
        "scored": {"songs": len(bench.windows), "notes": sum(w.notes for w in bench.windows),
                   "remi_notes": remi_notes},
        "curves": {n: {str(s): c for s, c in v.items()} for n, v in curves.items()},
        "gaps": {n: {str(s): g for s, g in v.items()} for n, v in gaps.items()},
    }
    report(result, args.json)


def eval_dir_curve(bench: Bench, name: str, seed: int, steps: list[int]) -> list:
    """Score the saved step-N checkpoints of a finished run on --eval-dir's songs."""
    curve = []
    for step in steps:
        path = bench.out / f"{name}-s{seed}" / f"step-{step}.pt"
        if not path.exists():
            continue
        model = bench.model(name, seed)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
        curve.append({"step": step, **bench.evaluate(model, name)})
    if not curve:  # nothing trained under --out: one line, not a traceback further on
        raise SystemExit(f"error: no trained run {bench.out / f'{name}-s{seed}'} (step-N.pt "
                         f"for steps {steps}): train first, without --eval-dir, with the "
                         "same --out")
    return curve


if __name__ == "__main__":
    main()
