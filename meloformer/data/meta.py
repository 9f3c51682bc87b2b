"""The meta.json body of a preprocessed corpus, and the check that no file went missing."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from meloformer.data.config import SPLITS, PreprocessConfig
from meloformer.data.pool import PreprocessError
from meloformer.data.shards import FORMAT, SHARD_DIR, ShardKey, list_dtypes, songs_file
from meloformer.hid.vocab import VOCAB_VERSION, Vocab

STAT_COLUMNS = ["hash", "split", "n_tokens", "n_notes", "n_bars"]  # what totals are read from


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
) -> dict:
    """The meta.json body: vocabulary, config, dtypes, totals per split, error and shard.

    Args:
        cfg: the config the shards were built with.
        keys: the shards' keys, in shard order.
        songs: per shard, its STAT_COLUMNS; rejects: per shard, its rejects table.
        discovered: manifest rows.
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
        "shards": [
            {
                "file": f"{SHARD_DIR}/{songs_file(Path(), k.shard).name}",
                "songs": s.num_rows,
                "rejected": r.num_rows,
                "tokens": int(pc.sum(s.column("n_tokens")).as_py() or 0),
            }
            for k, s, r in zip(keys, songs, rejects, strict=True)
        ],
    }
