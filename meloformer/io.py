"""File output shared by every stage: atomic writes, and values made JSON-ready.

Atomic file writes: write a temp file beside the target, fsync, then os.replace.

A reader (or a rerun after SIGKILL) sees either the old file or the complete new one, never a
partial one. Temp names end in TMP_SUFFIX and carry the writer's pid, so two writers never share
one and leftovers are easy to sweep.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def temp_path(target: Path) -> Path:
    """The temp file this process writes before it replaces `target`."""
    return target.with_name(f"{target.name}.{os.getpid()}{TMP_SUFFIX}")


def temp_files(target: Path) -> list[Path]:
    """Every temp file (of any process) left beside `target`."""
    return sorted(target.parent.glob(f"{target.name}.*{TMP_SUFFIX}"))


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `target`, on error it is removed.

    Args:
        target: the final file; its directory is created if missing.
    Yields:
        The temp path (same directory, so os.replace is a rename on one filesystem).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # flush to disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: Path, obj: Any) -> None:
    """Atomically write `obj` as indented, key-sorted JSON (stable bytes for DVC)."""
    write_text(target, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def json_ready(value: Any) -> Any:
    """`value` as plain JSON values: dataclass instances -> dicts, tuples -> lists, numpy
    scalars and arrays -> Python numbers and lists (`.item()`/`.tolist()`), dict keys -> str,
    anything else JSON cannot hold -> its str(). Used wherever a config or a result is stored
    (JSON files, checkpoints: torch.load(weights_only=True) reads the same plain values)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars (a scalar's tolist is its item)
        return json_ready(value.tolist())
    if hasattr(value, "item"):
        return value.item()
    return str(value)
