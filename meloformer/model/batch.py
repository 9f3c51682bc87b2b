"""Batch: the padded, packed (B, T) tensors the model consumes (token ids + HID metadata).

This is the contract between data loading and the model: a row holds one or more songs
(packing) back to back, then padding up to the row length T.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from meloformer.hid import META_FIELDS, PAD, Encoding

PAD_DOC = -1  # `doc` value of padding positions
IGNORE = -100  # `targets` value the loss skips (F.cross_entropy's ignore_index)


@dataclass(frozen=True)
class Batch:
    """B rows of T tokens. Every field is an int64 tensor of shape (B, T).

    Attributes:
        ids: token ids; PAD (0) past each row's real length.
        track, bar, type, pos, program: the HID metadata of each token (see
            meloformer.hid.song.Encoding); 0 at padding positions.
        doc: index of the song a token belongs to within its row (0, 1, 2, ... in packing
            order); PAD_DOC (-1) at padding positions. Attention never crosses documents.
        targets: the next token id inside the same document, IGNORE (-100) for the last token
            of each document and for padding.
    """

    ids: torch.Tensor
    track: torch.Tensor
    bar: torch.Tensor
    type: torch.Tensor
    pos: torch.Tensor
    program: torch.Tensor
    doc: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        shape = self.ids.shape
        for f in fields(self):
            value = getattr(self, f.name)
            if value.dim() != 2 or value.shape != shape:
                raise ValueError(f"Batch.{f.name}: shape {tuple(value.shape)}, expected {shape}")

    @property
    def shape(self) -> torch.Size:
        """(B, T)."""
        return self.ids.shape

    @property
    def device(self) -> torch.device:
        return self.ids.device

    @property
    def lengths(self) -> torch.Tensor:
        """Real (non-padding) tokens per row, (B,)."""
        return (self.doc >= 0).sum(dim=1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy of the batch on `device`."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
        }
        return Batch(**moved)

    def pin_memory(self) -> Batch:
        """A copy in pinned host memory (DataLoader's pin_memory calls this)."""
        return Batch(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    @classmethod
    def from_encodings(
        cls, rows: Sequence[Sequence[Encoding]], length: int | None = None
    ) -> Batch:
        """Pack songs into rows and pad the rows to one length.

        Args:
            rows: one list of songs per batch row; the songs of a row are packed in order.
            length: row length T; defaults to the longest row.

        Returns:
            The Batch (on CPU).

        Raises:
            ValueError: a row is empty, longer than `length`, or a song's metadata arrays do
                not match its ids.
        """
        packed = [_pack_row(row, i) for i, row in enumerate(rows)]
        if not packed:
            raise ValueError("Batch.from_encodings: no rows")
        longest = max(len(r["ids"]) for r in packed)
        length = longest if length is None else length
        if longest > length:
            raise ValueError(f"Batch.from_encodings: a row has {longest} tokens > length {length}")
        names = [f.name for f in fields(cls)]
        pad_value = {"ids": PAD, "doc": PAD_DOC, "targets": IGNORE}  # metadata pads with 0
        out = {}
        for name in names:
            full = np.full((len(packed), length), pad_value.get(name, 0), dtype=np.int64)
            for i, row in enumerate(packed):
                full[i, : len(row[name])] = row[name]
            out[name] = torch.from_numpy(full)
        return cls(**out)


def _pack_row(songs: Sequence[Encoding], row: int) -> dict[str, np.ndarray]:
    """Concatenate the songs of one row; doc ids and in-document next-token targets."""
    if not songs:
        raise ValueError(f"Batch.from_encodings: row {row} holds no song")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in META_FIELDS + ("ids", "doc", "targets")}
    for d, song in enumerate(songs):
        ids = np.asarray(song.ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError(f"Batch.from_encodings: row {row} song {d}: ids empty or not 1-D")
        for name in META_FIELDS:
            meta = np.asarray(getattr(song, name), dtype=np.int64)
            if meta.shape != ids.shape:
                raise ValueError(
                    f"Batch.from_encodings: row {row} song {d}: {name} has shape {meta.shape}, "
                    f"ids {ids.shape}"
                )
            parts[name].append(meta)
        parts["ids"].append(ids)
        parts["doc"].append(np.full_like(ids, d))
        # Next-token targets never cross into the next packed song.
        parts["targets"].append(np.append(ids[1:], IGNORE))
    return {k: np.concatenate(v) for k, v in parts.items()}
