"""The manifest: one row per unique MIDI file (path, size, hash, split), as a parquet file.

Rows are sorted by path. `path` is relative to the directory the stages run in (the repo root
under DVC) when the file lies below it, absolute otherwise. Shards are cut from this row order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from meloformer.data.config import SPLITS
from meloformer.errors import UserError
from meloformer.io import atomic_path

MANIFEST_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("hash", pa.string()),  # sha256 of the file's bytes, 64 hex digits
        ("split", pa.string()),
    ]
)


class ManifestError(UserError, ValueError):
    """A manifest file that is missing columns or holds impossible values."""


def write_manifest(manifest: pd.DataFrame, path: Path) -> None:
    """Atomically write the manifest (columns of MANIFEST_SCHEMA, rows as given)."""
    table = pa.Table.from_pandas(manifest, schema=MANIFEST_SCHEMA, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_manifest(path: Path) -> pd.DataFrame:
    """Read and check a manifest.

    Raises:
        ManifestError: naming the file and the field that is wrong.
    """
    table = pq.read_table(path)
    missing = set(MANIFEST_SCHEMA.names) - set(table.column_names)
    if missing:
        raise ManifestError(f"{path}: missing columns {sorted(missing)}")
    df = table.select(MANIFEST_SCHEMA.names).to_pandas()
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise ManifestError(f"{path}: unknown split values {bad_split}")
    if df["hash"].duplicated().any():
        raise ManifestError(f"{path}: duplicate hashes (discover deduplicates by content)")
    return df
