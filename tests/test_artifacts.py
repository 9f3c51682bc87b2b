"""The Prefect artifacts of a run (tasks/artifacts.py): training progress read from train.log,
the markdown report and the metrics table, published under their keys."""

from __future__ import annotations

import time

import pytest
from prefect import flow
from prefect.testing.utilities import prefect_test_harness

import tasks.artifacts as artifacts
from tasks.artifacts import (
    METRICS_KEY,
    PROGRESS_KEY,
    REPORT_KEY,
    TrainProgress,
    publish_report,
    report_markdown,
)

METRICS = {"loss": {"loss": 3.5, "bits_per_note": 18.25}, "music": {"similarity_error": None},
           "n_generated": 2}
START = "2026-01-01 MeloFormer 5,039,104 params, device cpu, world 1, 3 steps (10 epochs = 30 steps), resume at 0\n"  # noqa: E501


def test_progress_follows_the_steps_of_this_run_only(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(artifacts, "create_progress_artifact", lambda *a, **k: "id")
    monkeypatch.setattr(artifacts, "update_progress_artifact", lambda i, p: seen.append(p))
    log = tmp_path / "train.log"
    log.write_text("old run, 9 steps (1 epochs = 9 steps)\nStep 9: loss 1\n")
    with TrainProgress(log, every_s=3600) as progress:
        with log.open("a") as f:
            f.write(START + "Step 1: loss 4.0\nStep 2: loss 3.9\nStep 3: lo")  # half a line
        progress.poll()
        assert seen == [pytest.approx(100 / 3), pytest.approx(200 / 3)]
    assert seen[-1] == 100.0  # the run ended well: complete


def test_a_failed_run_stays_where_it_stopped(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(artifacts, "create_progress_artifact", lambda *a, **k: "id")
    monkeypatch.setattr(artifacts, "update_progress_artifact", lambda i, p: seen.append(p))
    log = tmp_path / "train.log"
    with pytest.raises(KeyboardInterrupt), TrainProgress(log, every_s=3600):
        log.write_text(START + "Step 1: loss 4.0\n")
        raise KeyboardInterrupt
    assert seen == [pytest.approx(100 / 3)]


def test_the_report_links_every_sample_file(tmp_path):
    for suffix in (".mid", ".png", ".ogg"):
        (tmp_path / f"sample-000{suffix}").write_bytes(b"x")
    (tmp_path / "sample-001.mid").write_bytes(b"x")  # no audio: no link to one
    text = report_markdown(METRICS, tmp_path, tmp_path / "index.html")
    assert "| loss.bits_per_note | 18.25 |" in text and "| music.similarity_error | – |" in text
    assert f"[audio]({(tmp_path / 'sample-000.ogg').as_uri()})" in text
    line = next(t for t in text.splitlines() if t.startswith("- sample-001"))
    assert "[MIDI]" in line and "audio" not in line


@pytest.mark.slow
def test_a_flow_publishes_the_three_keyed_artifacts(tmp_path):
    from prefect.client.orchestration import get_client

    log = tmp_path / "train.log"
    (tmp_path / "sample-000.mid").write_bytes(b"x")

    @flow
    def run() -> None:
        with TrainProgress(log, every_s=0.2):
            log.write_text(START)
            for step in (1, 2, 3):
                with log.open("a") as f:
                    f.write(f"Step {step}: loss 3.0\n")
                time.sleep(0.5)
        publish_report(METRICS, tmp_path, tmp_path / "index.html")

    with prefect_test_harness(server_startup_timeout=180):
        run()
        with get_client(sync_client=True) as client:
            latest = {a.key: a for a in client.read_latest_artifacts()}
    assert latest[PROGRESS_KEY].data == 100.0
    assert "| loss.loss | 3.5 |" in latest[REPORT_KEY].data
    assert "sample-000" in latest[REPORT_KEY].data
    assert '"metric": "loss.bits_per_note"' in latest[METRICS_KEY].data
