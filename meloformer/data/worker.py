"""The preprocessing worker: encodes the files of whole shards and writes each shard itself.

The parent only schedules (see pool.py). Per file the worker publishes (row, start time) in a
shared-memory slot so the parent can blame the right file when the worker hangs or dies; a soft
per-file deadline (SIGALRM) turns slow files into "timeout" rejects without losing the worker.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path

from meloformer.data.shards import ShardKey, SongWriter, sweep_temp, write_rejects
from meloformer.hid import Encoding, HIDConfig, MidiError, encode_bytes

EncodeFn = Callable[[bytes, HIDConfig, str], Encoding]
Row = tuple[str, str, str]  # (path, hash, split) of one manifest row


class FileTimeout(BaseException):
    """A file ran past its deadline. A BaseException, so the codec's `except Exception` blocks
    cannot swallow it."""


class ParentGone(Exception):
    """The scheduling process died; a worker stops without committing anything."""


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs, sent once when it starts.

    Attributes:
        base: manifest paths are relative to it.
        shard_dir: where shard files go.
        hid: codec config.
        timeout_s: soft per-file deadline.
        encode: (bytes, HIDConfig, path) -> Encoding; raises MidiError for bad input.
    """

    base: Path
    shard_dir: Path
    hid: HIDConfig
    timeout_s: float
    encode: EncodeFn = encode_bytes


@dataclass(frozen=True)
class ShardTask:
    """One shard to build: its key, its manifest rows, and rows the parent already rejected
    (row -> (error, message): files that crashed or hung a previous worker)."""

    key: ShardKey
    rows: tuple[Row, ...]
    skip: dict[int, tuple[str, str]] = field(default_factory=dict)

    def with_skip(self, row: int, error: str, message: str) -> ShardTask:
        return replace(self, skip={**self.skip, row: (error, message)})


@dataclass(frozen=True)
class ShardDone:
    """A committed shard: counts the progress line and the summary use."""

    shard: int
    songs: int
    rejected: int
    notes: int
    tokens: int


class Slot:
    """One worker's view of the shared status array: (row being encoded or -1, its start
    time on the monotonic clock, rows finished in the current shard)."""

    WIDTH = 3

    def __init__(self, array, index: int) -> None:
        self.array, self.at = array, index * self.WIDTH

    def begin(self, row: int) -> None:
        self.array[self.at + 1] = time.monotonic()  # time first: a reader never pairs a new
        self.array[self.at] = row  # row with a stale start

    def end(self, finished: int) -> None:
        self.array[self.at] = -1
        self.array[self.at + 2] = finished

    def reset(self) -> None:
        self.end(0)

    def current(self) -> tuple[int, float]:
        return int(self.array[self.at]), self.array[self.at + 1]

    @property
    def finished(self) -> int:
        return int(self.array[self.at + 2])


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise FileTimeout in this thread after `seconds` (main thread on POSIX; else no-op)."""
    in_main = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "setitimer") or not in_main:
        yield
        return

    def on_alarm(signum, frame):
        raise FileTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def encode_row(path: str, digest: str, setup: WorkerSetup) -> Encoding | tuple[str, str]:
    """Encode one manifest row.

    Returns:
        The Encoding, or (error type, message) for a file that must be rejected: the codec's
        MidiError kinds, "io" (unreadable), "changed" (bytes differ from the manifest hash),
        "timeout", or "error" (any other exception: a codec bug, contained to this file).
    """
    try:
        data = (setup.base / path).read_bytes()
    except OSError as e:
        return "io", f"cannot read: {e.strerror or e}"
    if hashlib.sha256(data).hexdigest() != digest:
        return "changed", "file content changed since discover (hash differs from manifest)"
    try:
        with deadline(setup.timeout_s):
            return setup.encode(data, setup.hid, path)
    except FileTimeout:
        return "timeout", f"still encoding after {setup.timeout_s:g} s"
    except MidiError as e:
        return e.kind, e.reason
    except Exception as e:  # noqa: BLE001 - any codec bug loses only this file
        return "error", f"{type(e).__name__}: {e}"


def write_shard(
    task: ShardTask, setup: WorkerSetup, slot: Slot, parent_gone: Callable[[], bool]
) -> ShardDone:
    """Encode every row of a shard and commit its rejects and songs files.

    Raises:
        ParentGone: the parent died; nothing is committed.
    """
    sweep_temp(setup.shard_dir, task.key.shard)
    writer = SongWriter(setup.shard_dir, task.key, setup.hid)
    rejects: list[tuple[str, str, str, str]] = []
    notes = tokens = 0
    try:
        for i, (path, digest, split) in enumerate(task.rows):
            if parent_gone():
                raise ParentGone
            slot.begin(i)
            out = task.skip.get(i) or encode_row(path, digest, setup)
            if isinstance(out, Encoding):
                try:
                    writer.add(path, digest, split, out)
                    notes, tokens = notes + out.n_notes, tokens + len(out)
                except ValueError as e:
                    out = ("invalid", f"codec output rejected: {e}")
            if not isinstance(out, Encoding):
                rejects.append((path, digest, *out))
            slot.end(i + 1)
        write_rejects(setup.shard_dir, task.key, rejects)
        if parent_gone():
            raise ParentGone
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    n = len(task.rows)
    return ShardDone(task.key.shard, n - len(rejects), len(rejects), notes, tokens)


def worker_main(conn: Connection, status, index: int, setup: WorkerSetup) -> None:
    """Process entry: build the shards the parent sends until it sends None or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    slot = Slot(status, index)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            # The parent sends nothing while a shard runs: a readable pipe means it is gone.
            done = write_shard(task, setup, slot, conn.poll)
        except ParentGone:
            return
        except Exception:  # noqa: BLE001 - reported to the parent, which stops the run
            conn.send(("failed", task.key.shard, traceback.format_exc()))
            continue
        conn.send(("done", done))
