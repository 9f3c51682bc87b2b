"""From scratch with two or more tracks, every bar asks for a typical note density
(GenerateConfig.scratch_density): a track is written before the model sees the tracks after
it, so unasked the first track of a piano duo played as a solo piano does. By default each
track asks its level in the training songs with the same instruments (the corpus profile)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from meloformer.data.profile import CorpusProfile
from meloformer.errors import ConfigError
from meloformer.generate.run import GenerateConfig, density_defaults, run_generate
from meloformer.hid import Vocab
from meloformer.hid.vocab import Family

VOCAB = Vocab()
MID = VOCAB.base(Family.DENSITY) + 2


PROFILE = CorpusProfile("4/4", 120.0, (0, 0), ("4/4",), (0, 33, 128),
                        track_density=(((0, 0), (1, 1)), ((128, 33, 0), (4, 1, 3))))


def test_every_bar_of_every_track_asks_the_level():
    cfg = GenerateConfig(instruments=(0, 33, 128), n_bars=16)
    got, line = density_defaults(cfg, {"controls": True, "infill": True})
    assert got.density == ("0:0-15=mid", "1:0-15=mid", "2:0-15=mid")  # no profile: mid
    assert "3 tracks" in line and "--scratch-density" in line
    # auto: each track (canonical order: drums, bass, piano) at its level in the profile,
    # whatever order the instruments were given in
    for given in ((0, 33, 128), (128, 0, 33)):
        got, line = density_defaults(replace(cfg, instruments=given), None, PROFILE)
        assert got.density == ("0:0-15=highest", "1:0-15=low", "2:0-15=high")
        assert "highest, low, high (the training songs with these instruments)" in line
    unknown, line = density_defaults(replace(cfg, instruments=(0, 40)), None, PROFILE)
    assert unknown.density == ("0:0-15=mid", "1:0-15=mid") and "too few" in line
    asked, _ = density_defaults(replace(cfg, scratch_density="high"), None, PROFILE)
    assert asked.density == ("0:0-15=high", "1:0-15=high", "2:0-15=high")  # the user's
    low, _ = density_defaults(GenerateConfig(instruments=(0, 0), n_bars=2,
                                             scratch_density="low"), None)
    assert low.density == ("0:0-1=low", "1:0-1=low")


@pytest.mark.parametrize("cfg, learned", [
    (GenerateConfig(instruments=(0,)), None),  # one track: nothing comes after it
    (GenerateConfig(instruments=(0, 0), density=("1:0-0=high",)), None),  # the user's own
    (GenerateConfig(instruments=(0, 0), scratch_density="free"), None),
    (GenerateConfig(instruments=(0, 0)), {"controls": False, "infill": True}),  # never learned
    (GenerateConfig(), None),  # the model picks the tracks: their count is not known
    (GenerateConfig(instruments=(0, 0), n_bars=None), None),  # the model ends the song
])
def test_no_density_is_asked(cfg, learned):
    assert density_defaults(cfg, learned) == (cfg, None)


def test_a_bad_level_names_the_field():
    with pytest.raises(ConfigError, match="scratch_density"):
        GenerateConfig(scratch_density="loud")


def density_cells(ids: np.ndarray) -> dict[tuple[int, int], int]:
    """(instrument track, bar) -> the DENSITY bin written there (the conductor has no BAR)."""
    cells, track, bar = {}, -1, -1
    for t in ids:
        fam = VOCAB.family_of[int(t)]
        if fam == Family.TRACK:
            track, bar = track + 1, -1
        elif fam == Family.BAR:
            bar += 1
        elif fam == Family.DENSITY:
            cells[(track, bar)] = int(t) - VOCAB.base(Family.DENSITY)
    return cells


def test_the_pipeline_asks_every_bar_and_says_so(tiny_checkpoint, tmp_path):
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["profile"] = CorpusProfile("4/4", 120.0, (0, 33), ("4/4",), (0, 33)).to_dict()
    path = tmp_path / "with-profile.pt"
    torch.save(ckpt, path)
    cfg = GenerateConfig(n_samples=2, n_bars=6, max_tokens=600, device="cpu", audio=False)

    def written(cfg: GenerateConfig, out: str) -> tuple[list[dict], list[str]]:
        lines: list[str] = []
        paths = run_generate(path, tmp_path / out, cfg, report=lines.append)
        return [density_cells(np.asarray(json.loads(Path(p["json"]).read_text())["ids"]))
                for p in paths], lines

    songs, lines = written(cfg, "mid")
    assert any("every bar at note density 'mid'" in line for line in lines)
    for cells in songs:
        assert cells == {(t, b): 2 for t in (0, 1) for b in range(6)}, cells
    # The oracle: the same model and seed with the rule off writes no density control.
    free, lines = written(dataclasses.replace(cfg, scratch_density="free"), "free")
    assert free == [{}, {}] and not any("note density" in line for line in lines)
    # A profile that knows the instrumentation: each track (bass, then piano) at its level.
    ckpt["profile"] = CorpusProfile("4/4", 120.0, (0, 33), ("4/4",), (0, 33),
                                    track_density=(((33, 0), (3, 1)),)).to_dict()
    torch.save(ckpt, path)
    songs, lines = written(cfg, "profile")
    assert any("every bar at note density high, low" in line for line in lines)
    for cells in songs:
        assert cells == {(t, b): (3, 1)[t] for t in (0, 1) for b in range(6)}, cells
