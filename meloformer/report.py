"""The listening page: one self-contained HTML file (inline CSS, no script, relative links)
with a run's evaluation metrics on top and one card per generated sample: piano roll, audio
player, conditions and metrics; a sample without audio says why."""

from __future__ import annotations

import json
import math
import os
import shutil
from html import escape
from pathlib import Path
from typing import Any

from meloformer.io import write_text

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
table { border-collapse: collapse; margin: .4em 0 1em; }
td, th { padding: .15em .7em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.card { background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 1em;
        margin: 0 0 1.5em; max-width: 1100px; }
.card img { max-width: 100%; display: block; }
.card audio { width: 100%; margin: .5em 0; }
.noaudio { color: #a40; font-weight: bold; }
.cols { display: flex; gap: 3em; flex-wrap: wrap; }
"""


def metric_rows(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, float | None]]:
    """Every number of a nested metrics dict as (dotted name, value); lists are skipped
    (the plots hold the curves), None and non-finite values kept as None."""
    rows: list[tuple[str, float | None]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += metric_rows(value, f"{name}.")
        elif value is None or isinstance(value, int | float) and not isinstance(value, bool):
            finite = value is not None and math.isfinite(value)
            rows.append((name, float(value) if finite else None))
    return rows


def number(value: float | None) -> str:
    """A metric as text: 4 significant digits, integers whole, None as a dash."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if value == int(value) and abs(value) >= 1 else f"{value:.4g}"


def table(rows: list[tuple[str, Any]], head: tuple[str, str]) -> str:
    """An HTML table of (name, value) rows; numbers right-aligned."""
    cells = "".join(
        f"<tr><td>{escape(str(k))}</td>"
        + (f'<td class="num">{number(v)}</td>' if isinstance(v, float | int | None)
           else f"<td>{escape(str(v))}</td>") + "</tr>"
        for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{cells}</table>"


HEADLINE = ("loss.loss", "loss.perplexity", "loss.bits_per_note", "music.similarity_error",
            "n_real", "n_generated")


def metrics_html(metrics: dict) -> str:
    """The headline metrics, then every number of eval.json behind a disclosure."""
    rows = metric_rows(metrics)
    head = [(k, v) for k, v in rows if k in HEADLINE]
    return (table(head, ("metric", "value")) + f"<details><summary>all {len(rows)} metrics"
            f"</summary>{table(rows, ('metric', 'value'))}</details>")


def mode_of(record: dict) -> str:
    """The generation mode of a sample JSON (from scratch, continue, add track, infill)."""
    config, mode = record.get("config", {}), record.get("mode", {})
    if config.get("infill"):
        return "infill"
    if mode.get("add_program") is not None:
        return f"add track (program {mode['add_program']})"
    return "continue the prompt" if mode.get("prompt") else "from scratch"


def conditions(record: dict) -> list[tuple[str, Any]]:
    """What the sample was asked for: mode, prompt, spans, controls and the other knobs set."""
    config, mode = record.get("config", {}), record.get("mode", {})
    rows = [("mode", mode_of(record)),
            ("prompt", mode.get("prompt") or config.get("prompt") or "none"),
            ("spans", ", ".join(config.get("infill") or []) or "none")]
    for kind in ("density", "polyphony"):
        rows.append((f"{kind} controls", ", ".join(config.get(kind) or []) or "none"))
    for key in ("instruments", "n_bars", "time_signature", "tempo", "chords", "seed"):
        if config.get(key) is not None:
            value = config[key]
            rows.append((key, ", ".join(map(str, value)) if isinstance(value, list) else value))
    return rows


def audio_html(record: dict, folder: Path, href: str) -> str:
    """An audio player, or the reason there is none."""
    audio = record.get("audio")
    if audio is None:
        reason = "rendering was off (generate.audio: false / --no-audio)"
    elif "error" in audio:
        reason = audio["error"]
    elif not (folder / audio["file"]).is_file():
        reason = f"{audio['file']} is missing"
    else:
        return (f'<audio controls preload="metadata" src="{escape(href + audio["file"])}">'
                "</audio>")
    return f'<p class="noaudio">no audio: {escape(reason)}</p>'


def card(json_path: Path, href: str, metrics: dict) -> str:
    """One sample's card: piano roll, player, conditions, metrics."""
    record = json.loads(json_path.read_text())
    stem = json_path.stem
    facts = [(k, record[k]) for k in ("n_bars", "n_tracks", "n_notes", "n_tokens") if k in record]
    if "seconds" in record.get("audio", {}):
        facts.append(("audio seconds", record["audio"]["seconds"]))
    facts += [(k, v) for k, v in metrics.items() if k != "sample"]
    img = ""
    if json_path.with_suffix(".png").is_file():
        img = f'<img src="{escape(href + stem)}.png" alt="piano roll of {stem}">'
    return (f'<section class="card" id="{stem}"><h2>{stem}</h2>{img}'
            f"{audio_html(record, json_path.parent, href)}<div class=\"cols\">"
            f"<div><h3>conditions</h3>{table(conditions(record), ('', ''))}</div>"
            f"<div><h3>metrics</h3>{table(facts, ('', ''))}</div></div></section>")


def build_page(samples: Path, metrics: dict | None, per_sample: list[dict], out: Path) -> Path:
    """Write the page `out` for the sample-*.json in `samples` (links relative to out).

    Args:
        samples: the generate stage's folder.
        metrics: the evaluation's metrics (eval.json), or None when there are none yet.
        per_sample: samples.json rows ({"sample": "sample-000.json", metric: value, ...}).
        out: the .html file to write (atomically).
    """
    href = os.path.relpath(samples, Path(out).parent).replace(os.sep, "/") + "/"
    by_name = {row["sample"]: row for row in per_sample}
    files = sorted(Path(samples).glob("sample-*.json"))
    top = metrics_html(metrics) if metrics else "<p>no evaluation metrics yet</p>"
    cards = "".join(card(p, href, by_name.get(p.name, {})) for p in files)
    write_text(Path(out), "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
               f"<title>MeloFormer samples</title><style>{CSS}</style></head><body>"
               f"<h1>MeloFormer samples</h1><h2>Evaluation</h2>{top}"
               f"<h2>Samples ({len(files)})</h2>{cards}</body></html>\n")
    return Path(out)


def copy_rolls(samples: Path, folder: Path) -> list[Path]:
    """Copy the samples' piano rolls (sample-*.png) into `folder`, emptied first (a run with
    fewer samples leaves none of an earlier run's behind). Returns the copies."""
    if Path(folder).exists():
        shutil.rmtree(folder)
    Path(folder).mkdir(parents=True)
    return [Path(shutil.copy2(png, folder)) for png in sorted(Path(samples).glob("sample-*.png"))]
