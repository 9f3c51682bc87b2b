"""Stage preprocess: the manifest's files -> HID token shards, rejects.parquet and meta.json.

Shard k holds manifest rows [k * shard_size, (k + 1) * shard_size) in manifest order. A rerun
skips every shard whose files carry the same ShardKey (config, codec source, vocabulary and
input rows) and rebuilds the rest. `finalize` checks that every discovered file is either a
song or a reject, exactly once, before it writes the totals; before that, songs whose HID
tokens equal an earlier song's become `duplicate` rejects (dedup.py).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import meloformer.hid
from meloformer.data.config import PreprocessConfig
from meloformer.data.controls import control_bins
from meloformer.data.dedup import StaleShards, deduplicate
from meloformer.data.manifest import read_manifest
from meloformer.data.meta import (
    META_FILE,
    STAT_COLUMNS,
    build_meta,
    check_accounted,
    pitch_histogram,
    pitch_ranges,
)
from meloformer.data.pool import PreprocessError, ShardPool
from meloformer.data.profile import corpus_profile
from meloformer.data.shards import (
    REJECT_SCHEMA,
    SHARD_DIR,
    ShardKey,
    inputs_hash,
    is_complete,
    rejects_file,
    shard_of,
    songs_file,
    sweep_temp,
)
from meloformer.data.worker import EncodeFn, ShardDone, ShardTask, WorkerSetup
from meloformer.hid import Vocab, encode_bytes
from meloformer.io import atomic_path, write_json
from meloformer.progress import Progress

REJECTS_FILE = "rejects.parquet"

__all__ = [
    "META_FILE",
    "REJECTS_FILE",
    "PreprocessError",
    "PreprocessSummary",
    "codec_fingerprint",
    "finalize",
    "plan_shards",
    "preprocess",
    "preprocess_shards",
    "shard_count",
]


FIRST_REJECTS = 5  # rejected files named in the summary


@dataclass(frozen=True)
class PreprocessSummary:
    """Totals of a preprocessed corpus (meta.json has them too) and of this run.

    Attributes:
        discovered, ok, rejected: manifest rows, songs written, files rejected.
        tokens, notes: over all songs.
        rejected_by_error: reject count per error type.
        shards: shard count; built: shards (re)built by this call; encoded: their files.
        seconds: wall time of this call.
    """

    discovered: int
    ok: int
    rejected: int
    tokens: int
    notes: int
    rejected_by_error: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    built: int = 0
    encoded: int = 0
    encoded_notes: int = 0
    seconds: float = 0.0
    first_rejects: tuple[tuple[str, str], ...] = ()
    """(path, reason) of the first rejected files (all of them are in rejects.parquet)."""

    def line(self) -> str:
        """The summary printed at the end of a run: one line, then the first rejects."""
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_error.items()))
        rate = max(self.seconds, 1e-9)
        return (
            f"preprocess: {self.discovered} discovered, {self.ok} ok, {self.rejected} rejected"
            f"{f' ({why})' if why else ''}; {self.tokens:,} tokens, {self.notes:,} notes; "
            f"{self.shards} shards ({self.built} built, {self.shards - self.built} reused) in "
            f"{self.seconds:.1f} s ({self.encoded / rate:.1f} files/s, "
            f"{self.encoded_notes / rate:,.0f} notes/s)"
        ) + "".join(f"\n  rejected {path}: {why}" for path, why in self.first_rejects) + (
            f"\n  ... all {self.rejected} in {REJECTS_FILE}" if self.rejected else "")


def codec_fingerprint() -> str:
    """Hash of the codec's source files: editing the codec invalidates every shard."""
    root = Path(meloformer.hid.__file__).parent
    h = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *root.glob("*.json")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def plan_shards(manifest: pd.DataFrame, cfg: PreprocessConfig) -> list[ShardTask]:
    """Cut the manifest into ShardTasks of cfg.shard_size rows, each with its ShardKey."""
    rows = list(zip(manifest["path"], manifest["hash"], manifest["split"], strict=True))
    common = dict(
        config_hash=cfg.content_hash(),
        codec_hash=codec_fingerprint(),
        vocab_hash=Vocab(cfg.hid).hash,
    )
    tasks = []
    for k, start in enumerate(range(0, len(rows), cfg.shard_size)):
        part = tuple(rows[start : start + cfg.shard_size])
        tasks.append(ShardTask(ShardKey(shard=k, inputs_hash=inputs_hash(part), **common), part))
    return tasks


def shard_count(manifest_path: Path, cfg: PreprocessConfig) -> int:
    """Number of shards the manifest makes (the flow fans out over range(shard_count))."""
    n = pq.read_metadata(manifest_path).num_rows
    return -(-n // cfg.shard_size)


def preprocess_shards(
    manifest_path: Path,
    out_dir: Path,
    cfg: PreprocessConfig,
    base: Path,
    shards: Sequence[int] | None = None,
    encode: EncodeFn = encode_bytes,
    progress: bool = True,
) -> list[ShardDone]:
    """Build the shards that are missing or stale (all, or those listed in `shards`).

    Args:
        manifest_path: written by discover.
        out_dir: shards go to out_dir/shards.
        cfg: the preprocess section of params.
        base: manifest paths are relative to it.
        shards: shard indices to consider (None: all).
        encode: the codec entry (bytes, HIDConfig, path) -> Encoding; a module-level function.
        progress: draw a progress line on stderr.
    Returns:
        One ShardDone per shard built now (reused shards are not listed).
    """
    manifest = read_manifest(manifest_path)
    tasks = plan_shards(manifest, cfg)
    chosen = tasks if shards is None else [tasks[k] for k in shards]
    shard_dir = Path(out_dir) / SHARD_DIR
    todo = [t for t in chosen if not is_complete(shard_dir, t.key)]
    if not todo:
        return []
    # Biggest shards first, so no large shard starts last and leaves the other workers idle.
    size_of = dict(zip(manifest["hash"], manifest["size"], strict=True))
    todo.sort(key=lambda t: -sum(size_of[h] for _, h, _ in t.rows))
    setup = WorkerSetup(Path(base), shard_dir, cfg.hid, cfg.timeout_s, encode)
    bar = Progress(sum(len(t.rows) for t in todo), "preprocess", sys.stderr if progress else None)
    done = ShardPool(setup, min(cfg.workers, len(todo))).run(todo, bar)
    bar.close()
    return done


def finalize(manifest_path: Path, out_dir: Path, cfg: PreprocessConfig) -> PreprocessSummary:
    """Check every shard is complete, turn later copies of a song into `duplicate` rejects
    (dedup.py), then write rejects.parquet and meta.json.

    Raises:
        StaleShards: a dropped copy is a song again; its shard was deleted (rerun to build it).
        PreprocessError: a shard is missing or stale, or songs + rejects do not account for
            every manifest row exactly once.
    """
    manifest = read_manifest(manifest_path)
    tasks, shard_dir = plan_shards(manifest, cfg), Path(out_dir) / SHARD_DIR
    stale = [t.key.shard for t in tasks if not is_complete(shard_dir, t.key)]
    if stale:
        raise PreprocessError(f"shards {stale[:10]} missing or stale in {shard_dir}: rerun")
    _remove_extra_shards(shard_dir, len(tasks))
    ids = [t.key.shard for t in tasks]
    deduplicate(shard_dir, ids, manifest["path"].tolist())
    songs = [pq.read_table(songs_file(shard_dir, k), columns=STAT_COLUMNS) for k in ids]
    rejects = [pq.read_table(rejects_file(shard_dir, k)).replace_schema_metadata() for k in ids]
    all_rejects = pa.concat_tables(rejects or [REJECT_SCHEMA.empty_table()])
    check_accounted(manifest, songs, all_rejects)
    with atomic_path(Path(out_dir) / REJECTS_FILE) as tmp:
        pq.write_table(all_rejects, tmp, compression="zstd")
    hist = pitch_histogram([songs_file(shard_dir, k) for k in ids], Vocab(cfg.hid))
    meta = build_meta(cfg, [t.key for t in tasks], songs, rejects, len(manifest),
                      pitch_ranges(hist), shard_dir)
    files = [songs_file(shard_dir, k) for k in ids]
    bins = control_bins(files, Vocab(cfg.hid))
    meta["control_bins"] = bins.to_dict()
    meta["profile"] = corpus_profile(files, Vocab(cfg.hid), bins).to_dict()
    write_json(Path(out_dir) / META_FILE, meta)
    totals = meta["totals"]
    return PreprocessSummary(
        discovered=totals["discovered"],
        ok=totals["ok"],
        rejected=totals["rejected"],
        tokens=totals["tokens"],
        notes=totals["notes"],
        rejected_by_error=meta["rejected_by_error"],
        shards=len(tasks),
        first_rejects=first_rejects(all_rejects),
    )


def first_rejects(rejects: pa.Table, n: int = FIRST_REJECTS) -> tuple[tuple[str, str], ...]:
    """(path, "error: message") of the first `n` rejected files, by path."""
    rows = sorted(zip(rejects.column("path").to_pylist(), rejects.column("error").to_pylist(),
                      rejects.column("message").to_pylist(), strict=True))[:n]
    return tuple((path, f"{error}: {message}") for path, error, message in rows)


def preprocess(
    manifest_path: Path,
    out_dir: Path,
    cfg: PreprocessConfig,
    base: Path,
    encode: EncodeFn = encode_bytes,
    progress: bool = True,
) -> PreprocessSummary:
    """The whole stage: build missing or stale shards on cfg.workers processes, then finalize.

    Args and Raises: as preprocess_shards and finalize.
    Returns:
        The summary, with this run's timing.
    """
    start = time.monotonic()
    done = preprocess_shards(manifest_path, out_dir, cfg, base, None, encode, progress)
    try:
        summary = finalize(manifest_path, out_dir, cfg)
    except StaleShards:  # a dropped duplicate is a song again: its shard was deleted
        done += preprocess_shards(manifest_path, out_dir, cfg, base, None, encode, progress)
        summary = finalize(manifest_path, out_dir, cfg)
    return replace(
        summary,
        built=len(done),
        encoded=sum(d.songs + d.rejected for d in done),
        encoded_notes=sum(d.notes for d in done),
        seconds=time.monotonic() - start,
    )


def _remove_extra_shards(shard_dir: Path, n_shards: int) -> None:
    """Delete temp files and shards past the current count (left by a larger manifest)."""
    sweep_temp(shard_dir)
    for path in sorted(shard_dir.glob("shard-*.parquet")):
        if shard_of(path) >= n_shards:
            path.unlink()
