"""DataFeed: the DataLoader over what the batch stream (stream.py) plans for the current epoch
and phase; the stream's position (DataState) is the loop's to keep and checkpoint."""

from __future__ import annotations

import torch

from meloformer.data import SongIndex
from meloformer.hid import ControlBins, Vocab
from meloformer.model import ModelConfig, Planner
from meloformer.train.config import TrainConfig
from meloformer.train.dist import DistInfo, all_reduce
from meloformer.train.loader import MicroBatch, PlanDataset, make_loader
from meloformer.train.stream import BatchStream, DataState, Phase


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
            cfg.infill_rate, cfg.control_rate or cfg.transpose > 0).
        control_bins: meta.json `control_bins` (required when cfg.control_rate > 0).
    """

    def __init__(
        self, index: SongIndex, cfg: TrainConfig, info: DistInfo, device: torch.device,
        model_cfg: ModelConfig, vocab: Vocab | None = None,
        control_bins: ControlBins | None = None,
    ) -> None:
        self.index, self.cfg, self.info, self.device = index, cfg, info, device
        self.stream = BatchStream(index, cfg, info.rank, info.world)
        self.vocab, self.control_bins = vocab, control_bins
        self.planner = Planner(model_cfg, device.type)
        self.pin = device.type == "cuda"
        self._iter = None
        self._left = 0  # micro-batches every rank still has in this plan

    def start(self, state: DataState, phase: Phase) -> DataState:
        """(Re)open the stream at `state` for `phase` (BatchStream.open: a new micro-batch
        size re-plans the rest of the epoch, the same size skips the batches already done);
        returns the state to carry on with.
        """
        state, plan = self.stream.open(state, phase.batch_size)
        self.stop()
        c = self.cfg
        dataset = PlanDataset(self.index, plan, c.max_seq_len, c.seed, self.planner,
                              c.infill_rate, self.vocab, c.control_rate, self.control_bins,
                              c.transpose)
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

    def stop(self) -> None:
        """Drop the current loader (its worker processes exit)."""
        self._iter = None
