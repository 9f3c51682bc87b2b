"""The evaluate stage end to end on tiny shards, a tiny checkpoint and generated samples."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from train_helpers import write_shards

from meloformer.evaluate.evaluate import EvaluateConfig, evaluate, summary_line
from meloformer.evaluate.loss import family_loss
from meloformer.generate import read_sample_ids
from meloformer.generate.run import GenerateConfig, run_generate
from meloformer.generate.script import first_bars
from meloformer.hid import HIDConfig
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file, vocab_for
from meloformer.hid.vocab import Family
from meloformer.model import Batch, MeloFormer, ModelConfig
from meloformer.train.checkpoint import model_config_dict, save_checkpoint
from tasks.evaluate import evaluate as evaluate_task

VOCAB = vocab_for(HIDConfig())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(checkpoint, processed dir, samples dir) in a temp dir."""
    root = tmp_path_factory.mktemp("eval")
    files = ["groove_rock_6-8.mid", "pop909_004.mid", "freedoom_E1M8_3-4.mid"]
    write_shards(root / "data" / "shards", files, ["val", "val", "train"])
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2))
    ckpt = root / "last.pt"
    save_checkpoint(ckpt, {"model": model.state_dict(),
                           "model_config": model_config_dict(model.cfg), "step": 0})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run_generate(ckpt, root / "samples", GenerateConfig(n_samples=2, n_bars=4, max_tokens=300,
                                                       device="cpu"))
    torch.set_num_threads(before)
    return ckpt, root / "data", root / "samples"


def test_family_loss_matches_the_model_loss():
    from conftest import FIXTURES

    songs = [first_bars(encode_file(FIXTURES / "pop909_004.mid"), 12),
             first_bars(encode_file(FIXTURES / "groove_rock_6-8.mid"), 3)]
    torch.manual_seed(1)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=4, n_kv_head=2)).eval()
    out = family_loss(model, songs, VOCAB.family_of, batch_size=1)
    with torch.no_grad():
        losses = [float(model.loss(Batch.from_encodings([[s]]))) for s in songs]
    n = [len(s.ids) - 1 for s in songs]
    assert out["tokens"] == sum(n)
    mean = sum(loss * k for loss, k in zip(losses, n, strict=True)) / sum(n)
    assert out["loss"] == pytest.approx(mean, rel=1e-5)
    assert out["perplexity"] == pytest.approx(math.exp(out["loss"]))
    fams = out["by_family"]
    assert sum(f["tokens"] for f in fams.values()) == out["tokens"]
    assert {"PITCH", "POSITION", "BAR", "TRACK"} <= set(fams)
    notes = sum(int((s.type == Family.PITCH).sum()) for s in songs)
    assert out["notes"] == notes
    assert out["bits_per_note"] == pytest.approx(mean * sum(n) / math.log(2) / notes, rel=1e-5)


def test_evaluate_writes_metrics_and_plots(setup, tmp_path):
    ckpt, processed, samples = setup
    cfg = EvaluateConfig(max_songs=8, max_tokens=512, batch_size=2, max_distance=4,
                         device="cpu")
    metrics = evaluate_task.fn(ckpt, processed, samples, tmp_path, cfg)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["n_real"] == 2 and saved["n_generated"] == 2
    assert saved["loss"]["loss"] == pytest.approx(metrics["loss"]["loss"])
    # Untrained: about uniform over the legal-ish vocabulary, far above a trained model.
    assert 3 < saved["loss"]["loss"] < 10
    for name in ("pitch_class_entropy", "scale_consistency", "groove_consistency",
                 "polyphony", "empty_beat_rate", "note_density"):
        entry = saved["music"][name]
        assert set(entry) == {"real", "generated", "gap"}
        if entry["real"] is not None and entry["generated"] is not None:
            assert entry["gap"] == pytest.approx(abs(entry["generated"] - entry["real"]))
    curve = json.loads((tmp_path / "plots" / "similarity.json").read_text())
    assert [row["distance"] for row in curve] == [1, 2, 3, 4]
    fams = json.loads((tmp_path / "plots" / "family_loss.json").read_text())
    assert {row["family"] for row in fams} >= {"PITCH", "BAR"}


def test_evaluate_without_samples_is_a_clear_error(setup, tmp_path):
    ckpt, processed, _ = setup
    with pytest.raises(FileNotFoundError, match="generate"):
        evaluate(ckpt, processed, tmp_path / "none", tmp_path, EvaluateConfig(device="cpu"))


def test_evaluate_scores_each_samples_ending_and_pitch_range(setup, tmp_path):
    ckpt, processed, samples = setup
    data = tmp_path / "data"
    shutil.copytree(processed, data)
    ranges = {str(p): [40, 80, 1000] for p in range(129)}
    meta = json.loads((data / "meta.json").read_text())  # keeps the vocabulary record
    (data / "meta.json").write_text(json.dumps({**meta, "pitch_ranges": ranges}))
    cfg = EvaluateConfig(max_songs=8, max_tokens=512, batch_size=2, max_distance=4,
                         device="cpu")
    evaluate_task.fn(ckpt, data, samples, tmp_path / "m", cfg)
    music = json.loads((tmp_path / "m" / "eval.json").read_text())["music"]
    for name in ("last_bar_ratio", "held_past_end", "out_of_range_share"):
        assert set(music[name]) == {"real", "generated", "gap"}
    rows = json.loads((tmp_path / "m" / "samples.json").read_text())
    assert [r["sample"] for r in rows] == sorted(p.name for p in samples.glob("sample-*.json"))
    for row, path in zip(rows, sorted(samples.glob("sample-*.json")), strict=True):
        score = parse_tokens(read_sample_ids(path), VOCAB)
        melodic = np.array([score.programs[t] != 128 for t in score.track], dtype=bool)
        if melodic.any():
            ends = score.onsets() + score.dur
            length = int(VOCAB.bar_steps[score.ts].sum())
            assert row["held_past_end"] == pytest.approx(np.mean(ends[melodic] > length))
        assert 0 <= (row["out_of_range_share"] or 0) <= 1


def test_the_summary_line_rounds_every_figure_and_names_what_was_not_measured():
    assert summary_line(3.905015230178833, 49.6512, 18.24999, 0.04347150322394549) == (
        "val loss 3.9050, perplexity 49.65, 18.25 bits/note, similarity error 0.043")
    for missing in (None, float("nan")):
        assert summary_line(3.9, 49.0, 18.0, missing).endswith("similarity error not measured")


def test_same_instruments_scores_against_the_songs_with_the_samples_instruments():
    """The oracle: music_metrics on the real songs filtered by hand."""
    from conftest import FIXTURES

    from meloformer.evaluate.evaluate import music_metrics, same_instruments

    files = ["groove_rock_6-8.mid", "pop909_004.mid", "freedoom_E1M8_3-4.mid"]
    real = [parse_tokens(encode_file(FIXTURES / f).ids, VOCAB) for f in files]
    pop = real[1]
    got = same_instruments(real, [pop, pop], VOCAB, 4)
    want, _ = music_metrics([pop], [pop, pop], VOCAB, 4)
    assert got == {"programs": sorted(pop.programs), "n_real": 1, **want}
    assert got["note_density"]["gap"] == 0  # the same song on both sides
    assert same_instruments(real, [pop, real[0]], VOCAB, 4) is None  # two instrumentations
    assert same_instruments([real[0], real[2]], [pop], VOCAB, 4) is None  # no real song has it


def test_evaluate_adds_the_same_instruments_reference(setup, tmp_path):
    """Samples that are a val song itself: against the val songs of their instruments (that
    song alone) every gap is 0; against all val songs (a drum groove too) not."""
    from conftest import FIXTURES

    from meloformer.generate import write_sample

    ckpt, processed, _ = setup
    song = encode_file(FIXTURES / "pop909_004.mid")
    for i in range(2):
        write_sample(song, VOCAB, tmp_path / "samples", f"sample-{i:03d}")
    cfg = EvaluateConfig(max_songs=8, max_tokens=512, batch_size=2, max_distance=4,
                         device="cpu")
    metrics = evaluate(ckpt, processed, tmp_path / "samples", tmp_path / "out", cfg)
    same = json.loads((tmp_path / "out" / "eval.json").read_text())["music_same_instruments"]
    assert same["n_real"] == 1 and same == metrics["music_same_instruments"]
    assert same["note_density"]["gap"] == 0 and same["pitch_class_entropy"]["gap"] == 0
    assert metrics["music"]["note_density"]["gap"] > 0
