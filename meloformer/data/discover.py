"""Stage discover: find MIDI files, hash their bytes, drop duplicates, assign splits.

Inputs are directories (walked recursively, symlinked directories followed once each, so links
that loop end), single MIDI files, or list files with one path per line (as written by
`find … > midi_files.txt`; relative entries are taken relative to the list file). The split of
a song is a function of its content hash alone, so copies can never straddle splits and adding
files never moves an existing song to another split.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from meloformer.data.config import SPLITS, DiscoverConfig
from meloformer.data.manifest import write_manifest
from meloformer.errors import UserError
from meloformer.io import write_json

MANIFEST_FILE = "manifest.parquet"
SUMMARY_FILE = "discover.json"


class SummaryError(UserError, ValueError):
    """discover.json is missing, unreadable or lacks a field (the message names file and field)."""


@dataclass(frozen=True)
class DiscoverSummary:
    """What discover found.

    Attributes:
        found: candidate files (distinct paths with a MIDI extension).
        unique: manifest rows (distinct contents).
        duplicates: readable files whose content an earlier path already has.
        unreadable: (path, error) of candidates that could not be read; not in the manifest.
        splits: manifest rows per split.
        fractions: the share of songs each split was assigned (DiscoverConfig.split_fractions
            of the run), which validate holds the observed shares to.
    """

    found: int
    unique: int
    duplicates: int
    unreadable: tuple[tuple[str, str], ...] = ()
    splits: dict[str, int] = field(default_factory=dict)
    fractions: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        """One human-readable summary line."""
        per_split = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        line = (f"discover: {self.found} files, {self.unique} unique ({per_split}), "
                f"{self.duplicates} duplicates, {len(self.unreadable)} unreadable")
        if self.unreadable:  # name the first, so a wrong list-file base shows at once
            path, reason = self.unreadable[0]
            line += f" (first: {path}: {reason}; all in discover.json)"
        return line


def has_midi_extension(name: str, cfg: DiscoverConfig) -> bool:
    """True when the file name ends in one of cfg.extensions, in any letter case."""
    return name.lower().endswith(cfg.extensions)


def iter_candidates(inputs: Sequence[Path], cfg: DiscoverConfig) -> Iterator[Path]:
    """Yield every candidate MIDI path named by `inputs` (directories, MIDI files, list files).

    Raises:
        FileNotFoundError: an input that does not exist.
    """
    for item in map(Path, inputs):
        if item.is_dir():
            yield from _walk(item, cfg)
        elif item.is_file() and has_midi_extension(item.name, cfg):
            yield item
        elif item.is_file():
            yield from _read_list(item, cfg)
        else:
            raise FileNotFoundError(f"{item}: no such file or directory")


def _walk(root: Path, cfg: DiscoverConfig) -> Iterator[Path]:
    """Files below `root`; a real directory reached twice (a symlink loop) is walked once."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=cfg.follow_symlinks):
        try:
            st = os.stat(dirpath)
        except OSError:
            continue  # vanished or unreadable directory: nothing to list
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in sorted(filenames):
            if has_midi_extension(name, cfg):
                yield Path(dirpath, name)


def _read_list(list_file: Path, cfg: DiscoverConfig) -> Iterator[Path]:
    """Entries of a list file (blank lines and '#' comments skipped), filtered by extension."""
    for line in list_file.read_text().splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#") and has_midi_extension(entry, cfg):
            yield list_file.parent / entry


def relative_path(path: Path, base: Path) -> str:
    """`path` relative to `base` when below it, else absolute; POSIX separators, no resolving."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return absolute.as_posix()


def hash_file(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex digest) of a file. MIDI files are small: read whole."""
    data = Path(path).read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def assign_splits(hashes: Sequence[str], fractions: dict[str, float]) -> list[str]:
    """Split of each content hash: its first 52 bits as u in [0, 1) against cumulative shares.

    Args:
        hashes: sha256 hex digests.
        fractions: share per split name; val takes [0, val), test the next band, train the rest.
    Returns:
        One split name per hash.
    """
    u = np.array([int(h[:13], 16) for h in hashes], dtype=np.float64) / 16.0**13
    val, test = fractions["val"], fractions["test"]
    out = np.where(u < val, "val", np.where(u < val + test, "test", "train"))
    return out.tolist()


def find_midi(
    inputs: Sequence[Path], cfg: DiscoverConfig, base: Path
) -> tuple[pd.DataFrame, DiscoverSummary]:
    """Discover without writing: the manifest (sorted by path) and its summary.

    Args:
        inputs: directories, MIDI files or list files.
        cfg: extensions, split shares, hashing threads.
        base: manifest paths are written relative to it (the stages' working directory).
    Returns:
        (manifest with columns path, size, hash, split; summary).
    """
    paths = {relative_path(p, base): p for p in iter_candidates(inputs, cfg)}
    names = sorted(paths)
    with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        results = list(pool.map(_try_hash, (paths[n] for n in names)))
    rows = [(n, *r) for n, r in zip(names, results, strict=True) if r[0] >= 0]
    unreadable = tuple((n, r[1]) for n, r in zip(names, results, strict=True) if r[0] < 0)
    found = pd.DataFrame(rows, columns=["path", "size", "hash"])
    manifest = found.drop_duplicates("hash", keep="first").reset_index(drop=True)
    manifest["split"] = assign_splits(manifest["hash"].tolist(), cfg.split_fractions)
    counts = manifest["split"].value_counts()
    summary = DiscoverSummary(
        found=len(names),
        unique=len(manifest),
        duplicates=len(found) - len(manifest),
        unreadable=unreadable,
        splits={s: int(counts.get(s, 0)) for s in SPLITS},
        fractions=cfg.split_fractions,
    )
    return manifest, summary


def _try_hash(path: Path) -> tuple[int, str]:
    """hash_file, with a read error turned into (-1, message) so one bad file stops nothing."""
    try:
        return hash_file(path)
    except FileNotFoundError:  # e.g. a list file's relative entry: say where it was looked for
        return -1, f"no such file (looked for {Path(path).resolve()})"
    except OSError as e:
        return -1, f"{type(e).__name__}: {e.strerror or e}"


def discover(
    inputs: Sequence[Path], out_dir: Path, cfg: DiscoverConfig, base: Path
) -> DiscoverSummary:
    """Run discover and write `out_dir/manifest.parquet` and `out_dir/discover.json`.

    Args:
        inputs: directories, MIDI files or list files.
        out_dir: where the manifest and the summary go.
        cfg: the discover section of params.
        base: manifest paths are relative to it.
    Returns:
        The summary (also in discover.json, with the unreadable files listed).
    """
    manifest, summary = find_midi(inputs, cfg, base)
    write_manifest(manifest, Path(out_dir) / MANIFEST_FILE)
    write_json(Path(out_dir) / SUMMARY_FILE, asdict(summary))
    return summary


def read_summary(path: Path) -> DiscoverSummary:
    """The DiscoverSummary a discover run wrote to `path` (its discover.json).

    Raises:
        SummaryError: the file is missing or not JSON, or a field is missing (e.g. a
            discover.json written before the split fractions were recorded: rerun discover).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SummaryError(f"{path}: cannot read the discover summary: {e}") from e
    missing = sorted({"found", "unique", "duplicates", "splits", "fractions"} - set(data))
    if missing:
        raise SummaryError(f"{path}: no field {missing[0]!r}; rerun discover to rewrite it")
    return DiscoverSummary(
        found=data["found"],
        unique=data["unique"],
        duplicates=data["duplicates"],
        unreadable=tuple(tuple(pair) for pair in data.get("unreadable", ())),
        splits=data["splits"],
        fractions=data["fractions"],
    )
