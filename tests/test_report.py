"""The listening page (meloformer.report, tasks.report): metrics on top, one card per sample
with piano roll, audio and conditions, the reason when a sample has no audio; and the page in
a real headless Chromium: no console error, every image and every audio file loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from audio_midis import band, no_notes, sixteen_drum_channels, song, thirty_minutes
from browser import Page, chromium

from meloformer.generate.audio import attach_audio
from tasks.report import main as report_main

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
EVAL = {"loss": {"loss": 3.25, "perplexity": 25.8, "bits_per_note": 18.5,
                 "by_family": {"pitch": {"loss": 2.5, "tokens": 120}}},
        "music": {"similarity_error": None, "pitch_range": {"real": 30.0, "generated": 24.0}},
        "n_real": 2, "n_generated": 5}


def drum_only(path: Path) -> Path:
    return song(path, {9: [36, 42, 38, 42]}, bars=4)


SAMPLES = {  # stem -> (MIDI maker, render the audio?)
    "sample-000": (band, True), "sample-001": (no_notes, True),
    "sample-002": (band, False), "sample-003": (thirty_minutes, True),
    "sample-004": (sixteen_drum_channels, True), "sample-005": (drum_only, True),
}


def make_samples(folder: Path) -> Path:
    """A generate-like folder: <stem>.mid/.png/.json (+ .ogg where rendered)."""
    folder.mkdir(parents=True)
    for i, (stem, (make, audio)) in enumerate(SAMPLES.items()):
        paths = {"mid": make(folder / f"{stem}.mid"), "json": folder / f"{stem}.json"}
        plt.imsave(folder / f"{stem}.png", np.random.default_rng(i).random((40, 160)))
        config = {"seed": i, "n_bars": 16, "instruments": [0, 33, 128],
                  "infill": ["1:4-7"] if i == 2 else None, "density": ["1:4-7=high"]}
        mode = {"prompt": "song.mid"} if i == 2 else {}
        paths["json"].write_text(json.dumps({"index": i, "config": config, "mode": mode,
                                             "n_bars": 16, "n_notes": 10 * i, "ids": []}))
        if audio:
            attach_audio(paths)
    return folder


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """data/samples + metrics/ in a temp project, and the page the report stage writes."""
    root = tmp_path_factory.mktemp("report")
    make_samples(root / "data" / "samples")
    (root / "metrics").mkdir()
    (root / "metrics" / "eval.json").write_text(json.dumps(EVAL))
    rows = [{"sample": f"{s}.json", "last_bar_ratio": 0.5 + i / 10}
            for i, s in enumerate(SAMPLES)]
    (root / "metrics" / "samples.json").write_text(json.dumps(rows))
    out = root / "data" / "report" / "index.html"
    report_main(["--samples", str(root / "data/samples"), "--metrics", str(root / "metrics"),
                 "--out", str(out)])
    return out


def card_of(html: str, stem: str) -> str:
    return html.split(f'id="{stem}"')[1].split("</section>")[0]


def test_metrics_on_top_then_a_card_per_sample(page):
    html = page.read_text()
    assert html.index("loss.bits_per_note") < html.index('class="card"')
    assert "loss.by_family.pitch.loss" in html and "music.pitch_range.generated" in html
    assert html.count('class="card"') == len(SAMPLES)
    first = card_of(html, "sample-000")
    assert 'src="../samples/sample-000.png"' in first
    assert '<audio controls preload="metadata" src="../samples/sample-000.ogg">' in first
    assert "from scratch" in first and "1:4-7=high" in first and "0.5" in first
    infill = card_of(html, "sample-002")
    assert "infill" in infill and "1:4-7" in infill and "song.mid" in infill
    assert "http" not in html  # self-contained: nothing fetched from anywhere


def test_the_piano_rolls_are_copied_for_dvc_plots(page):
    rolls = sorted(p.name for p in (page.parent / "rolls").iterdir())
    assert rolls == [f"{stem}.png" for stem in SAMPLES]
    assert (page.parent / "rolls" / "sample-000.png").read_bytes() == (
        page.parents[1] / "samples" / "sample-000.png").read_bytes()


def test_samples_without_audio_say_why(page):
    html = page.read_text()
    reasons = {"sample-001": "no audio: no notes: nothing to render",
               "sample-002": "no audio: rendering was off",
               "sample-003": "no audio: 1800 s long, past the 600 s audio limit"}
    for stem, reason in reasons.items():
        assert reason in card_of(html, stem) and "<audio" not in card_of(html, stem)
    for stem in ("sample-000", "sample-004", "sample-005"):  # band, 16 channels, drums only
        assert "<audio" in card_of(html, stem) and "no audio" not in card_of(html, stem)


def test_the_page_builds_before_any_evaluation(tmp_path):
    samples = make_samples(tmp_path / "samples")
    report_main(["--samples", str(samples), "--metrics", str(tmp_path / "none"),
                 "--out", str(tmp_path / "index.html")])
    html = (tmp_path / "index.html").read_text()
    assert "no evaluation metrics yet" in html and 'src="samples/sample-000.png"' in html


def test_the_stage_ends_saying_where_everything_is(tmp_path, capsys):
    samples, metrics = make_samples(tmp_path / "samples"), tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "eval.json").write_text(json.dumps(EVAL))
    report_main(["--samples", str(samples), "--metrics", str(metrics),
                 "--out", str(tmp_path / "report" / "index.html")])
    said = capsys.readouterr().out.splitlines()
    assert said[-3:] == [
        f"report: open {tmp_path / 'report' / 'index.html'} in a browser",
        f"  samples: {samples} ({len(SAMPLES)} songs: .mid, .png piano roll, .ogg audio)",
        f"  metrics: {metrics / 'eval.json'} (dvc metrics show)"]


WAIT_FOR_AUDIO = """Promise.all([...document.querySelectorAll('audio')].map(a =>
  new Promise(done => {
    const report = () => done(
      {src: a.currentSrc, duration: a.duration, error: a.error && a.error.code});
    if (a.readyState >= 1 || a.error) return report();
    a.addEventListener('loadedmetadata', report); a.addEventListener('error', report);
    setTimeout(report, 20000);
  })))"""
IMAGES = """[...document.images].map(
  i => ({src: i.currentSrc, ok: i.complete && i.naturalWidth > 0}))"""


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install chromium)")
def test_the_page_loads_in_a_real_browser(page, tmp_path):
    with Page(tmp_path / "profile") as browser:
        browser.open(page.as_uri())
        images = browser.run(IMAGES)
        audios = browser.run(WAIT_FOR_AUDIO)
        shot = browser.screenshot(ARTIFACTS / "report.png")
        errors = browser.errors()
    print(f"screenshot: {shot}")
    assert errors == []
    assert len(images) == len(SAMPLES) and all(i["ok"] for i in images), images
    assert len(audios) == 3, audios  # band, 16 drum channels, drums only
    assert all(a["duration"] > 0 and a["error"] is None for a in audios), audios
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install chromium)")
def test_the_browser_check_catches_a_missing_file(page, tmp_path):
    """The browser test can fail: delete one piano roll and one audio file."""
    broken = tmp_path / "broken"
    os.symlink(page.parents[1], broken)  # the same project, under another name
    html = (broken / "report" / "index.html").read_text()
    html = html.replace("sample-000.png", "gone.png").replace("sample-004.ogg", "gone.ogg")
    (tmp_path / "broken.html").write_text(html.replace("../samples/", "broken/samples/"))
    with Page(tmp_path / "profile") as browser:
        browser.open((tmp_path / "broken.html").as_uri())
        images = browser.run(IMAGES)
        audios = browser.run(WAIT_FOR_AUDIO)
    assert [i["ok"] for i in images].count(False) == 1
    assert [a["error"] is not None or not a["duration"] > 0 for a in audios].count(True) == 1
