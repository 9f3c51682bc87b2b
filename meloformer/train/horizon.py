"""The run's step horizon: how many optimizer steps `epochs` epochs take, phases included.

It replays what the loop and DataFeed do, without loading any data: the micro-batch changes at
the phase boundaries (1 in phases 1-2, `batch_size` in phase 3), a new micro-batch re-plans the
rest of the epoch from the songs already used, and an epoch ends when any rank has fewer than
`accum` micro-batches left. So an epoch sees every training song once whatever the
boundaries, and the cosine schedule ends where the data does.
"""

from __future__ import annotations

from meloformer.data.shards import SongIndex
from meloformer.train.config import TrainConfig
from meloformer.train.phases import phase_at
from meloformer.train.plan import DataPosition, PlannedBatch, plan_epoch


def epoch_steps(index: SongIndex, cfg: TrainConfig, world: int = 1) -> int:
    """Optimizer steps of cfg.epochs epochs on `world` ranks (the same on every rank)."""

    def plan(origin: DataPosition, batch: int, rank: int) -> list[PlannedBatch]:
        return plan_epoch(index, origin, seed=cfg.seed, batch_size=batch,
                          buckets=cfg.bucket_lengths(), pack=cfg.pack,
                          chunk_songs=cfg.chunk_songs, rank=rank, world=world)

    step, epoch, done, batch = 0, 0, 0, 0
    origins = [DataPosition()] * world  # each rank's plan origin
    plans: list[list[PlannedBatch]] = [[] for _ in range(world)]
    while epoch < cfg.epochs:
        phase = phase_at(step, cfg)
        if phase.batch_size != batch:  # DataFeed.start re-plans from the songs used so far
            for r in range(world):
                for b in plans[r][:done]:
                    origins[r] = origins[r].advance(b)
            done, batch = 0, phase.batch_size
            plans = [plan(origins[r], batch, r) for r in range(world)]
        room = (min(len(p) for p in plans) - done) // phase.accum
        boundary = next((s for s in (cfg.phase2_step, cfg.phase3_step) if s > step), None)
        take = room if boundary is None else min(room, boundary - step)
        step, done = step + take, done + take * phase.accum
        if take == room:  # fewer than accum micro-batches left on some rank: epoch over
            epoch, done = epoch + 1, 0
            origins = [DataPosition(epoch)] * world
            if epoch < cfg.epochs:
                plans = [plan(origins[r], batch, r) for r in range(world)]
    return step
