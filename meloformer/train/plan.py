"""Deterministic batch plans: which songs go in which row of which batch, epoch by epoch.

A plan depends only on (seed, epoch, rank, world, batch size, lengths, data position), never
on the number of loader workers, so a resumed or re-phased run sees exactly the batches the
uninterrupted run would. Songs are shuffled row group by row group (reads stay local), split
across ranks, cut into chunks of `chunk_songs`; each chunk is bucketed (or packed) into
batches of static shapes (B, T), T from a few bucket lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meloformer.data.shards import SongIndex


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
