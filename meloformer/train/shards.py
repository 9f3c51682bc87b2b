"""Read training songs from parquet shards without loading the dataset: an index of
(file, row group, row, length) built from small columns, and a reader that fetches one row
group (memory-mapped) at a time and keeps a few in a small LRU cache."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from meloformer.data.shards import LIST_FIELDS, SHARD_DIR, songs_files
from meloformer.hid.encoding import Encoding

COUNT_FIELDS = ("n_bars", "n_tracks", "n_notes")


class ShardError(ValueError):
    """A shard directory or file is missing or malformed (the message names it)."""


@dataclass(frozen=True)
class SongIndex:
    """Where each song of one split lives. Arrays are aligned, one entry per song.

    Attributes:
        files: the songs files (shard-*.parquet), sorted.
        file, group, row: location of each song (file index, row group, row in the group).
        n_tokens: each song's token count.
    """

    files: tuple[Path, ...]
    file: np.ndarray
    group: np.ndarray
    row: np.ndarray
    n_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.n_tokens)


def song_files(data_dir: Path) -> list[Path]:
    """Songs files under `data_dir` (either the processed dir or its shards/ subdir)."""
    data_dir = Path(data_dir)
    shard_dir = data_dir / SHARD_DIR if (data_dir / SHARD_DIR).is_dir() else data_dir
    files = songs_files(shard_dir)
    if not files:
        raise ShardError(f"{data_dir}: no shard-*.parquet songs files")
    return files


def build_index(data_dir: Path, split: str = "train") -> SongIndex:
    """Index the songs of `split` (reads only the split and n_tokens columns).

    Raises:
        ShardError: no shards, a file lacking a column, or no song in the split.
    """
    files = song_files(data_dir)
    parts: list[np.ndarray] = []
    for f_idx, path in enumerate(files):
        pf = pq.ParquetFile(path, memory_map=True)
        missing = {"split", "n_tokens", *LIST_FIELDS} - set(pf.schema_arrow.names)
        if missing:
            raise ShardError(f"{path}: missing columns {sorted(missing)}")
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["split", "n_tokens"])
            rows = np.flatnonzero(t.column("split").to_numpy(zero_copy_only=False) == split)
            n = t.column("n_tokens").to_numpy()[rows]
            parts.append(np.stack([np.full_like(rows, f_idx), np.full_like(rows, g), rows, n]))
    table = np.concatenate(parts, axis=1) if parts else np.zeros((4, 0), np.int64)
    if table.shape[1] == 0:
        raise ShardError(f"{data_dir}: no song in split {split!r}")
    file, group, row, n_tokens = table.astype(np.int64)
    return SongIndex(tuple(files), file, group, row, n_tokens)


class ShardReader:
    """Fetches songs by index; caches the last `cache` row groups (decoded to numpy).

    One reader lives in each DataLoader worker; it is cheap to build and holds no open file.
    """

    def __init__(self, index: SongIndex, cache: int = 4) -> None:
        self.index, self.cache = index, cache
        self._groups: OrderedDict[tuple[int, int], dict[str, tuple]] = OrderedDict()

    def song(self, i: int) -> Encoding:
        """The Encoding of song `i` of the index."""
        ix = self.index
        cols = self._group(int(ix.file[i]), int(ix.group[i]))
        r = int(ix.row[i])
        arrays = {}
        for name in LIST_FIELDS:
            offsets, values = cols[name]
            arrays[name] = values[offsets[r] : offsets[r + 1]]
        counts = {name: int(cols[name][r]) for name in COUNT_FIELDS}
        return Encoding(**arrays, **counts)

    def _group(self, f: int, g: int) -> dict[str, tuple]:
        key = (f, g)
        if key in self._groups:
            self._groups.move_to_end(key)
            return self._groups[key]
        path = self.index.files[f]
        try:
            t = pq.ParquetFile(path, memory_map=True).read_row_group(
                g, columns=[*LIST_FIELDS, *COUNT_FIELDS]
            )
        except (OSError, KeyError) as e:
            raise ShardError(f"{path}: cannot read row group {g}: {e}") from e
        cols: dict[str, tuple] = {}
        for name in LIST_FIELDS:
            arr = t.column(name).combine_chunks()
            cols[name] = (arr.offsets.to_numpy(), arr.values.to_numpy())
        for name in COUNT_FIELDS:
            cols[name] = t.column(name).to_numpy()
        self._groups[key] = cols
        if len(self._groups) > self.cache:
            self._groups.popitem(last=False)
        return cols
