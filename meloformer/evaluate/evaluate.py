"""The evaluate stage: validation loss/perplexity of a checkpoint, and the music metrics of
the generated samples beside those of the real validation songs (each with their gap)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from meloformer.data import (
    ShardError,
    ShardReader,
    build_index,
    crop,
    meta_path,
    read_control_bins,
    read_pitch_ranges,
)
from meloformer.device import PRECISIONS, autocast_dtype, resolve_device, use_cpu_threads
from meloformer.errors import check
from meloformer.evaluate.continuation import continuation_metrics
from meloformer.evaluate.loss import family_loss
from meloformer.evaluate.memorisation import memorised_share, train_span_keys
from meloformer.evaluate.metrics import SONG_METRICS, Piece, PitchRanges, out_of_range_share
from meloformer.evaluate.similarity import similarity_curve, similarity_error
from meloformer.evaluate.steering import steering_report
from meloformer.generate import read_sample_ids
from meloformer.hid import Encoding, Score, Vocab, parse_tokens
from meloformer.io import write_json
from meloformer.train import check_corpus, load_trained

STEERING_SONGS = 16  # val songs of the steering report: 16 spans x 4 bars = 64 bars a level


@dataclass(frozen=True)
class EvaluateConfig:
    """The `evaluate:` params section."""

    max_songs: int = 64
    """Validation songs read: a seeded subset spread over the whole split (spread_subset)."""
    max_tokens: int = 2048
    """Longer songs are cropped to a bar window of this many tokens (seeded)."""
    batch_size: int = 4
    """Songs per validation forward pass."""
    max_distance: int = 16
    """Bar distances 1..T of the similarity curve and error."""
    seed: int = 0
    """Draws the validation subset and the crop windows."""
    device: str = "auto"
    """auto = cuda when available, else cpu."""
    precision: str = "auto"
    """Autocast of the validation forward passes, as training's (meloformer.device)."""

    def __post_init__(self) -> None:
        # ConfigError names the field ("evaluate.max_songs" in params, "--max-songs" on the CLI)
        for name in ("max_songs", "max_tokens", "batch_size", "max_distance"):
            check(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        check("precision", self.precision, self.precision in PRECISIONS,
              f"must be one of {list(PRECISIONS)}")


def music_metrics(real: Sequence[Score], generated: Sequence[Score], vocab: Vocab,
                  max_distance: int, ranges: PitchRanges | None = None) -> tuple[dict, dict]:
    """Every song metric's mean over each set and the gap |generated - real| (with `ranges`,
    the out-of-range share too); the similarity error; and the similarity curves.

    Returns:
        (metrics, curves): metrics = {name: {"real", "generated", "gap"}, ...,
        "similarity_error": float}; curves = {"real": [L_t], "generated": [L_t]}.
    """
    out: dict = {}
    for name, fn in song_metrics(ranges).items():
        means = [_nanmean(fn(Piece.from_score(s, vocab)) for s in songs)
                 for songs in (real, generated)]
        out[name] = {"real": means[0], "generated": means[1], "gap": abs(means[1] - means[0])}
    curves = {"real": similarity_curve(real, max_distance),
              "generated": similarity_curve(generated, max_distance)}
    out["similarity_error"] = similarity_error(curves["real"], curves["generated"])
    return out, {k: v.tolist() for k, v in curves.items()}


def same_instruments(real: Sequence[Score], generated: Sequence[Score], vocab: Vocab,
                     max_distance: int, ranges: PitchRanges | None = None) -> dict | None:
    """music_metrics against only the real songs whose instruments (sorted programs) are the
    generated songs' own, when the generated songs share one instrumentation and some real
    song has it: {"programs", "n_real", **metrics}; None otherwise.

    Samples of one instrumentation set against every val song measure the val set's mix, not
    the samples (three-piano samples against a band song and a drum fill)."""
    sets = {tuple(sorted(s.programs)) for s in generated}
    if len(sets) != 1:
        return None
    (programs,) = sets
    same = [s for s in real if tuple(sorted(s.programs)) == programs]
    if not same:
        return None
    music, _ = music_metrics(same, generated, vocab, max_distance, ranges)
    return {"programs": list(programs), "n_real": len(same), **music}


def song_metrics(ranges: PitchRanges | None) -> dict:
    """SONG_METRICS, plus out_of_range_share when the training pitch ranges are known."""
    if not ranges:
        return dict(SONG_METRICS)
    return {**SONG_METRICS, "out_of_range_share": partial(out_of_range_share, ranges=ranges)}


def per_sample(files: Sequence[Path], generated: Sequence[Score], vocab: Vocab,
               ranges: PitchRanges | None) -> list[dict]:
    """Each sample's end-of-song and range metrics (samples.json): last_bar_ratio,
    held_past_end and, with ranges, out_of_range_share."""
    names = ("last_bar_ratio", "held_past_end", "out_of_range_share")
    fns = {k: v for k, v in song_metrics(ranges).items() if k in names}
    return [{"sample": f.name, **{k: fn(Piece.from_score(s, vocab)) for k, fn in fns.items()}}
            for f, s in zip(files, generated, strict=True)]


def validation_songs(processed: Path, max_songs: int, seed: int = 0) -> list[Encoding]:
    """`max_songs` songs of the val split, drawn by `spread_subset` (seeded, spanning the
    whole split, not its first files: on a real corpus those are one source folder)."""
    index = build_index(processed, split="val")
    reader = ShardReader(index)
    return [reader.song(int(i)) for i in spread_subset(len(index), max_songs, seed)]


def spread_subset(n: int, k: int, seed: int) -> np.ndarray:
    """k of the indices 0..n-1 (all of them if k >= n), ascending: one drawn uniformly from
    each of k equal strata of the range, so the subset covers the whole split evenly."""
    if k >= n:
        return np.arange(n)
    edges = np.ceil(np.linspace(0, n, k + 1)).astype(np.int64)  # n > k: every stratum >= 1
    lo, width = edges[:-1], np.diff(edges)
    return lo + (np.random.default_rng(seed).random(k) * width).astype(np.int64)


def cropped(songs: Sequence[Encoding], max_tokens: int, seed: int) -> list[Encoding]:
    """Each song cut to a bar window of at most max_tokens tokens (as training crops)."""
    rng = np.random.default_rng(seed)
    return [crop(song, max_tokens, rng) for song in songs]


def evaluate(checkpoint: Path, processed: Path, samples: Path, out: Path,
             cfg: EvaluateConfig, steering: Sequence[str] = (),
             train_keys: set[int] | None = None) -> dict:
    """Write <out>/eval.json (DVC metrics) and <out>/plots/*.json (DVC plots).

    Args:
        checkpoint: the trained checkpoint.
        processed: the preprocessed data dir (shards with a val split).
        samples: the generate stage's output dir (sample-*.json).
        out: the metrics dir.
        steering: control kinds ("density", "polyphony") whose steering report
            (evaluate/steering.py) goes into eval.json; the pipeline asks for the kinds
            generate.density / generate.polyphony use.
        train_keys: the train split's span hashes (train_span_keys), for a caller that
            evaluates several sample sets of one corpus; None: read from `processed`.

    Returns:
        The metrics written to eval.json (per-sample end and range metrics go to
        <out>/samples.json); `music` against every val song read, and, when the samples
        share one instrumentation that some of those songs have, `music_same_instruments`
        against those alone (`same_instruments`).
    """
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        use_cpu_threads()
    model, record = load_trained(checkpoint, device)
    check_corpus(record, processed)  # the checkpoint's vocabulary, never params
    vocab = record.vocab()
    files = sample_files(samples)  # fail before the slow part
    songs = validation_songs(processed, cfg.max_songs, cfg.seed)
    loss = family_loss(model, cropped(songs, cfg.max_tokens, cfg.seed), vocab.family_of,
                       cfg.batch_size, autocast_dtype(cfg.precision, device))
    real = [parse_tokens(s.ids, vocab) for s in songs]
    generated = [parse_tokens(read_sample_ids(p), vocab) for p in files]
    meta = meta_path(processed)
    ranges = read_pitch_ranges(meta) if meta.exists() else {}
    music, curves = music_metrics(real, generated, vocab, cfg.max_distance, ranges)
    prompts = [prompt_bars(p) for p in files]
    if train_keys is None:
        train_keys = train_span_keys(processed, vocab)
    metrics = {"loss": loss, "music": music, "n_real": len(real), "n_generated": len(generated),
               "memorised": memorised_share(generated, train_keys, prompts),
               "continuation": continuation_metrics(generated, prompts)}
    alike = same_instruments(real, generated, vocab, cfg.max_distance, ranges)
    if alike is not None:
        metrics["music_same_instruments"] = alike
    if steering:
        metrics["steering"] = _steering(model, vocab, processed, songs, steering, cfg.seed)
    write_json(Path(out) / "eval.json", _finite(metrics))
    write_json(Path(out) / "samples.json", _finite(per_sample(files, generated, vocab, ranges)))
    write_plots(Path(out) / "plots", loss, curves)
    return metrics


def summary_line(loss: float, perplexity: float, bits_per_note: float,
                 similarity_error: float | None) -> str:
    """The evaluation's headline, each figure to the digits that mean something: loss to 1e-4
    nats (what separates two runs), perplexity and bits/note to 0.01, the similarity error
    (a mean gap of two curves in [0, 1]) to 0.001; "not measured" when the samples and the
    validation songs share no bar distance (NaN or None)."""
    unmeasured = similarity_error is None or np.isnan(similarity_error)
    similarity = "not measured" if unmeasured else f"{similarity_error:.3f}"
    return (f"val loss {loss:.4f}, perplexity {perplexity:.2f}, {bits_per_note:.2f} bits/note, "
            f"similarity error {similarity}")


def _steering(model, vocab: Vocab, processed: Path, songs: Sequence[Encoding],
              kinds: Sequence[str], seed: int) -> dict:
    """The steering report on up to STEERING_SONGS val songs (1024-token windows)."""
    bins = read_control_bins(meta_path(processed))
    if bins is None:
        raise ShardError(f"{meta_path(processed)}: no control_bins: rerun preprocess")
    windows = cropped(songs[:STEERING_SONGS], 1024, seed)
    return steering_report(model, vocab, bins, windows, kinds, seed=seed)


def prompt_bars(sample: Path) -> int | None:
    """The prompt bars a sample continued (its JSON's mode), None unless it is a
    continuation of a known number of prompt bars."""
    mode = json.loads(Path(sample).read_text()).get("mode", {})
    plain = mode.get("prompt") and mode.get("add_program") is None and not mode.get("infill")
    return int(mode["prompt_bars"]) if plain and mode.get("prompt_bars") else None


def sample_files(samples: Path) -> list[Path]:
    """The sample JSONs of a generate output dir.

    Raises:
        FileNotFoundError: none there (the message names the dir).
    """
    files = sorted(Path(samples).glob("sample-*.json"))
    if not files:
        raise FileNotFoundError(f"{samples}: no sample-*.json (run the generate stage first)")
    return files


def write_plots(plots: Path, loss: dict, curves: dict) -> None:
    """similarity.json (L_t by distance, real vs generated) and family_loss.json."""
    rows = [{"distance": t + 1, "real": r, "generated": g}
            for t, (r, g) in enumerate(zip(curves["real"], curves["generated"], strict=True))]
    write_json(plots / "similarity.json", _finite(rows))
    fams = [{"family": k, "loss": v["loss"]} for k, v in loss["by_family"].items()]
    write_json(plots / "family_loss.json", _finite(fams))


def _nanmean(values: Iterable[float]) -> float:
    arr = np.array(list(values), dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def _finite(obj):
    """NaN -> None, so the JSON stays standard (DVC and browsers reject NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
