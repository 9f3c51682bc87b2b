"""bench/quality.py: the three-model quality bench end to end (--quick) and its scoring unit,
bits per note, on a hand-built two-song case."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, run_cmd

from bench import common, quality, quality_data, quality_remi
from meloformer.hid.song import Encoding

pytest.importorskip("miditok", reason="bench extra not installed")

# Next-token probabilities 1/2, 1/4, 1/8, 1/8 for ids 0..3: NLL of 1, 2, 3, 3 bits.
PROBS = torch.tensor([0.5, 0.25, 0.125, 0.125])


class FixedModel(torch.nn.Module):
    """Predicts PROBS after every token (a stand-in model with hand-checkable losses)."""

    def forward(self, batch):
        B, T = batch.shape
        return PROBS.log().expand(B, T, 4).clone()


def song(ids: list[int]) -> Encoding:
    n = len(ids)
    zeros = np.zeros(n, np.int64)
    return Encoding(np.array(ids), zeros, zeros, zeros, zeros, zeros, 1, 1, 0)


def test_bits_per_note_of_two_songs_is_the_hand_computation():
    a, b = song([1, 0, 2]), song([1, 3, 1, 0])  # targets: 0, 2 | 3, 1, 0
    bits_a, bits_b = 1 + 3, 3 + 2 + 1
    notes = [1, 3]
    family_of = np.array([0, 1, 1, 2])  # id 0 -> family 0, ids 1-2 -> 1, id 3 -> 2
    out = quality.score(FixedModel(), [a, b], notes, family_of, 3, batch_size=1)
    assert out["bits_per_note"] == pytest.approx((bits_a + bits_b) / 4)
    assert out["bits_per_token"] == pytest.approx((bits_a + bits_b) / 5)
    # By target family: id 0 twice (1 bit each), ids 1/2 (2 + 3 bits), id 3 (3 bits).
    assert out["family_bits_per_note"] == pytest.approx([2 / 4, 5 / 4, 3 / 4])
    assert sum(out["family_bits_per_note"]) == pytest.approx(out["bits_per_note"])
    both = quality.score(FixedModel(), [a, b], notes, family_of, 3, batch_size=2)
    assert both["bits_per_note"] == pytest.approx(out["bits_per_note"])  # padding ignored


def test_eval_windows_hold_the_same_bars_in_both_tokenisations():
    from meloformer.hid.encode import encode_file

    path = next(iter(sorted((REPO / "data" / "raw" / "sample").rglob("*.mid"))))
    tok = common.remi_tokenizer()
    tables = quality_remi.RemiTables.of(tok)
    import symusic

    seq = tok.encode(symusic.Score(str(path)))
    seq = seq[0] if isinstance(seq, list) else seq
    s = quality_data.Song(str(path), "val", encode_file(path), quality_remi.remi_encoding(
        np.asarray(seq.ids), tables))
    (w,) = quality_data.eval_windows([s], 256)
    assert len(w.hid) <= 256 and len(w.remi) <= 256
    hid_bars = set(w.hid.bar[~quality_data.header_mask(w.hid)].tolist())
    remi_bars = set(w.remi.bar.tolist())
    assert hid_bars == remi_bars == set(range(max(hid_bars) + 1))
    assert w.notes == int(tables.is_note[w.remi.ids].sum())  # same notes in the same bars


class ScriptedModel(torch.nn.Module):
    """Puts all mass on SCRIPT[len(prefix) - 1] and records each batch it is given."""

    def __init__(self, script: list[int], vocab: int):
        super().__init__()
        self.script, self.vocab, self.seen = script, vocab, []

    def forward(self, batch):
        B, T = batch.shape
        self.seen.append(batch)
        logits = torch.full((B, T, self.vocab), -1e9)
        logits[:, -1, self.script[(T - 1) % len(self.script)]] = 0.0
        return logits


def test_remi_sampler_stops_at_the_bar_count_and_token_budget():
    t = quality_remi.RemiTables.of(common.remi_tokenizer())
    names = [common.remi_tokenizer()[i] for i in range(len(t.family))]
    bar_id = names.index("Bar_None")
    ids = [names.index(n) for n in ("Bar_None", "Position_0", "Program_0", "Pitch_60",
                                     "Velocity_63", "Duration_1.0.8")]
    model = ScriptedModel(ids, len(t.family))
    g = quality.GenSettings(n_samples=2, bars=2, max_tokens=100, temperature=1.0)
    out = quality_remi.remi_sample_ids(model, t, g)
    assert out == [ids * 2, ids * 2]  # the third Bar would open bar 3: the song ends there
    first = model.seen[0]  # BOS alone, then one more token per call: no cache
    assert [b.shape for b in model.seen] == [(2, n) for n in range(1, 14)]
    assert first.ids[0, 0] == t.bos
    last = model.seen[-1]  # the rows' metadata is REMI's (remi_stream): bar, position, program
    assert last.bar[0, -1] == 1 and last.program[0, -1] == 0
    budget = quality_remi.remi_sample_ids(model, t, quality.GenSettings(n_samples=1, bars=9,
                                                                   max_tokens=10))
    assert budget == [(ids * 2)[:9]]  # BOS + 9 tokens = max_tokens
    assert bar_id in budget[0]


class CoinModel(torch.nn.Module):
    """Even odds of Pitch_60 and EOS after any prefix; records each batch's shape."""

    def __init__(self, pitch: int, eos: int, vocab: int):
        super().__init__()
        self.pitch, self.eos, self.vocab, self.shapes = pitch, eos, vocab, []

    def forward(self, batch):
        B, T = batch.shape
        self.shapes.append((B, T))
        logits = torch.full((B, T, self.vocab), -1e9)
        logits[:, :, [self.pitch, self.eos]] = 0.0
        return logits


def test_remi_sampler_rows_that_end_leave_the_batch():
    t = quality_remi.RemiTables.of(common.remi_tokenizer())
    names = [common.remi_tokenizer()[i] for i in range(len(t.family))]
    pitch = names.index("Pitch_60")
    model = CoinModel(pitch, t.eos, len(t.family))
    g = quality.GenSettings(n_samples=6, bars=4, max_tokens=40, seed=3)
    out = quality_remi.remi_sample_ids(model, t, g)
    assert all(set(ids) <= {pitch} for ids in out)  # EOS ends a row and is not kept
    assert len({len(ids) for ids in out}) > 1  # the rows ended at different steps
    rows = [b for b, _ in model.shapes]
    assert rows[0] == 6 and rows == sorted(rows, reverse=True)  # ended rows are dropped
    assert [T for _, T in model.shapes] == list(range(1, len(model.shapes) + 1))
    # Step k's batch holds the rows still open: those longer than k - 1 tokens, or at the
    # budget; each row was read once per token it sampled.
    assert sum(rows) == sum(min(len(ids) + 1, g.max_tokens - 1) for ids in out)


def test_real_scores_are_the_first_bars_of_each_song():
    from meloformer.hid.encode import encode_file, vocab_for
    from meloformer.hid.vocab import Family

    path = next(iter(sorted((REPO / "data" / "raw" / "sample").rglob("*.mid"))))
    enc = encode_file(path)
    s = quality_data.Song(str(path), "val", enc, enc)
    vocab = vocab_for(quality.HIDConfig())
    (score,) = quality.real_scores([s], 2, vocab)
    assert score.n_bars == min(2, enc.n_bars)
    assert score.n_notes == int(((enc.type == Family.PITCH) & (enc.bar < 2)).sum())


def test_quick_trains_and_scores_all_three_models(tmp_path):
    out = tmp_path / "q.json"
    text = run_cmd([sys.executable, "-m", "bench.quality", "--quick", "--out", str(tmp_path),
                    "--json", str(out)], REPO, None)
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == list(quality.MODELS)
    for r in rows:
        assert math.isfinite(r["bits/note"]) and r["bits/note"] > 0
        assert r["steps"] == 4 and r["time_steps"] >= 1
    assert "bits/note@time" in text
    result = json.loads(out.read_text())
    assert [r["metric"] for r in result["gap_rows"]][:2] == ["pitch_class_entropy",
                                                           "scale_consistency"]
    for name in quality.MODELS:  # every model and seed generated; gaps are |generated - real|
        assert set(result["gaps"][name]) == {"1337", "7"}
        for g in result["gaps"][name].values():
            assert g["decoded"] + g["failed"] == 2 and g["settings"]["bars"] == 2
            real = g["music"]["note_density"]["real"]
            assert math.isfinite(real) and real > 0
            for v in g["music"].values():
                if isinstance(v, dict) and math.isfinite(v["generated"]):
                    assert v["gap"] == pytest.approx(abs(v["generated"] - v["real"]))
    again = run_cmd([sys.executable, "-m", "bench.quality", "--quick", "--out", str(tmp_path)],
                    REPO, None)  # every run is finished: nothing trains, the table is the same
    assert again.splitlines()[2:6] == text.splitlines()[2:6]
