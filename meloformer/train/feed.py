"""DataFeed: the loop's view of the data — plans for the current epoch and phase, the
DataLoader over them, and the resumable DataState (plan origin + batches done)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from meloformer.data.shards import SongIndex
from meloformer.hid.controls import ControlBins
from meloformer.hid.vocab import Vocab
from meloformer.model.config import ModelConfig
from meloformer.model.plan import Planner
from meloformer.train.config import TrainConfig
from meloformer.train.dist import DistInfo, all_reduce
from meloformer.train.loader import MicroBatch, PlanDataset, make_loader
from meloformer.train.phases import Phase
from meloformer.train.plan import DataPosition, PlannedBatch, plan_epoch


@dataclass(frozen=True)
class DataState:
    """Where the data stream is: the position its current plan starts from, how many of that
    plan's batches are done, and the micro-batch the plan was made for (0: none yet)."""

    origin: DataPosition = field(default_factory=DataPosition)
    done: int = 0
    batch_size: int = 0

    def next_epoch(self) -> DataState:
        return DataState(DataPosition(self.origin.epoch + 1), 0, self.batch_size)

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


class DataFeed:
    """Serves micro-batches for the current phase.

    Args:
        index: the train split.
        cfg: seed, buckets, packing, chunking, max_seq_len.
        info: rank and world (ranks get disjoint songs).
        device: where the model and collectives run (nccl needs CUDA tensors); it picks the
            executor the loader builds mask plans for; CUDA also pins host memory.
        model_cfg: the model's config (mask rules, block sizes, length bucket).
        vocab: the corpus's vocabulary (infill examples need its FILL tokens; required when
            cfg.infill_rate or cfg.control_rate > 0).
        control_bins: meta.json `control_bins` (required when cfg.control_rate > 0).
    """

    def __init__(
        self, index: SongIndex, cfg: TrainConfig, info: DistInfo, device: torch.device,
        model_cfg: ModelConfig, vocab: Vocab | None = None,
        control_bins: ControlBins | None = None,
    ) -> None:
        self.index, self.cfg, self.info, self.device = index, cfg, info, device
        self.vocab, self.control_bins = vocab, control_bins
        self.planner = Planner(model_cfg, device.type)
        self.pin = device.type == "cuda"
        self._iter = None
        self._left = 0  # micro-batches every rank still has in this plan

    def plans(self, origin: DataPosition, batch_size: int) -> list[PlannedBatch]:
        c = self.cfg
        return plan_epoch(self.index, origin, seed=c.seed, batch_size=batch_size,
                          buckets=c.bucket_lengths(), pack=c.pack, chunk_songs=c.chunk_songs,
                          rank=self.info.rank, world=self.info.world)

    def start(self, state: DataState, phase: Phase) -> DataState:
        """(Re)open the stream at `state` for `phase`; returns the state to carry on with.

        A new micro-batch size re-plans the rest of the epoch from the current position; the
        same size keeps the plan and skips the batches already done.
        """
        if state.batch_size != phase.batch_size:
            position = state.origin
            if state.batch_size:
                for batch in self.plans(state.origin, state.batch_size)[: state.done]:
                    position = position.advance(batch)
            state = DataState(position, 0, phase.batch_size)
        self.stop()
        dataset = PlanDataset(self.index, self.plans(state.origin, state.batch_size),
                              self.cfg.max_seq_len, self.cfg.seed, self.planner,
                              self.cfg.infill_rate, self.vocab, self.cfg.control_rate,
                              self.control_bins)
        self._iter = iter(make_loader(dataset, state.done, phase.num_workers, self.pin))
        # One collective per (re)start, none per step: the batches left on the poorest rank.
        left = torch.tensor([len(dataset) - state.done], device=self.device)
        self._left = int(all_reduce(left, "min").item())
        return state

    def take(self, n: int) -> list[MicroBatch]:
        """The next `n` micro-batches, or [] when any rank has fewer left (epoch end)."""
        if self._left < n:
            return []
        self._left -= n
        return [next(self._iter)[0] for _ in range(n)]

    @staticmethod
    def advance(state: DataState, n: int) -> DataState:
        """`state` after `n` more micro-batches were trained on."""
        return DataState(state.origin, state.done + n, state.batch_size)

    def stop(self) -> None:
        """Drop the current loader (its worker processes exit)."""
        self._iter = None
