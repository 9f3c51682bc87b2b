"""The audio hook of generation: each written sample also gets <stem>.ogg, and its JSON says
how that went (the report page shows the reason when a sample has no audio)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from meloformer.audio import AudioError, render_midi
from meloformer.io import write_text


def attach_audio(paths: dict[str, Path]) -> dict[str, Path]:
    """Render paths["mid"] to <stem>.ogg beside it; record the outcome in paths["json"].

    The JSON gains "audio": {"file", "seconds", "midi_seconds", "render_s", "bytes"} when
    rendered, {"error": reason} when refused (AudioError: no notes, too long); a refused
    sample is not an error of the run.

    Returns:
        paths, with "ogg" added when the audio was written.
    """
    ogg = paths["mid"].with_suffix(".ogg")
    try:
        done = render_midi(paths["mid"], ogg)
        record = {**asdict(done), "file": ogg.name}
        del record["path"]
        paths = {**paths, "ogg": ogg}
    except AudioError as e:
        ogg.unlink(missing_ok=True)  # never leave a previous run's audio beside new MIDI
        record = {"error": e.reason}
    sample = json.loads(paths["json"].read_text())
    write_text(paths["json"], json.dumps({**sample, "audio": record}) + "\n")
    return paths
