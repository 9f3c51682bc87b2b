"""KV-cache decoding of the infill layout == the full forward pass (fp32): the decoder finds
the fill cells and their summaries step by step as find_cells does in a batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generate_cache import TINY, cached_logits, fixture_song

from meloformer.hid.infill import Span, infill_layout
from meloformer.hid.vocab import Vocab
from meloformer.model import Batch, MeloFormer, ModelConfig

VOCAB = Vocab()


@pytest.mark.parametrize(
    "options, static",
    [({}, False), ({}, True), ({"summary_track_history": True, "cross_window": 2}, False)],
    ids=["default", "static-shapes", "history+wide"],
)
def test_cached_infill_decoding_matches_full_forward(options, static):
    # Two real multitrack songs, one span each (several bars; one in the last track), the
    # prompt prefilled up to a few tokens before the fills, the fills decoded token by token.
    songs = [
        infill_layout(fixture_song("miditok_multitrack_drums", 4), [Span(1, 1, 2)], VOCAB),
        infill_layout(fixture_song("freedoom_E1M8_3-4", 5), [Span(0, 0, 0), Span(5, 2, 4)], VOCAB),
    ]
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(**TINY, **options)).eval()
    for song in songs:
        first_fill = int(np.flatnonzero(song.ids == VOCAB.index["FILL_START"])[0])
        with torch.no_grad():
            full = model(Batch.from_encodings([[song]]))
        cached = cached_logits(model, [song], prefill=first_fill - 5, static=static)
        torch.testing.assert_close(cached, full, atol=2e-5, rtol=1e-4)


# -- the infill mode end to end ----------------------------------------------------------------

SAMPLE_FILES = ["pop909/001.mid", "freedoom/freedoom1_D_E1M6.mid"]


def _outside(song, cells):
    """The song's tokens outside the given (HID track, bar) cells' content, as one array
    (ids and every metadata field); a cell's opener stays (it is BAR in the plain layout)."""
    key = song.track.astype(np.int64) * (1 << 20) + song.bar
    inside = np.isin(key, [t * (1 << 20) + b for t, b in cells])
    inside &= (song.type > 2) & (song.ids != 2)  # not the opener, header or EOS
    cols = [song.ids, song.track, song.bar, song.type, song.pos, song.program]
    return np.stack([c[~inside].astype(np.int64) for c in cols])


def _sample_song(name: str, bars: int):
    from conftest import REPO

    from meloformer.generate.script import first_bars
    from meloformer.hid.encode import encode_file

    path = REPO / "data" / "raw" / "sample" / name
    if not path.exists():
        pytest.skip(f"{path} not in the bundled sample")
    song = encode_file(path)
    return first_bars(song, min(bars, song.n_bars))


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_infill_rewrites_only_the_spans(name):
    from meloformer.generate.conditions import Conditions
    from meloformer.generate.generate import Request, generate
    from meloformer.generate.sampling import SamplingConfig
    from meloformer.generate.script import infill
    from meloformer.hid.decode import parse_tokens
    from meloformer.hid.infill import fill_cells, restore

    torch.set_num_threads(1)
    given = _sample_song(name, 8)
    spans = [Span(0, 2, 3), Span(given.n_tracks - 1, 5, 5)]
    script = infill(VOCAB, given, spans)
    torch.manual_seed(0)
    model = MeloFormer(ModelConfig(**TINY)).eval()
    req = Request(script, Conditions(n_bars=None, max_tokens=len(given) + 400),
                  SamplingConfig(seed=3), n_samples=2)
    for out in generate(model, VOCAB, req):
        assert out.ids[: len(script[0].tokens)].tolist() == list(script[0].tokens)
        plain = restore(out, VOCAB)
        cells = fill_cells(spans)
        got, want = _outside(plain, cells), _outside(given, cells)
        assert got.shape == want.shape and np.array_equal(got, want)
        score = parse_tokens(plain.ids, VOCAB)  # decodes; the spans hold what was sampled
        assert score.n_bars == given.n_bars and score.programs == parse_tokens(
            given.ids, VOCAB).programs


def test_cli_infill_writes_the_song_with_the_spans_rewritten(tiny_checkpoint, tmp_path):
    import json

    from meloformer.generate.__main__ import main
    from meloformer.generate.output import read_sample_ids
    from meloformer.hid.decode import decode
    from meloformer.hid.encode import encode_file
    from meloformer.hid.grammar import GrammarState
    from meloformer.hid.infill import fill_cells
    from meloformer.hid.song import Encoding

    torch.set_num_threads(1)
    prompt = tmp_path / "song.mid"
    decode(_sample_song(SAMPLE_FILES[0], 6).ids, VOCAB).save(prompt)
    given = encode_file(prompt)
    main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "out"), "--prompt",
          str(prompt), "--infill", "1:2-3", "--infill", "0:0", "--device", "cpu",
          "--max-tokens", str(len(given) + 300)])
    stem = tmp_path / "out" / "sample-000"
    ids = np.array(read_sample_ids(stem.with_suffix(".json")))
    record = json.loads(stem.with_suffix(".json").read_text())
    assert record["config"]["infill"] == ["1:2-3", "0:0"]
    assert VOCAB.index["FILL"] not in ids.tolist()  # written in plain layout
    # The tokens (with the grammar's metadata) outside the spans are the prompt's own. (The
    # MIDI re-encodes with other chord labels: the conductor's chords come from the notes.)
    state = GrammarState(VOCAB)
    meta = np.array([state.step(int(t)) for t in ids]).T
    out = Encoding(ids, *meta, n_bars=given.n_bars, n_tracks=given.n_tracks, n_notes=0)
    cells = fill_cells([Span(1, 2, 3), Span(0, 0, 0)])
    assert np.array_equal(_outside(out, cells), _outside(given, cells))
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "span, message",
    [("9:0-1", "infill span 9:0-1: the song has"), ("0:50-51", "bars (0..5)")],
)
def test_cli_infill_errors_name_the_span(tiny_checkpoint, tmp_path, capsys, span, message):
    from meloformer.generate.__main__ import main
    from meloformer.hid.decode import decode

    prompt = tmp_path / "song.mid"
    decode(_sample_song(SAMPLE_FILES[0], 6).ids, VOCAB).save(prompt)
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--prompt",
              str(prompt), "--infill", span, "--device", "cpu"])
    assert exc.value.code != 0
    assert message in capsys.readouterr().err + str(exc.value)
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o"), "--prompt",
              str(prompt), "--infill", "bass:1-2"])
    assert exc.value.code == 2  # argparse: a malformed span


def test_pianoroll_marks_must_lie_in_the_song(tmp_path):
    from meloformer.generate.pianoroll import plot_pianoroll
    from meloformer.hid.decode import parse_tokens

    score = parse_tokens(_sample_song(SAMPLE_FILES[0], 4).ids, VOCAB)
    path = plot_pianoroll(score, 12, tmp_path / "a.png", marks=[(1, 0, 3)])
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="mark 1:2-4 outside the song"):
        plot_pianoroll(score, 12, tmp_path / "b.png", marks=[(1, 2, 4)])


def test_params_section_expresses_infill(tiny_checkpoint, tmp_path):
    """generate.prompt + generate.infill (the pipeline's route: no CLI mode arguments)."""
    import json

    from meloformer.generate.run import GenerateConfig, run_generate
    from meloformer.hid.decode import decode

    torch.set_num_threads(1)
    prompt = tmp_path / "song.mid"
    song = _sample_song(SAMPLE_FILES[0], 5)
    decode(song.ids, VOCAB).save(prompt)
    cfg = GenerateConfig(n_samples=1, prompt=str(prompt), infill=("0:1-2",),
                         max_tokens=len(song) + 300, device="cpu")
    (paths,) = run_generate(tiny_checkpoint, tmp_path / "out", cfg)
    record = json.loads(paths["json"].read_text())
    assert record["config"]["infill"] == ["0:1-2"] and record["n_bars"] == 5
    with pytest.raises(ValueError, match="infill span"):
        GenerateConfig(infill=("0-1",))
    with pytest.raises(ValueError, match="needs a prompt"):
        run_generate(tiny_checkpoint, tmp_path / "o2", GenerateConfig(infill=("0:1",)))
