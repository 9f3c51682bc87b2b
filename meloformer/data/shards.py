"""Shard files: the on-disk layout of preprocessed songs (the one module that knows it).

    <out>/shards/shard-00000.parquet          one row per encoded song, in manifest order
    <out>/shards/shard-00000.rejects.parquet  one row per rejected file: path, hash, error,
                                              message, content (a `duplicate`'s token hash)

Both files carry the same ShardKey in their parquet metadata. The rejects file is written
first and the songs file last (each atomically), so a shard is complete exactly when both exist
with the expected key; anything else is rebuilt. <out>/meta.json (written by finalize, see
meta.py) records each songs file's sha256; `build_index`, which training and evaluation go
through, refuses a songs file whose bytes no longer match it.

The reader sits beside the writer: `build_index` indexes one split from the small columns
(file, row group, row, length) without loading the dataset, and `ShardReader` fetches songs one
row group (memory-mapped) at a time, keeping a few in a small LRU cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from meloformer.errors import UserError
from meloformer.hid import GLOBAL_PROGRAM, META_FIELDS, Encoding, HIDConfig, Vocab
from meloformer.io import atomic_path, temp_files, temp_path

SHARD_DIR = "shards"
META_FILE = "meta.json"  # beside shards/ in a processed dir
FORMAT = "meloformer-shard-2"  # 2: token-hash `content` columns (content dedup)
LIST_FIELDS = ("ids", *META_FIELDS)
ROW_GROUP_SONGS = 256  # songs per parquet row group: the unit a training reader fetches
_KEY = b"meloformer"

REJECT_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("hash", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
        ("content", pa.string()),  # token hash of a `duplicate` reject; null for the others
    ]
)


@dataclass(frozen=True)
class ShardKey:
    """Everything a shard's bytes depend on; a shard whose stored key differs is rebuilt.

    Attributes:
        shard: shard index (rows shard*shard_size … of the manifest).
        config_hash: PreprocessConfig.content_hash().
        codec_hash: fingerprint of the codec's source (meloformer/hid).
        vocab_hash: Vocab.hash of the HID config.
        inputs_hash: hash of the shard's manifest rows (path, hash, split).
    """

    shard: int
    config_hash: str
    codec_hash: str
    vocab_hash: str
    inputs_hash: str

    def metadata(self) -> dict[bytes, bytes]:
        """The key as parquet key-value metadata."""
        return {_KEY: json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True).encode()}


def inputs_hash(rows: Sequence[tuple[str, str, str]]) -> str:
    """Hash of a shard's (path, hash, split) rows, in order."""
    h = hashlib.sha256()
    for row in rows:
        h.update("\0".join(row).encode() + b"\n")
    return h.hexdigest()[:16]


def shard_name(shard: int) -> str:
    """Stem shared by a shard's files: shard-00042."""
    return f"shard-{shard:05d}"


def songs_file(shard_dir: Path, shard: int) -> Path:
    return Path(shard_dir) / f"{shard_name(shard)}.parquet"


def rejects_file(shard_dir: Path, shard: int) -> Path:
    return Path(shard_dir) / f"{shard_name(shard)}.rejects.parquet"


def songs_files(shard_dir: Path) -> list[Path]:
    """Every songs file in shard_dir, in shard order (rejects and temp files excluded)."""
    return sorted(Path(shard_dir).glob("shard-*[0-9].parquet"))


def shard_of(path: Path) -> int:
    """Shard index from a shard file name (songs or rejects)."""
    return int(Path(path).name.split(".")[0].split("-")[1])


def narrow_uint(max_value: int) -> pa.DataType:
    """The narrowest unsigned integer type holding 0..max_value."""
    for dtype in (pa.uint8(), pa.uint16(), pa.uint32()):
        if max_value <= np.iinfo(dtype.to_pandas_dtype()).max:
            return dtype
    return pa.uint64()


def list_dtypes(hid: HIDConfig) -> dict[str, pa.DataType]:
    """Element type of each list column, from the bounds the HID config puts on its values."""
    return {
        "ids": narrow_uint(len(Vocab(hid)) - 1),
        "track": narrow_uint(hid.max_tracks),  # 0 = conductor, 1..max_tracks instruments
        "bar": narrow_uint(hid.max_bars - 1),
        "type": pa.uint8(),
        "pos": narrow_uint(hid.max_positions - 1),
        "program": narrow_uint(GLOBAL_PROGRAM),
    }


def song_schema(hid: HIDConfig) -> pa.Schema:
    """Columns of a songs file: identity, the token and metadata lists, per-song counts."""
    lists = [(name, pa.list_(dtype)) for name, dtype in list_dtypes(hid).items()]
    counts = [
        ("n_tokens", pa.int32()),
        ("n_bars", pa.int32()),
        ("n_tracks", pa.int16()),
        ("n_notes", pa.int32()),
    ]
    ident = [("path", pa.string()), ("hash", pa.string()), ("split", pa.string()),
             ("content", pa.string())]  # content: content_hash(ids), for dedup
    return pa.schema(ident + lists + counts)


def read_key(path: Path) -> ShardKey | None:
    """The ShardKey stored in a shard file, or None if the file is missing or not a shard."""
    try:
        meta = pq.read_schema(path).metadata or {}
        fields = json.loads(meta[_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    if fields.pop("format", None) != FORMAT:
        return None
    return ShardKey(**fields)


def is_complete(shard_dir: Path, key: ShardKey) -> bool:
    """True when both files of shard `key.shard` exist and were built for exactly `key`."""
    songs, rejects = songs_file(shard_dir, key.shard), rejects_file(shard_dir, key.shard)
    return read_key(rejects) == key and read_key(songs) == key


def sweep_temp(shard_dir: Path, shard: int | None = None) -> list[Path]:
    """Delete temp files left by killed writers (of one shard, or of all); return them."""
    shards = [shard] if shard is not None else sorted({shard_of(p) for p in _all_temp(shard_dir)})
    gone = []
    for k in shards:
        for target in (songs_file(shard_dir, k), rejects_file(shard_dir, k)):
            for tmp in temp_files(target):
                tmp.unlink(missing_ok=True)
                gone.append(tmp)
    return gone


def _all_temp(shard_dir: Path) -> list[Path]:
    return sorted(Path(shard_dir).glob("shard-*.tmp"))


def content_hash(ids: np.ndarray) -> str:
    """Hash of a song's token ids (as little-endian int32): equal exactly for equal tokens."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i4").tobytes()).hexdigest()[:32]


def write_rejects(shard_dir: Path, key: ShardKey, rows: Sequence[tuple[str, ...]]) -> None:
    """Atomically write a shard's rejects file: rows of (path, hash, error, message)."""
    rows = [(*r, None) for r in rows]  # `content` is for duplicates, decided at finalize
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in REJECT_SCHEMA]
    table = pa.Table.from_arrays([pa.array(c, pa.string()) for c in cols], schema=REJECT_SCHEMA)
    with atomic_path(rejects_file(shard_dir, key.shard)) as tmp:
        pq.write_table(table.replace_schema_metadata(key.metadata()), tmp, compression="zstd")


class SongWriter:
    """Streams a shard's songs into a temp parquet file; `commit()` makes it the shard.

    Memory stays bounded by ROW_GROUP_SONGS songs whatever the shard size.

    Args:
        shard_dir: the shards directory.
        key: stored in the file's metadata.
        hid: gives the narrow list element types.
    """

    def __init__(self, shard_dir: Path, key: ShardKey, hid: HIDConfig) -> None:
        self.target = songs_file(shard_dir, key.shard)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.target)
        self.schema = song_schema(hid).with_metadata(key.metadata())
        self.dtypes = {k: v.to_pandas_dtype() for k, v in list_dtypes(hid).items()}
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.rows: list[tuple[str, str, str, Encoding]] = []

    def add(self, path: str, digest: str, split: str, enc: Encoding) -> None:
        """Queue one song.

        Raises:
            ValueError: a metadata value does not fit its column type (a codec bug), or an
                array's length differs from the token count.
        """
        for name in LIST_FIELDS:
            arr = getattr(enc, name)
            if len(arr) != len(enc.ids):
                raise ValueError(f"{name} has {len(arr)} values for {len(enc.ids)} tokens")
            info = np.iinfo(self.dtypes[name])
            if len(arr) and (arr.min() < info.min or arr.max() > info.max):
                raise ValueError(f"{name} values {arr.min()}..{arr.max()} do not fit {info.dtype}")
        self.rows.append((path, digest, split, enc))
        if len(self.rows) >= ROW_GROUP_SONGS:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        paths, digests, splits, encs = zip(*self.rows, strict=True)
        cols = {"path": pa.array(paths), "hash": pa.array(digests), "split": pa.array(splits),
                "content": pa.array([content_hash(e.ids) for e in encs], pa.string())}
        for name, dtype in self.dtypes.items():
            cols[name] = _list_array([getattr(e, name) for e in encs], dtype)
        cols["n_tokens"] = pa.array([len(e.ids) for e in encs], pa.int32())
        cols["n_bars"] = pa.array([e.n_bars for e in encs], pa.int32())
        cols["n_tracks"] = pa.array([e.n_tracks for e in encs], pa.int16())
        cols["n_notes"] = pa.array([e.n_notes for e in encs], pa.int32())
        self.writer.write_batch(pa.record_batch(cols, schema=self.schema))
        self.rows = []

    def commit(self) -> None:
        """Write the last row group, close, fsync and rename onto the shard's file."""
        self._flush()
        self.writer.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        """Close and delete the temp file (the shard stays as it was)."""
        self.writer.close()
        self.tmp.unlink(missing_ok=True)


def _list_array(arrays: Sequence[np.ndarray], dtype: np.dtype) -> pa.ListArray:
    """One list<dtype> column from per-song arrays (one concatenate, no per-element Python)."""
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    values = np.concatenate(arrays).astype(dtype, copy=False)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


# --- reading: an index of one split, and a reader of its songs ---

COUNT_FIELDS = ("n_bars", "n_tracks", "n_notes")


class ShardError(UserError, ValueError):
    """A shard directory or file is missing or malformed (the message names it)."""


@dataclass(frozen=True)
class SongIndex:
    """Where each song of one split lives. Arrays are aligned, one entry per song.

    Attributes:
        files: the songs files (shard-*.parquet), sorted.
        file, group, row: location of each song (file index, row group, row in the group).
        n_tokens: each song's token count.
        n_cells: each song's instrument (track, bar) cells, n_tracks x n_bars.
        room: tokens a training example of the song may add (per-bar controls, infill
            markers); the planner sizes its row for n_tokens + room (`planned`).
    """

    files: tuple[Path, ...]
    file: np.ndarray
    group: np.ndarray
    row: np.ndarray
    n_tokens: np.ndarray
    n_cells: np.ndarray
    room: np.ndarray

    def __len__(self) -> int:
        return len(self.n_tokens)

    @property
    def planned(self) -> np.ndarray:
        """The length each song's row is planned for: n_tokens + room."""
        return self.n_tokens + self.room

    def with_room(self, room: np.ndarray) -> SongIndex:
        """A copy whose songs may grow by `room` tokens each."""
        return replace(self, room=np.asarray(room, dtype=np.int64))


def _songs_under(data_dir: Path) -> list[Path]:
    """Songs files under `data_dir` (either the processed dir or its shards/ subdir)."""
    data_dir = Path(data_dir)
    shard_dir = data_dir / SHARD_DIR if (data_dir / SHARD_DIR).is_dir() else data_dir
    files = songs_files(shard_dir)
    if not files:
        raise ShardError(f"{data_dir}: no shard-*.parquet songs files")
    return files


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_shards(files: Sequence[Path]) -> None:
    """Refuse songs files whose bytes changed since preprocessing: each must have the sha256
    that meta.json (beside their shards/ dir) recorded for it. A meta.json without hashes (a
    corpus preprocessed before they were recorded) or no meta.json at all: nothing to check.

    Raises:
        ShardError: one line naming the file (or a listed file that is gone) and what to rerun.
    """
    meta = Path(files[0]).parent.parent / META_FILE
    recorded = _recorded_sha256(meta)
    if not recorded:
        return
    rerun = "delete it and rerun preprocess (dvc repro preprocess)"
    for path in files:
        want = recorded.pop(f"{SHARD_DIR}/{Path(path).name}", None)
        if want is None:
            raise ShardError(f"{path}: not listed in {meta} (made after preprocessing?): {rerun}")
        if file_sha256(path) != want:
            raise ShardError(f"{path}: bytes changed since preprocessing (sha256 differs from "
                             f"{meta}): {rerun}")
    if recorded:
        raise ShardError(f"{meta}: lists {sorted(recorded)[0]} but it is gone: rerun preprocess "
                         "(dvc repro preprocess)")


def _recorded_sha256(meta: Path) -> dict[str, str]:
    """{"shards/shard-00000.parquet": sha256} from a meta.json; empty when it records none."""
    try:
        shards = json.loads(meta.read_text()).get("shards", [])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as e:
        raise ShardError(f"{meta}: unreadable ({e}): rerun preprocess") from e
    return {e["file"]: e["sha256"] for e in shards if isinstance(e, dict) and "sha256" in e}


def build_index(data_dir: Path, split: str = "train") -> SongIndex:
    """Index the songs of `split` (reads only the split and n_tokens columns), after checking
    every songs file against the sha256 meta.json recorded (verify_shards).

    Raises:
        ShardError: no shards, a changed or missing shard, a file lacking a column, or no song
            in the split.
    """
    files = _songs_under(data_dir)
    verify_shards(files)
    parts: list[np.ndarray] = []
    for f_idx, path in enumerate(files):
        pf = pq.ParquetFile(path, memory_map=True)
        needed = {"split", "n_tokens", "n_bars", "n_tracks", *LIST_FIELDS}
        missing = needed - set(pf.schema_arrow.names)
        if missing:
            raise ShardError(f"{path}: missing columns {sorted(missing)}")
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["split", "n_tokens", "n_bars", "n_tracks"])
            rows = np.flatnonzero(t.column("split").to_numpy(zero_copy_only=False) == split)
            n = t.column("n_tokens").to_numpy()[rows]
            cells = (t.column("n_bars").to_numpy().astype(np.int64)
                     * t.column("n_tracks").to_numpy())[rows]
            parts.append(np.stack([np.full_like(rows, f_idx), np.full_like(rows, g), rows, n,
                                   cells]))
    table = np.concatenate(parts, axis=1) if parts else np.zeros((5, 0), np.int64)
    if table.shape[1] == 0:
        raise ShardError(f"{data_dir}: no song in split {split!r}")
    file, group, row, n_tokens, n_cells = table.astype(np.int64)
    return SongIndex(tuple(files), file, group, row, n_tokens, n_cells,
                     np.zeros_like(n_tokens))


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
