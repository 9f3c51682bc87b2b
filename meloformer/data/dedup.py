"""Duplicates by content: songs whose HID token sequences are identical are one song.

Discover drops byte-identical files only; a re-saved copy of a song (other bytes, same notes)
encodes to the same tokens. After the shards are built, the first copy in manifest order
stays a song and every later copy becomes a `duplicate` reject naming it, so no song can sit
in two splits (the kept copy's split is the song's split).

Workers cannot see across shards, so the decision is global and taken at finalize: the songs
file of a shard holding a later copy is rewritten without it and the copy is added to the
shard's rejects file (with its token hash, so a later run can tell whether it is still a
duplicate). A dropped copy whose kept copy changed or went away must be a song again; its
shard is deleted and rebuilt (`StaleShards`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meloformer.data.pool import PreprocessError
from meloformer.data.shards import REJECT_SCHEMA, ROW_GROUP_SONGS, rejects_file, songs_file
from meloformer.io import atomic_path

DUPLICATE = "duplicate"  # the reject `error` of a later copy


class StaleShards(PreprocessError):
    """Shards that dropped a copy which is a song again were deleted: build them again."""

    def __init__(self, shards: Sequence[int]) -> None:
        self.shards = tuple(shards)
        super().__init__(f"shards {list(self.shards)[:10]} held dropped duplicates whose kept "
                         "copy changed; they were deleted: rerun preprocess to rebuild them")


@dataclass(frozen=True)
class Copy:
    """One encoded file as dedup sees it: manifest order, shard, identity, token hash."""

    order: int
    shard: int
    path: str
    hash: str
    content: str
    dropped: bool
    """True when a previous finalize already turned it into a duplicate reject."""


def copies(shard: int, songs: pa.Table, rejects: pa.Table, order: dict[str, int]) -> list[Copy]:
    """The copies of one shard: its songs, and its duplicate rejects that are not songs
    (a crash between the two rewrites can leave a copy in both; the songs file wins)."""
    out = [Copy(order[p], shard, p, h, c, False) for p, h, c in
           zip(*(songs.column(n).to_pylist() for n in ("path", "hash", "content")), strict=True)]
    in_songs = {c.path for c in out}
    dups = rejects.filter(pc.equal(rejects.column("error"), DUPLICATE))
    for p, h, c in zip(*(dups.column(n).to_pylist() for n in ("path", "hash", "content")),
                       strict=True):
        if p not in in_songs:
            out.append(Copy(order[p], shard, p, h, c, True))
    return out


@dataclass(frozen=True)
class Decision:
    """What finalize must do: per shard, the duplicate rejects it should hold (path, hash,
    kept path, content), and the shards to rebuild."""

    duplicates: dict[int, list[tuple[str, str, str, str]]]
    rebuild: list[int]


def decide(all_copies: Sequence[Copy]) -> Decision:
    """The first copy of each content (manifest order) is the song; the rest are duplicates."""
    kept: dict[str, str] = {}
    duplicates: dict[int, list] = defaultdict(list)
    rebuild: set[int] = set()
    for c in sorted(all_copies, key=lambda c: c.order):
        if c.content not in kept:
            kept[c.content] = c.path
            if c.dropped:  # it has to be a song again, and its tokens are gone
                rebuild.add(c.shard)
        else:
            duplicates[c.shard].append((c.path, c.hash, kept[c.content], c.content))
    return Decision(dict(duplicates), sorted(rebuild))


def apply(shard_dir: Path, shard: int, songs_path: Path, dups: list[tuple[str, str, str, str]],
          order: dict[str, int]) -> bool:
    """Make one shard's files agree with the decision; True if anything was rewritten.

    Rejects first, songs last (each atomic, the shard key kept): an interruption between the
    two leaves a copy in both files, which `copies` reads as a song, so the next finalize
    repeats this step.
    """
    rejects = pq.read_table(rejects_file(shard_dir, shard))
    key_meta = rejects.schema.metadata
    others = rejects.filter(pc.not_equal(rejects.column("error"), DUPLICATE))
    current = rejects.filter(pc.equal(rejects.column("error"), DUPLICATE))
    rows = [(p, h, DUPLICATE, f"same HID tokens as {k}", c) for p, h, k, c in dups]
    wanted = pa.Table.from_pylist(
        [dict(zip(REJECT_SCHEMA.names, r, strict=True)) for r in rows], schema=REJECT_SCHEMA)
    drop = {p for p, *_ in dups}
    names = pq.read_table(songs_path, columns=["path"]).column("path").to_pylist()
    songs_change = bool(drop & set(names))
    if not songs_change and current.to_pylist() == wanted.to_pylist():
        return False
    merged = pa.concat_tables([others.select(REJECT_SCHEMA.names).cast(REJECT_SCHEMA), wanted])
    merged = merged.take(np.argsort([order[p] for p in merged.column("path").to_pylist()],
                                    kind="stable"))
    with atomic_path(rejects_file(shard_dir, shard)) as tmp:
        pq.write_table(merged.replace_schema_metadata(key_meta), tmp, compression="zstd")
    if songs_change:
        table = pq.read_table(songs_path)
        keep = pa.array([p not in drop for p in names])
        with atomic_path(songs_path) as tmp:
            pq.write_table(table.filter(keep), tmp, compression="zstd",
                           row_group_size=ROW_GROUP_SONGS)
    return True


def deduplicate(shard_dir: Path, shards: Sequence[int], manifest_paths: Sequence[str]) -> int:
    """Turn later copies of a song into `duplicate` rejects across all shards.

    Args:
        shard_dir: the complete shards.
        shards: their indices, in order.
        manifest_paths: the manifest's paths in row order (which copy came first).

    Returns:
        The number of duplicate rejects the corpus holds.

    Raises:
        StaleShards: a dropped copy is a song again; its shard was deleted for a rebuild.
    """
    order = {p: i for i, p in enumerate(manifest_paths)}
    found = []
    for k in shards:
        songs = pq.read_table(songs_file(shard_dir, k), columns=["path", "hash", "content"])
        found += copies(k, songs, pq.read_table(rejects_file(shard_dir, k)), order)
    decision = decide(found)
    if decision.rebuild:
        for k in decision.rebuild:
            songs_file(shard_dir, k).unlink(missing_ok=True)
            rejects_file(shard_dir, k).unlink(missing_ok=True)
        raise StaleShards(decision.rebuild)
    for k in shards:
        apply(shard_dir, k, songs_file(shard_dir, k), decision.duplicates.get(k, []), order)
    return sum(len(v) for v in decision.duplicates.values())
