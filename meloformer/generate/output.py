"""Writing a generated song: <stem>.mid, <stem>.png (piano roll) and <stem>.json (tokens)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meloformer.errors import UserError
from meloformer.generate.pianoroll import plot_pianoroll
from meloformer.hid import Encoding, Vocab, decode, parse_tokens
from meloformer.io import atomic_path


def write_sample(song: Encoding, vocab: Vocab, out_dir: Path, stem: str,
                 info: dict[str, Any] | None = None,
                 marks: list[tuple[int, int, int]] | None = None) -> dict[str, Path]:
    """Write one song's MIDI, piano roll and token JSON (each atomically).

    Args:
        song: the generated Encoding.
        vocab: its vocabulary.
        out_dir: directory (created if missing).
        stem: file name without suffix, e.g. "sample-000".
        info: extra JSON fields (seed, conditions, checkpoint...).
        marks: (track, first bar, last bar) spans the piano roll marks as regenerated.

    Returns:
        {"mid": path, "png": path, "json": path}.
    """
    out_dir = Path(out_dir)
    ids = [int(i) for i in song.ids]
    paths = {kind: out_dir / f"{stem}.{kind}" for kind in ("mid", "png", "json")}
    with atomic_path(paths["mid"]) as tmp:
        decode(ids, vocab).save(str(tmp))
    plot_pianoroll(parse_tokens(ids, vocab), vocab.config.resolution, paths["png"], title=stem,
                   marks=marks)
    record = {
        "vocab_hash": vocab.hash,
        **(info or {}),
        "n_tokens": len(ids),
        "n_bars": song.n_bars,
        "n_tracks": song.n_tracks,
        "n_notes": song.n_notes,
        "ids": ids,
        "tokens": [vocab.tokens[i] for i in ids],
    }
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(record) + "\n")
    return paths


class SampleError(UserError, ValueError):
    """A sample file that is not what write_sample writes (the message names it)."""


def read_sample_ids(path: Path) -> list[int]:
    """The token ids of a sample JSON written by write_sample.

    Raises:
        SampleError: the file is not such a JSON (the message names it).
    """
    try:
        record = json.loads(Path(path).read_text())
        return [int(i) for i in record["ids"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SampleError(f"{path}: not a generated-sample JSON ({e})") from e

