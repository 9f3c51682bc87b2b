"""The tables of bench/quality.py, read from its result (what a run builds and --json
writes: settings, step_times, plan, params, scored, curves {model: {seed: [point per scored
step]}} and gaps {model: {seed: gaps-<step>.json}}): bits per note at equal steps and at equal
time (mean and sd over seeds, each model against (a)), bits per note by target family, and the
music metrics' |generated - real|. `merge` joins the --json files of per-seed processes into
one result and prints it. Nothing here trains, samples or scores.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from bench.common import print_table, write_json
from bench.quality_data import BASE, MODELS


def at(curve: list, step: int) -> dict:
    return next(p for p in curve if p["step"] == step)


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(curves: dict, plan: dict, times: dict, steps: int, params: dict) -> list[dict]:
    """One row per model: equal-steps and equal-time bits/note (mean, sd over seeds)."""
    rows = []
    for name in MODELS:
        eq = [at(c, steps) for c in curves[name].values()]
        tm = [at(c, plan[name]["eq_time"]) for c in curves[name].values()]
        bpn, sd = mean_sd([p["bits_per_note"] for p in eq])
        bpn_t, sd_t = mean_sd([p["bits_per_note"] for p in tm])
        rows.append({
            "model": name, "params_M": params[name] / 1e6, "s_per_step": times[name],
            "steps": steps, "bits/note": bpn, "sd": sd,
            "bits/token": statistics.fmean(p["bits_per_token"] for p in eq),
            "time_steps": plan[name]["eq_time"], "bits/note@time": bpn_t, "sd@time": sd_t,
        })
    base = rows[0]
    for r in rows:
        r["vs_a_steps_%"] = 100 * (r["bits/note"] / base["bits/note"] - 1)
        r["vs_a_time_%"] = 100 * (r["bits/note@time"] / base["bits/note@time"] - 1)
    return rows


def family_rows(curves: dict, steps: int) -> list[dict]:
    """Bits per note by target family at equal steps, mean over seeds."""
    rows = []
    for name in MODELS:
        points = [at(c, steps)["family_bits_per_note"] for c in curves[name].values()]
        for fam in points[0]:
            rows.append({"model": name, "family": fam,
                         "bits/note": statistics.fmean(p.get(fam, 0.0) for p in points)})
    return rows


def report(result: dict, json_path: str | None) -> None:
    """Print the table (and write it with the curves to json_path)."""
    a, curves = result["settings"], result["curves"]
    steps, times, plan = a["steps"], result["step_times"], result["plan"]
    rows = summarize(curves, plan, times, steps, result["params"])
    fams = family_rows(curves, steps)
    sc = result["scored"]
    seeds = sorted({int(s) for c in curves.values() for s in c})
    print(f"{a['size']}, batch {a['rows']}x{a['length']} tokens, lr {a['lr']} constant after "
          f"{a['warmup']} warm-up steps, seeds {seeds}; equal time = (a)'s {steps} "
          f"steps x {times[BASE]:.2f} s; scored on {a['eval_dir'] or 'val'}: {sc['songs']} "
          f"songs, {sc['notes']} notes (REMI windows hold {sc['remi_notes'] / sc['notes']:.3f}x "
          f"as many)")
    print_table(rows, ["model", "params_M", "s_per_step", "steps", "bits/note", "sd",
                       "bits/token", "vs_a_steps_%", "time_steps", "bits/note@time",
                       "sd@time", "vs_a_time_%"])
    print(f"\nbits per note by target family at {steps} steps (mean over seeds)")
    print_table(fams, ["model", "family", "bits/note"])
    gaps = gap_rows(result.get("gaps", {}))
    if gaps:
        g = next(iter(next(iter(result["gaps"].values())).values()))["settings"]
        decoded = ", ".join(
            f"{n} {sum(x['decoded'] for x in v.values())}/"
            f"{sum(x['decoded'] + x['failed'] for x in v.values())}"
            for n, v in result["gaps"].items())
        print(f"\nmusic metrics at {steps} steps: |generated - real| per model, mean and sd "
              f"over seeds; {g['n_samples']} songs per model and seed from scratch, "
              f"{g['bars']} bars, <= {g['max_tokens']} tokens, temperature "
              f"{g['temperature']}, top_p {g['top_p']}, sampler seed {g['seed']}; real = "
              f"the scored songs' first {g['bars']} bars; decoded: {decoded}")
        print_table(gaps, ["metric", "real", *[c for n in MODELS for c in (n, _sd_col(n))]])
    if json_path:
        write_json(json_path, {**result, "rows": rows, "families": fams, "gap_rows": gaps})


def gap_rows(gaps: dict) -> list[dict]:
    """One row per music metric: the real value, then each model's |generated - real| (mean,
    sd over seeds; where a metric is undefined for some seed's samples, e.g. pitch metrics of
    drums-only songs, the sd cell says over how many seeds the mean is). Models without
    samples are left out."""
    models = [n for n in MODELS if gaps.get(n)]
    if not models:
        return []
    first = next(iter(gaps[models[0]].values()))["music"]
    rows = []
    for metric, value in first.items():
        row = {"metric": metric, "real": value["real"] if isinstance(value, dict) else ""}
        for n in models:
            vals = [v for g in gaps[n].values() if math.isfinite(v := _gap(g["music"][metric]))]
            row[n], row[_sd_col(n)] = mean_sd(vals) if vals else (math.nan, math.nan)
            if len(vals) < len(gaps[n]):
                row[_sd_col(n)] = f"{len(vals)}/{len(gaps[n])} seeds"
        rows.append(row)
    return rows


def _sd_col(name: str) -> str:
    return f"sd({'abc'[list(MODELS).index(name)]})"


def _gap(value) -> float:
    """A metric's gap; similarity_error is a distance between curves already."""
    return value["gap"] if isinstance(value, dict) else value


def merge(paths: list[str], json_path: str | None) -> None:
    """One table from the JSONs of runs that trained the seeds in separate processes."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    result = dict(parts[0])
    result["curves"] = {n: {s: c for part in parts for s, c in part["curves"][n].items()}
                        for n in MODELS}
    result["gaps"] = {n: {s: g for part in parts for s, g in part.get("gaps", {}).get(n, {})
                          .items()} for n in MODELS}
    report(result, json_path)
