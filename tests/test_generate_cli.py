"""The generate CLI end to end: checkpoint in, .mid/.png/.json out, clear errors."""

from __future__ import annotations

import json

import mido
import pytest
import torch

from meloformer.generate import read_sample_ids
from meloformer.generate.__main__ import main
from meloformer.generate.script import first_bars
from meloformer.hid import HIDConfig
from meloformer.hid.decode import decode, parse_tokens
from meloformer.hid.encode import encode_file, vocab_for
from meloformer.train import load_model

VOCAB = vocab_for(HIDConfig())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def test_load_model_round_trips_the_weights(checkpoint):
    model = load_model(checkpoint)
    assert model.cfg.n_layer == 1 and not model.training
    state = torch.load(checkpoint, weights_only=True)["model"]
    assert torch.equal(model.tok_emb.weight, state["tok_emb.weight"])


def test_cli_writes_midi_pianoroll_and_tokens(checkpoint, tmp_path):
    main(["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--samples", "2",
          "--bars", "2", "--instruments", "0,128", "--max-tokens", "200", "--seed", "5",
          "--device", "cpu"])
    for i in range(2):
        stem = tmp_path / f"sample-{i:03d}"
        record = json.loads(stem.with_suffix(".json").read_text())
        assert record["tokens"][0] == "BOS" and record["tokens"][-1] == "EOS"
        assert record["n_bars"] == 2 and record["vocab_hash"] == VOCAB.hash
        ids = read_sample_ids(stem.with_suffix(".json"))
        assert parse_tokens(ids, VOCAB).programs == [128, 0]
        assert len(mido.MidiFile(stem.with_suffix(".mid")).tracks) == 3  # conductor + 2
        assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files


def test_cli_add_track_mode(checkpoint, tmp_path):
    from conftest import FIXTURES

    prompt = tmp_path / "prompt.mid"
    decode(first_bars(encode_file(FIXTURES / "pop909_004.mid"), 10).ids, VOCAB).save(prompt)
    main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--prompt",
          str(prompt), "--add-track", "128", "--device", "cpu"])
    ids = read_sample_ids(tmp_path / "out" / "sample-000.json")
    assert parse_tokens(ids, VOCAB).programs[0] == 128  # drums sort first
    # --prompt-bars keeps the given song's first bars under the new track
    main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "cut"), "--prompt",
          str(prompt), "--prompt-bars", "4", "--add-track", "128", "--device", "cpu"])
    assert parse_tokens(read_sample_ids(tmp_path / "cut" / "sample-000.json"), VOCAB).n_bars == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--time-signature", "7/3"], "time_signature"),
        (["--add-track", "33"], "prompt"),
        (["--instruments", "200"], "program 200"),
    ],
)
def test_cli_errors_name_the_problem(checkpoint, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--device", "cpu", *args])
    assert message in str(exc.value)


def test_generate_task_writes_samples(checkpoint, tmp_path):
    from meloformer.generate.run import GenerateConfig
    from tasks.generate import generate as generate_task

    cfg = GenerateConfig(n_samples=1, n_bars=2, instruments=(0,), max_tokens=120, device="cpu")
    (paths,) = generate_task.fn(checkpoint, tmp_path, cfg)
    assert all(p.exists() for p in paths.values())


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint"):
        main(["--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path)])


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bars_flag_is_named_when_wrong(checkpoint, tmp_path, capsys, value):
    """`--bars 0` used to answer "n_bars 0 outside 1..4096", naming no flag."""
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(checkpoint), "--out", str(tmp_path), "--bars", value])
    assert exc.value.code == 2 and "--bars" in capsys.readouterr().err
