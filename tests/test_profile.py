"""The corpus profile: measured from the shards, carried by the checkpoint, and used by
generation from scratch (the data's meter, tempo and instruments; no unseen program)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from train_helpers import ALL_FIXTURES, FIXTURES, make_dataset

from meloformer.data.profile import CorpusProfile, corpus_profile, read_profile
from meloformer.data.shards import SHARD_DIR, songs_files
from meloformer.generate import Conditions, Request, SamplingConfig, generate
from meloformer.generate.run import GenerateConfig, run_generate
from meloformer.generate.script import from_scratch
from meloformer.hid import Vocab
from meloformer.hid.decode import parse_tokens
from meloformer.hid.encode import encode_file
from meloformer.hid.vocab import Family
from meloformer.model import MeloFormer, ModelConfig

VOCAB = Vocab()


def test_profile_reads_the_train_split(tmp_path):
    data = make_dataset(tmp_path, copies=2)
    got = corpus_profile(songs_files(data / SHARD_DIR), VOCAB)
    scores = [parse_tokens(encode_file(FIXTURES / f).ids, VOCAB) for f in ALL_FIXTURES]
    assert set(got.programs) == {p for s in scores for p in s.programs}
    assert set(got.instruments) <= set(got.programs) and got.meter in got.meters
    assert 24 <= got.tempo <= 320
    assert CorpusProfile.from_dict(json.loads(json.dumps(got.to_dict()))) == got
    (data / "meta.json").write_text(json.dumps({"profile": got.to_dict()}))
    assert read_profile(data / "meta.json") == got


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
