"""The meta.json body of a preprocessed corpus, and the check that no file went missing."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meloformer.data.config import SPLITS, PreprocessConfig
from meloformer.data.pool import PreprocessError
from meloformer.data.shards import (
    FORMAT,
    META_FILE,
    SHARD_DIR,
    ShardKey,
    file_sha256,
    list_dtypes,
    songs_file,
)
from meloformer.hid import VOCAB_VERSION, Family, Vocab

STAT_COLUMNS = ["hash", "split", "n_tokens", "n_notes", "n_bars"]  # what totals are read from
RANGE_QUANTILE = 0.005  # pitch_ranges: the lowest and highest 0.5 % of a program's notes are out
RANGE_MIN_NOTES = 50  # programs with fewer training notes get no range


def meta_path(data_dir: Path) -> Path:
    """meta.json of a processed dir (`data_dir` may also be its shards/ subdir)."""
    data_dir = Path(data_dir)
    root = data_dir.parent if data_dir.name == SHARD_DIR else data_dir
    return root / META_FILE


def check_accounted(manifest: pd.DataFrame, songs: list[pa.Table], rejects: pa.Table) -> None:
    """ok + rejected == discovered, and each manifest hash appears exactly once among them."""
    seen = [h for t in songs for h in t.column("hash").to_pylist()]
    seen += rejects.column("hash").to_pylist()
    expected = manifest["hash"].tolist()
    if len(seen) != len(expected) or set(seen) != set(expected):
        lost = sorted(set(expected) - set(seen))[:5]
        raise PreprocessError(
            f"songs + rejects = {len(seen)} rows but the manifest has {len(expected)}; "
            f"unaccounted hashes (first 5): {lost}"
        )


def build_meta(
    cfg: PreprocessConfig,
    keys: list[ShardKey],
    songs: list[pa.Table],
    rejects: list[pa.Table],
    discovered: int,
    ranges: dict[str, list[int]] | None = None,
    shard_dir: Path | None = None,
) -> dict:
    """The meta.json body: vocabulary, config, dtypes, totals per split, error and shard.

    Args:
        cfg: the config the shards were built with.
        keys: the shards' keys, in shard order.
        songs: per shard, its STAT_COLUMNS; rejects: per shard, its rejects table.
        discovered: manifest rows.
        ranges: pitch_ranges of the train split (evaluation's out-of-range share).
        shard_dir: where the songs files are; given, each shard entry records its file's
            sha256 (shards.verify_shards checks it before training or evaluation).
    """
    vocab = Vocab(cfg.hid)
    stats = pa.concat_tables(songs).to_pandas() if songs else pd.DataFrame(columns=STAT_COLUMNS)
    errors = pd.concat([r.to_pandas() for r in rejects]) if rejects else pd.DataFrame()
    by_error = errors["error"].value_counts().sort_index() if len(errors) else pd.Series()
    split_rows = stats.groupby("split")["n_tokens"].agg(["count", "sum"])
    return {
        "format": FORMAT,
        "vocab": {"version": VOCAB_VERSION, "hash": vocab.hash, "size": len(vocab)},
        "config_hash": cfg.content_hash(),
        "codec_hash": keys[0].codec_hash if keys else None,
        "hid": asdict(cfg.hid),
        "shard_size": cfg.shard_size,
        "timeout_s": cfg.timeout_s,
        "dtypes": {k: str(v) for k, v in list_dtypes(cfg.hid).items()},
        "totals": {
            "discovered": discovered,
            "ok": len(stats),
            "rejected": len(errors),
            "tokens": int(stats["n_tokens"].sum()),
            "notes": int(stats["n_notes"].sum()),
            "bars": int(stats["n_bars"].sum()),
        },
        "splits": {
            s: {
                "songs": int(split_rows["count"].get(s, 0)),
                "tokens": int(split_rows["sum"].get(s, 0)),
            }
            for s in SPLITS
        },
        "rejected_by_error": {str(k): int(v) for k, v in by_error.items()},
        "pitch_ranges": ranges or {},
        "shards": [
            {
                "file": f"{SHARD_DIR}/{songs_file(Path(), k.shard).name}",
                "songs": s.num_rows,
                "rejected": r.num_rows,
                "tokens": int(pc.sum(s.column("n_tokens")).as_py() or 0),
                **({"sha256": file_sha256(songs_file(shard_dir, k.shard))} if shard_dir else {}),
            }
            for k, s, r in zip(keys, songs, rejects, strict=True)
        ],
    }


def pitch_histogram(files: list[Path], vocab: Vocab, split: str = "train") -> np.ndarray:
    """Notes per (program, pitch) over the songs of `split`, int64 [130, 128] (row 128 drums,
    129 unused), read one row group at a time."""
    hist = np.zeros(130 * 128, dtype=np.int64)
    is_pitch = vocab.family_of == Family.PITCH
    for path in files:
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["split", "ids", "program"])
            t = t.filter(pc.equal(t.column("split"), split))
            if t.num_rows == 0:
                continue
            ids = pc.list_flatten(t.column("ids")).to_numpy().astype(np.int64)
            program = pc.list_flatten(t.column("program")).to_numpy().astype(np.int64)
            keep = is_pitch[ids]
            cells = program[keep] * 128 + vocab.value_of[ids[keep]].astype(np.int64)
            hist += np.bincount(cells, minlength=hist.size)[: hist.size]
    return hist.reshape(130, 128)


def pitch_ranges(hist: np.ndarray) -> dict[str, list[int]]:
    """meta.json `pitch_ranges`: per program with >= RANGE_MIN_NOTES training notes,
    [lowest, highest, notes], the pitches at the RANGE_QUANTILE and 1 - RANGE_QUANTILE
    quantiles of its notes (so about 1 % of real notes fall outside)."""
    out = {}
    for program, row in enumerate(hist[:129]):
        total = int(row.sum())
        if total < RANGE_MIN_NOTES:
            continue
        cum = np.cumsum(row)
        lo = int(np.searchsorted(cum, RANGE_QUANTILE * total, side="right"))
        hi = int(np.searchsorted(cum, (1 - RANGE_QUANTILE) * total, side="left"))
        out[str(program)] = [lo, hi, total]
    return out


def read_pitch_ranges(meta_path: Path) -> dict[int, tuple[int, int]]:
    """{program: (lowest, highest)} from a meta.json; empty if it has no `pitch_ranges`
    (a corpus preprocessed before they were recorded)."""
    meta = json.loads(Path(meta_path).read_text())
    return {int(k): (v[0], v[1]) for k, v in meta.get("pitch_ranges", {}).items()}
