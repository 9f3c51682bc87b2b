"""The batch stream: which songs each micro-batch holds at each optimizer step.

Its one owner: the phases (the micro-batch size at each step), the per-epoch plans, the
resumable DataState and its re-planning, and the step horizon, which replays the same
re-planning without loading any data. DataFeed (feed.py) only serves what this module plans.

A plan depends only on (seed, epoch, rank, world, batch size, lengths, data position), never
on the number of loader workers, so a resumed or re-phased run sees exactly the batches the
uninterrupted run would. Songs are shuffled row group by row group (reads stay local), split
across ranks, cut into chunks of `chunk_songs`; each chunk is bucketed (or packed) into
batches of static shapes (B, T), T from a few bucket lengths.

Phases: 1: compile warm-up, micro-batch 1 and no loader workers (shapes settle while
compiling); 2: loader workers on; 3: the target micro-batch. The accumulation steps stay as
configured unless an out-of-memory halves the micro-batch (then the accumulation doubles).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from meloformer.data import SongIndex
from meloformer.train.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """What the data loader and the step run with."""

    index: int
    batch_size: int
    accum: int
    num_workers: int


def phase_at(step: int, cfg: TrainConfig, oom_halvings: int = 0) -> Phase:
    """The phase of optimizer step `step`; `oom_halvings` out-of-memory halvings applied."""
    if step < cfg.phase2_step:
        index, batch, workers = 1, 1, 0
    elif step < cfg.phase3_step:
        index, batch, workers = 2, 1, cfg.num_workers
    else:
        index, batch, workers = 3, cfg.batch_size, cfg.num_workers
    accum = cfg.gradient_accumulation_steps
    for _ in range(oom_halvings):
        if batch > 1:
            batch, accum = batch // 2, accum * 2
    return Phase(index, batch, accum, workers)


def switch_line(step: int, old: Phase | None, new: Phase) -> str:
    """The seed's log line for a phase switch (or the start, when `old` is None)."""
    if old is None:
        return (f"Step {step}: Phase {new.index} start: batch_size {new.batch_size}, "
                f"gradient_accumulation_steps {new.accum}, num_workers {new.num_workers}")
    return (f"Step {step}: Phase {old.index} → Phase {new.index}: "
            f"batch_size {old.batch_size} → {new.batch_size}, "
            f"gradient_accumulation_steps {old.accum} → {new.accum}, "
            f"num_workers {old.num_workers} → {new.num_workers}")


def oom_line(step: int, old: Phase, new: Phase) -> str:
    """Log line after a CUDA out-of-memory."""
    return (f"Step {step}: CUDA out of memory: batch_size {old.batch_size} → {new.batch_size}, "
            f"gradient_accumulation_steps {old.accum} → {new.accum}")


@dataclass(frozen=True)
class PlannedBatch:
    """One micro-batch to build.

    Attributes:
        epoch, chunk: where it comes from (chunk index within this rank's epoch order).
        rows: song indices (into the SongIndex) packed into each row, B rows.
        length: the row length T.
        n_real: rows [n_real, B) are fillers (copies whose loss is ignored) that keep B static.
    """

    epoch: int
    chunk: int
    rows: tuple[tuple[int, ...], ...]
    length: int
    n_real: int

    @property
    def songs(self) -> list[int]:
        """The songs this batch consumes (fillers excluded)."""
        return [s for row in self.rows[: self.n_real] for s in row]


@dataclass(frozen=True)
class DataPosition:
    """How far a rank is through its data: epoch, chunk, songs of that chunk already used."""

    epoch: int = 0
    chunk: int = 0
    consumed: tuple[int, ...] = field(default=())

    def advance(self, batch: PlannedBatch) -> DataPosition:
        """The position after training on `batch`."""
        if (batch.epoch, batch.chunk) != (self.epoch, self.chunk):
            return DataPosition(batch.epoch, batch.chunk, tuple(batch.songs))
        return DataPosition(self.epoch, self.chunk, self.consumed + tuple(batch.songs))


def epoch_order(index: SongIndex, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """This rank's songs for `epoch`, in training order (np.int64 array of song indices).

    Row groups are shuffled, then songs within each; ranks take disjoint interleaved slices
    of equal length (the last len % world songs of the epoch are left out).
    """
    rng = np.random.default_rng([seed, epoch])
    group_key = index.file * (int(index.group.max()) + 1) + index.group
    by_group = np.argsort(group_key, kind="stable")  # one sort, not one scan per group
    _, starts = np.unique(group_key[by_group], return_index=True)
    groups = np.split(by_group, starts[1:])
    songs = np.concatenate([rng.permutation(groups[g]) for g in rng.permutation(len(groups))])
    songs = songs[: len(songs) // world * world]
    return songs[rank::world]


def plan_chunk(
    songs: np.ndarray, lengths: np.ndarray, buckets: tuple[int, ...], batch_size: int,
    pack: bool, rng: np.random.Generator,
) -> list[tuple[tuple[tuple[int, ...], ...], int, int]]:
    """Batches (rows, T, n_real) of one chunk, in a shuffled order.

    Args:
        songs: song indices of the chunk, in order.
        lengths: their token counts after cropping (<= buckets[-1]).
        buckets: ascending row lengths.
        batch_size: rows per batch (B).
        pack: fill rows of buckets[-1] tokens with several songs (first fit, longest first).
        rng: shuffles the batch order.
    """
    if pack:
        rows = _pack(songs, lengths, buckets[-1])
        groups = [(rows, buckets[-1])]
    else:
        bucket = np.searchsorted(np.asarray(buckets), lengths)  # first T >= length
        groups = [([(int(s),) for s in songs[bucket == b]], T) for b, T in enumerate(buckets)]
    out, carry = [], []
    for rows, T in groups:
        rows = carry + rows  # leftovers of a shorter bucket ride in a longer one
        full = len(rows) // batch_size * batch_size
        for i in range(0, full, batch_size):
            out.append((tuple(rows[i : i + batch_size]), T, batch_size))
        carry = rows[full:]
        if carry and buckets[-1] == T:
            fillers = [carry[0]] * (batch_size - len(carry))
            out.append((tuple(carry + fillers), T, len(carry)))
    return [out[i] for i in rng.permutation(len(out))]


def _pack(songs: np.ndarray, lengths: np.ndarray, capacity: int) -> list[tuple[int, ...]]:
    """First-fit-decreasing packing of songs into rows of `capacity` tokens."""
    rows: list[list[int]] = []
    room = np.zeros(len(songs), dtype=np.int64)  # free tokens per row (at most one row a song)
    for i in np.argsort(-lengths, kind="stable"):
        n = int(lengths[i])
        slot = int(np.argmax(room[: len(rows)] >= n)) if rows else 0
        if not rows or room[slot] < n:
            rows.append([])
            slot = len(rows) - 1
            room[slot] = capacity
        rows[slot].append(int(songs[i]))
        room[slot] -= n
    return [tuple(r) for r in rows]


def plan_epoch(
    index: SongIndex, position: DataPosition, *, seed: int, batch_size: int,
    buckets: tuple[int, ...], pack: bool, chunk_songs: int, rank: int = 0, world: int = 1,
) -> list[PlannedBatch]:
    """The rest of epoch `position.epoch` for this rank, from `position` on.

    Songs already consumed in the current chunk are left out; the rest of that chunk is
    re-planned with `batch_size` (so a batch-size switch mid-chunk loses and repeats nothing).
    """
    songs = epoch_order(index, seed, position.epoch, rank, world)
    lengths = np.minimum(index.planned, buckets[-1])
    consumed = set(position.consumed)
    out: list[PlannedBatch] = []
    for c in range(position.chunk, -(-len(songs) // chunk_songs)):
        chunk = songs[c * chunk_songs : (c + 1) * chunk_songs]
        if c == position.chunk and consumed:
            chunk = chunk[[int(s) not in consumed for s in chunk]]
        if len(chunk) == 0:
            continue
        rng = np.random.default_rng([seed, position.epoch, rank, c, len(consumed)])
        for rows, T, n_real in plan_chunk(chunk, lengths[chunk], buckets, batch_size, pack, rng):
            out.append(PlannedBatch(position.epoch, c, rows, T, n_real))
    return out


@dataclass(frozen=True)
class DataState:
    """Where the data stream is: the position its current plan starts from, how many of that
    plan's batches are done, and the micro-batch the plan was made for (0: none yet)."""

    origin: DataPosition = field(default_factory=DataPosition)
    done: int = 0
    batch_size: int = 0

    def next_epoch(self) -> DataState:
        """The start of the next epoch, with the same micro-batch."""
        return DataState(DataPosition(self.origin.epoch + 1), 0, self.batch_size)

    def advance(self, n: int) -> DataState:
        """This state after `n` more micro-batches were trained on."""
        return DataState(self.origin, self.done + n, self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Checkpoint form: ints and an int64 tensor."""
        o = self.origin
        return {"epoch": o.epoch, "chunk": o.chunk, "done": self.done,
                "batch_size": self.batch_size,
                "consumed": torch.tensor(o.consumed, dtype=torch.int64)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataState:
        origin = DataPosition(d["epoch"], d["chunk"], tuple(d["consumed"].tolist()))
        return cls(origin, d["done"], d["batch_size"])


class BatchStream:
    """One rank's batch stream over `index` (pure: plans, no data).

    Args:
        index: the train split.
        cfg: seed, buckets, packing, chunking.
        rank, world: ranks get disjoint songs.
    """

    def __init__(self, index: SongIndex, cfg: TrainConfig, rank: int = 0, world: int = 1):
        self.index, self.cfg, self.rank, self.world = index, cfg, rank, world

    def plan(self, origin: DataPosition, batch_size: int) -> list[PlannedBatch]:
        """The rest of `origin`'s epoch in micro-batches of `batch_size`."""
        c = self.cfg
        return plan_epoch(self.index, origin, seed=c.seed, batch_size=batch_size,
                          buckets=c.bucket_lengths(), pack=c.pack, chunk_songs=c.chunk_songs,
                          rank=self.rank, world=self.world)

    def open(self, state: DataState, batch_size: int) -> tuple[DataState, list[PlannedBatch]]:
        """The state to carry on from `state` with micro-batch `batch_size`, and its plan (of
        which the first `state.done` batches are done).

        A new micro-batch size re-plans the rest of the epoch from the songs used so far (so a
        switch loses and repeats nothing); the same size keeps the plan.
        """
        if state.batch_size != batch_size:
            position = state.origin
            if state.batch_size:
                for batch in self.plan(state.origin, state.batch_size)[: state.done]:
                    position = position.advance(batch)
            state = DataState(position, 0, batch_size)
        return state, self.plan(state.origin, batch_size)


def epoch_steps(index: SongIndex, cfg: TrainConfig, world: int = 1) -> int:
    """Optimizer steps of cfg.epochs epochs on `world` ranks (the same on every rank).

    The loop's stream without the data: each phase opens the stream (BatchStream.open, as
    DataFeed.start does), and an epoch ends when any rank has fewer than `accum` micro-batches
    left. So an epoch sees every training song once whatever the phase boundaries, and the
    cosine schedule ends where the data does.
    """
    streams = [BatchStream(index, cfg, rank, world) for rank in range(world)]
    states = [DataState()] * world
    step = 0
    while states[0].origin.epoch < cfg.epochs:
        phase = phase_at(step, cfg)
        opened = [stream.open(state, phase.batch_size)
                  for stream, state in zip(streams, states, strict=True)]
        states = [state for state, _ in opened]
        room = (min(len(plan) for _, plan in opened) - states[0].done) // phase.accum
        boundary = next((s for s in (cfg.phase2_step, cfg.phase3_step) if s > step), None)
        take = room if boundary is None else min(room, boundary - step)
        step += take
        states = [state.advance(take * phase.accum) for state in states]
        if take == room:  # fewer than accum micro-batches left on some rank: epoch over
            states = [state.next_epoch() for state in states]
    return step
