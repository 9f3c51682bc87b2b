"""The preprocessing pool: schedules whole shards on worker processes and contains failures.

Workers write their shards themselves; the parent only hands out shards and watches. When a
worker dies (segfault, OOM kill) or overruns the hard per-file limit (the soft SIGALRM deadline
did not fire, e.g. stuck in C code), the parent reads the worker's status slot to find the file
at fault, records it as a "crash"/"timeout" reject, starts a fresh worker and requeues the shard
with that file skipped. Only that file is lost; the shard's other files are encoded again.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait

from meloformer.data.shards import sweep_temp
from meloformer.data.worker import ShardDone, ShardTask, Slot, WorkerSetup, worker_main
from meloformer.errors import UserError

POLL_S = 0.2  # how often the parent checks deadlines when no worker reports
MAX_UNATTRIBUTED_DEATHS = 2  # deaths outside any file (e.g. while writing) before giving up


class PreprocessError(UserError, RuntimeError):
    """The pool cannot finish: a shard failed in a way no single file explains."""


def hard_limit(timeout_s: float) -> float:
    """Seconds after which a worker stuck on one file is killed: the soft deadline plus a grace
    as long again (at least 5 s) for C code that does not return to the interpreter."""
    return timeout_s + max(5.0, timeout_s)


def describe_exit(code: int | None) -> str:
    """'signal SIGSEGV' / 'exit code 3' for a dead process's exitcode."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@dataclass
class _Worker:
    index: int  # its slot in the status array
    slot: Slot
    process: mp.process.BaseProcess
    conn: object
    task: ShardTask | None = None


class ShardPool:
    """Runs ShardTasks on `workers` processes (forkserver where available).

    Args:
        setup: what each worker needs (paths, codec config, per-file timeout, encoder).
        workers: number of processes.
    """

    def __init__(self, setup: WorkerSetup, workers: int) -> None:
        methods = mp.get_all_start_methods()
        self.ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:  # import numpy/pyarrow/the codec once, fork per worker
            self.ctx.set_forkserver_preload(["meloformer.data.worker"])
        self.setup, self.n_workers = setup, workers
        self.status = self.ctx.RawArray("d", Slot.WIDTH * workers)
        self.hard_limit_s = hard_limit(setup.timeout_s)
        self.deaths: dict[int, int] = {}

    def run(
        self, tasks: Sequence[ShardTask], progress: Callable[[int], None] = lambda n: None
    ) -> list[ShardDone]:
        """Build every shard; `progress(rows finished)` is called about every POLL_S.

        Returns:
            One ShardDone per task, in completion order.
        Raises:
            PreprocessError: a shard failed outside any one file.
        """
        pending, done = deque(tasks), []
        self.rows_done = 0
        workers = [self._spawn(i) for i in range(min(self.n_workers, len(tasks)))]
        try:
            while pending or any(w.task for w in workers):
                for i, w in enumerate(workers):
                    if w.task is None and pending:
                        if not w.process.is_alive():  # died idle (rare): just replace it
                            w = workers[i] = self._respawn(w)
                        w.task = pending.popleft()
                        w.conn.send(w.task)
                self._wait(workers, pending, done)
                self._enforce_deadlines(workers, pending)
                progress(self.rows_done + sum(w.slot.finished for w in workers if w.task))
        except BaseException:
            self._kill_all(workers)
            raise
        self._stop_all(workers)
        return done

    def _spawn(self, index: int) -> _Worker:
        slot = Slot(self.status, index)
        slot.reset()
        parent_end, child_end = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=worker_main, args=(child_end, self.status, index, self.setup), daemon=True
        )
        proc.start()
        child_end.close()
        return _Worker(index, slot, proc, parent_end)

    def _respawn(self, w: _Worker) -> _Worker:
        w.process.join()
        w.conn.close()
        return self._spawn(w.index)

    def _wait(self, workers: list[_Worker], pending: deque, done: list[ShardDone]) -> None:
        """Block up to POLL_S for a report or a death, and handle whichever came."""
        busy = [w for w in workers if w.task]
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], POLL_S))
        for w in busy:
            if w.conn in ready or w.process.sentinel in ready:
                self._collect(w, workers, pending, done)

    def _collect(self, w: _Worker, workers: list, pending: deque, done: list) -> None:
        try:
            msg = w.conn.recv() if w.conn.poll() else None
        except EOFError:
            msg = None
        if msg is None:  # no report: the process died
            w.process.join()
            why = f"worker died ({describe_exit(w.process.exitcode)}) while encoding this file"
            self._requeue_dead(w, workers, pending, ("crash", why))
        elif msg[0] == "done":
            done.append(msg[1])
            self.rows_done += len(w.task.rows)
            w.task = None
        else:
            raise PreprocessError(f"shard {msg[1]} failed:\n{msg[2]}")

    def _enforce_deadlines(self, workers: list[_Worker], pending: deque) -> None:
        """Kill workers stuck on one file past the hard limit."""
        now = time.monotonic()
        for w in workers:
            row, start = w.slot.current()
            if w.task is None or row < 0 or now - start <= self.hard_limit_s:
                continue
            w.process.kill()
            w.process.join()
            if w.slot.current() != (row, start):  # it moved on just before the kill: blameless
                self._requeue_dead(w, workers, pending, None)
            else:
                why = f"no result after {self.hard_limit_s:g} s; worker killed"
                self._requeue_dead(w, workers, pending, ("timeout", why))

    def _requeue_dead(
        self, w: _Worker, workers: list, pending: deque, blame: tuple[str, str] | None
    ) -> None:
        """Replace a dead worker and requeue its shard, with the file at fault (the row in its
        slot) rejected as `blame` = (error, message)."""
        task, (row, _) = w.task, w.slot.current()
        if blame is not None and row >= 0:
            task = task.with_skip(row, *blame)
        elif blame is not None:  # died between files: retry the shard a bounded number of times
            shard = task.key.shard
            self.deaths[shard] = self.deaths.get(shard, 0) + 1
            if self.deaths[shard] > MAX_UNATTRIBUTED_DEATHS:
                raise PreprocessError(f"shard {shard}: {blame[1]} (outside any file)")
        sweep_temp(self.setup.shard_dir, task.key.shard)
        pending.appendleft(task)
        workers[workers.index(w)] = self._respawn(w)

    def _stop_all(self, workers: list[_Worker]) -> None:
        for w in workers:
            with contextlib.suppress(OSError):  # already gone: join below reaps it
                w.conn.send(None)
        for w in workers:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.kill()
            w.conn.close()

    def _kill_all(self, workers: list[_Worker]) -> None:
        for w in workers:
            if w.process.is_alive():
                w.process.kill()
            w.process.join()
            if w.task is not None:
                sweep_temp(self.setup.shard_dir, w.task.key.shard)
