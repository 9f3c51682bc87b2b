"""Turn planned batches into micro-batches: read songs, crop long ones, pack and pad, and
build each batch's MaskPlan (layout + mask) right there, in the loader worker, off the step.

The DataLoader only parallelises the work; batch i is always plans[i] whatever the
number of workers (map-style dataset, sequential sampler), which keeps resume exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from meloformer.data import ShardReader, SongIndex, crop
from meloformer.hid import ControlBins, Vocab, add_controls, random_transpose
from meloformer.model import IGNORE, Batch, MaskPlan, Planner
from meloformer.train.infill import (
    CONTROL_STREAM,
    INFILL_STREAM,
    TRANSPOSE_STREAM,
    ignore_placeholder_targets,
    song_example,
    song_rng,
)
from meloformer.train.stream import PlannedBatch


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch as the step consumes it: the Batch and its MaskPlan (same device)."""

    batch: Batch
    plan: MaskPlan

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MicroBatch:
        return MicroBatch(self.batch.to(device, non_blocking), self.plan.to(device, non_blocking))

    def pin_memory(self) -> MicroBatch:
        """A copy in pinned host memory (DataLoader's pin_memory calls this)."""
        return MicroBatch(self.batch.pin_memory(), self.plan.pin_memory())


class PlanDataset(Dataset):
    """Item i = (MicroBatch of plans[i], i).

    Args:
        index: the split's SongIndex.
        plans: the batches to build, in order.
        max_seq_len: crop budget per song.
        seed: with the epoch and song index, fixes each song's crop window.
        planner: builds each batch's MaskPlan (the model's config and device).
        infill_rate, vocab: share of songs laid out as infill examples (train/infill.py);
            0 (the default) builds exactly the plain rows.
        control_rate, control_bins: share of songs with per-bar control tokens
            (hid/controls.py add_controls) and the bins that define them; 0 (the default):
            no control tokens.
        transpose: the largest shift in semitones of a song's random transposition
            (hid/transpose.py); 0 (the default): none.
    """

    def __init__(
        self, index: SongIndex, plans: Sequence[PlannedBatch], max_seq_len: int, seed: int,
        planner: Planner, infill_rate: float = 0.0, vocab: Vocab | None = None,
        control_rate: float = 0.0, control_bins: ControlBins | None = None,
        transpose: int = 0,
    ) -> None:
        self.index, self.plans = index, list(plans)
        self.max_seq_len, self.seed, self.planner = max_seq_len, seed, planner
        if (infill_rate > 0 or control_rate > 0 or transpose > 0) and vocab is None:
            raise ValueError("PlanDataset: infill_rate, control_rate or transpose > 0 needs the "
                             "vocabulary")
        if control_rate > 0 and control_bins is None:
            raise ValueError("PlanDataset: control_rate > 0 needs the control bins")
        self.infill_rate, self.vocab = infill_rate, vocab
        self.control_rate, self.control_bins = control_rate, control_bins
        self.transpose = transpose
        self._reader: ShardReader | None = None  # built lazily in each worker process

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> tuple[MicroBatch, int]:
        if self._reader is None:
            self._reader = ShardReader(self.index)
        plan = self.plans[i]
        rows = [[self._song(plan.epoch, s) for s in row] for row in plan.rows]
        batch = Batch.from_encodings(rows, plan.length)
        batch.targets[plan.n_real :] = IGNORE  # filler rows keep the shape, add no loss
        if self.infill_rate > 0:
            ignore_placeholder_targets(batch, self.vocab)
        return MicroBatch(batch, self.planner(batch)), i

    def _song(self, epoch: int, song: int):
        rng = np.random.default_rng([self.seed, epoch, song])
        enc = self._reader.song(song)
        # The row was planned for the song plus the room its controls and fill markers may
        # take (SongIndex.planned), so a song that fits keeps every bar and its EOS.
        budget = min(int(self.index.planned[song]), self.max_seq_len)
        if self.transpose > 0:  # first: the chords and controls then describe what plays
            enc = random_transpose(enc, self.transpose, self.vocab,
                                   song_rng(self.seed, epoch, song, TRANSPOSE_STREAM))
        if self.control_rate > 0:
            enc = add_controls(enc, self.vocab, self.control_bins, self.control_rate,
                               song_rng(self.seed, epoch, song, CONTROL_STREAM))
        if self.infill_rate > 0:
            fill_rng = song_rng(self.seed, epoch, song, INFILL_STREAM)
            return song_example(enc, budget, rng, fill_rng, self.infill_rate, self.vocab)
        return crop(enc, budget, rng)


def _first(item):
    """collate_fn: items are already batches (module-level: loader workers import it by name)."""
    return item


def make_loader(
    dataset: PlanDataset, start: int, num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """Iterate dataset items start, start+1, … with `num_workers` reader processes."""
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=range(start, len(dataset)),
        num_workers=num_workers,
        collate_fn=_first,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        generator=torch.Generator().manual_seed(0),  # unused by the sampler; no global draw
    )
