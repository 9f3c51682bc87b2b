"""meta.json `control_bins`: the per-bar control bin edges (meloformer/hid/controls.py) from
the train split's non-empty bars, read from the shards one row group at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meloformer.hid import ControlBins, Encoding, Vocab, bin_edges, cell_stats

COLUMNS = ("ids", "track", "bar", "type")


def split_songs(files: list[Path], split: str) -> Iterator[Encoding]:
    """`split`'s songs in the shards `files`, one row group at a time, with the COLUMNS
    that cell_stats reads (pos and program zero, counts unset)."""
    for path in files:
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["split", *COLUMNS])
            t = t.filter(pc.equal(t.column("split"), split))
            for row in range(t.num_rows):
                cols = {c: np.asarray(t.column(c)[row].as_py()) for c in COLUMNS}
                zeros = np.zeros(len(cols["ids"]), dtype=np.int64)
                yield Encoding(**cols, pos=zeros, program=zeros, n_bars=0, n_tracks=0,
                               n_notes=0)


def control_bins(files: list[Path], vocab: Vocab, split: str = "train") -> ControlBins:
    """The quantile edges of note density and polyphony over the non-empty instrument bars
    of `split`'s songs (edges 1..4 when the split has none)."""
    density, polyphony = [], []
    for enc in split_songs(files, split):
        st = cell_stats(enc, vocab)
        density.append(st.density[~st.empty])
        polyphony.append(st.polyphony[~st.empty])
    return ControlBins(bin_edges(_cat(density)), bin_edges(_cat(polyphony)))


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def read_control_bins(meta_path: Path) -> ControlBins | None:
    """The `control_bins` of a meta.json; None if it has none (preprocessed before them)."""
    meta = json.loads(Path(meta_path).read_text())
    if "control_bins" not in meta:
        return None
    return ControlBins.from_dict(meta["control_bins"], f"{meta_path}: control_bins")
