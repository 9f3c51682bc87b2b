"""Generation's audio hook: each sample gets <stem>.ogg and its JSON says how that went;
`--no-audio` / generate.audio: false turn it off."""

from __future__ import annotations

import json

import pytest
import soundfile
from audio_midis import band, no_notes
from conftest import REPO

from meloformer.generate.__main__ import main
from meloformer.generate.audio import attach_audio

pytestmark = pytest.mark.usefixtures("one_thread")


def sample(tmp_path, make) -> dict:
    """A sample as write_sample leaves it: <stem>.mid and a JSON."""
    paths = {"mid": make(tmp_path / "sample-000.mid"), "json": tmp_path / "sample-000.json"}
    paths["json"].write_text(json.dumps({"index": 0, "ids": [1, 2]}) + "\n")
    return paths


def test_a_sample_gets_its_audio_and_the_json_records_it(tmp_path):
    paths = attach_audio(sample(tmp_path, band))
    assert paths["ogg"] == tmp_path / "sample-000.ogg"
    record = json.loads(paths["json"].read_text())
    assert record["ids"] == [1, 2]  # the sample's fields are kept
    audio = record["audio"]
    assert audio["file"] == "sample-000.ogg" and abs(audio["midi_seconds"] - 32.0) < 1e-6
    assert abs(soundfile.info(paths["ogg"]).duration - audio["seconds"]) < 1e-3


def test_a_refused_sample_keeps_no_audio_and_says_why(tmp_path):
    (tmp_path / "sample-000.ogg").write_bytes(b"stale audio of an earlier run")
    paths = attach_audio(sample(tmp_path, no_notes))
    assert "ogg" not in paths and not (tmp_path / "sample-000.ogg").exists()
    assert json.loads(paths["json"].read_text())["audio"] == {
        "error": "no notes: nothing to render"}


@pytest.mark.parametrize("flag", [[], ["--no-audio"]])
def test_the_generate_command_renders_unless_told_not_to(tiny_checkpoint, tmp_path, flag):
    main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), "--bars", "2",
          "--instruments", "0,128", "--max-tokens", "200", "--device", "cpu", *flag])
    record = json.loads((tmp_path / "sample-000.json").read_text())
    if flag:
        assert "audio" not in record and not (tmp_path / "sample-000.ogg").exists()
    else:
        assert record["n_notes"] > 0  # the seeded untrained model writes notes
        assert soundfile.info(tmp_path / "sample-000.ogg").channels == 2
        assert record["audio"]["file"] == "sample-000.ogg"


def test_generate_audio_is_a_checked_params_key(tmp_path):
    from tasks.params import ParamsError, load_params

    path = tmp_path / "params.yaml"
    path.write_text("generate: {audio: false}\n")
    assert load_params(path).generate.audio is False
    assert load_params(REPO / "params.yaml").generate.audio is True  # on by default
    path.write_text("generate: {audio: loud}\n")
    with pytest.raises(ParamsError, match="generate.audio: expected bool, got 'loud'"):
        load_params(path)
