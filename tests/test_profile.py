"""The corpus profile: measured from the shards, carried by the checkpoint, and used by
generation from scratch (the data's meter, tempo and instruments; no unseen program)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from train_helpers import ALL_FIXTURES, FIXTURES, make_dataset

from meloformer.data.controls import control_bins, split_songs
from meloformer.data.profile import (
    LEVEL_SONGS,
    CorpusProfile,
    corpus_profile,
    opener_program,
    read_profile,
)
from meloformer.data.shards import SHARD_DIR, songs_files
from meloformer.generate import Conditions, Request, SamplingConfig, generate
from meloformer.generate.run import GenerateConfig, run_generate
from meloformer.generate.script import from_scratch
from meloformer.hid import Vocab, cell_stats
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file
from meloformer.hid.vocab import Family
from meloformer.model import MeloFormer, ModelConfig

VOCAB = Vocab()


def test_profile_reads_the_train_split(tmp_path):
    data = make_dataset(tmp_path, copies=2)
    files = songs_files(data / SHARD_DIR)
    got = corpus_profile(files, VOCAB, control_bins(files, VOCAB))
    scores = [parse_tokens(encode_file(FIXTURES / f).ids, VOCAB) for f in ALL_FIXTURES]
    assert set(got.programs) == {p for s in scores for p in s.programs}
    assert set(got.instruments) <= set(got.programs) and got.meter in got.meters
    assert 24 <= got.tempo <= 320
    assert CorpusProfile.from_dict(json.loads(json.dumps(got.to_dict()))) == got
    (data / "meta.json").write_text(json.dumps({"profile": got.to_dict()}))
    assert read_profile(data / "meta.json") == got
    old = {k: v for k, v in got.to_dict().items() if k != "track_density"}
    assert CorpusProfile.from_dict(old).track_density == ()  # a profile from before


def lower_median(values: list[int]) -> int:
    return sorted(values)[(len(values) - 1) // 2]


def test_track_density_is_each_tracks_median_level(tmp_path):
    """The oracle: every train song's bars binned one by one (an empty bar -1), grouped by
    instrumentation and track, the lower median of each group (at least 0); only sets of
    LEVEL_SONGS songs or more."""
    data = make_dataset(tmp_path, copies=LEVEL_SONGS)
    files = songs_files(data / SHARD_DIR)
    bins = control_bins(files, VOCAB)
    by_set: dict[tuple, dict[int, list[int]]] = {}
    count: Counter = Counter()
    for enc in split_songs(files, "train"):
        song = tuple(opener_program(VOCAB, int(t)) for t in enc.ids[enc.type == Family.TRACK])
        count[song] += 1
        st = cell_stats(enc, VOCAB)
        for track, dens, empty in zip(st.track, st.density, st.empty, strict=True):
            level = -1 if empty else int(np.searchsorted(bins.density, dens, side="left"))
            by_set.setdefault(song, {}).setdefault(int(track), []).append(level)
    want = {song: tuple(max(lower_median(by_set[song][t]), 0) for t in range(1, len(song) + 1))
            for song, n in count.items() if n >= LEVEL_SONGS}
    got = corpus_profile(files, VOCAB, bins)
    assert want and dict(got.track_density) == want
    assert all(got.density_levels(s) == v for s, v in want.items())
    assert corpus_profile(files, VOCAB).track_density == ()  # no bins, no levels


def test_sampled_tracks_keep_to_the_programs_of_the_data():
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(n_layer=1, n_embd=64, n_head=2, n_kv_head=1)).eval()
    req = Request(from_scratch(VOCAB, None), Conditions(n_bars=2, max_tokens=300,
                                                        programs=(0, 33)),
                  SamplingConfig(seed=4), n_samples=4)
    opened = set()
    for song in generate(model, VOCAB, req):
        opened |= {VOCAB.tokens[int(t)] for t in song.ids[song.type == Family.TRACK]}
    assert opened and opened <= {"PROGRAM_0", "PROGRAM_33"}


def test_from_scratch_takes_the_data_meter_tempo_and_instruments(tiny_checkpoint, tmp_path):
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    profile = CorpusProfile("3/4", 90.0, (33, 0), ("3/4", "4/4"), (0, 33))
    ckpt["profile"] = profile.to_dict()
    path = tmp_path / "with-profile.pt"
    torch.save(ckpt, path)
    lines: list[str] = []
    cfg = GenerateConfig(n_samples=2, n_bars=2, max_tokens=300, device="cpu")
    written = run_generate(path, tmp_path / "out", cfg, report=lines.append)
    assert "--time-signature 3/4" in lines[0] and "--tempo 90.0" in lines[0]
    assert len(lines) == 2 and "note density" in lines[1]  # two tracks: a typical density
    for paths in written:
        record = json.loads(Path(paths["json"]).read_text())
        score = parse_tokens(np.asarray(record["ids"]), VOCAB)
        assert score.programs == [33, 0] or sorted(score.programs) == [0, 33]
        assert {VOCAB.time_sigs[int(k)] for k in score.ts} == {(3, 4)}
    # Fixed by the user: nothing is chosen for them.
    lines.clear()
    cfg = GenerateConfig(n_samples=1, n_bars=2, max_tokens=300, device="cpu",
                         time_signature="4/4", tempo=120.0, instruments=(0,))  # one track
    run_generate(path, tmp_path / "out2", cfg, report=lines.append)
    assert lines == []


def test_export_takes_the_profile_of_the_meta_it_is_given(tiny_checkpoint, tmp_path):
    """A profile field added after a run reaches the shipped file without retraining."""
    from meloformer.train.export import export_model

    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    old = CorpusProfile("3/4", 90.0, (0, 0), ("3/4",), (0,))
    ckpt["profile"] = old.to_dict()
    trained = tmp_path / "trained.pt"
    torch.save(ckpt, trained)
    new = CorpusProfile("3/4", 90.0, (0, 0), ("3/4",), (0,), (((0, 0), (1, 2)),))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"profile": new.to_dict()}))
    for given, want in ((None, old), (meta, new)):
        export_model(trained, tmp_path / "out.pt", meta=given)
        got = torch.load(tmp_path / "out.pt", weights_only=True)["profile"]
        assert CorpusProfile.from_dict(got) == want
