"""meta.json `profile`: what the training data's songs are like, for generation's defaults.

A model knows only the meters, tempi and instruments it was trained on. Asked for a song
with nothing fixed, a weak model picked meters like 34/32 and programs never in its data
(sound effects 120-126); with the profile, generation from scratch fixes the data's most
common meter, a typical tempo and the most common instrumentation (and says so), and never
opens a track of a program the data does not have unless asked. The profile travels as the
vocabulary does: preprocess writes it to meta.json, training copies it into the checkpoint.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meloformer.hid import DRUM_PROGRAM, Family, Vocab


@dataclass(frozen=True)
class CorpusProfile:
    """The training split in a few values.

    Attributes:
        meter: the most common opening time signature, "n/d".
        tempo: the median opening tempo, BPM (a tempo bin's centre).
        instruments: the most common set of programs (128 = drums), canonical order.
        meters: every time signature the songs use.
        programs: every program the songs use.
    """

    meter: str
    tempo: float
    instruments: tuple[int, ...]
    meters: tuple[str, ...]
    programs: tuple[int, ...]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> CorpusProfile:
        return cls(str(d["meter"]), float(d["tempo"]), tuple(int(p) for p in d["instruments"]),
                   tuple(str(m) for m in d["meters"]), tuple(int(p) for p in d["programs"]))


def corpus_profile(files: list[Path], vocab: Vocab, split: str = "train") -> CorpusProfile:
    """The profile of `split`'s songs in the shards `files` (reads the ids column only)."""
    openings, tempos, sets = Counter(), [], Counter()
    meters, programs = set(), set()
    ts_base, tempo_base = vocab.base(Family.TIME_SIG), vocab.base(Family.TEMPO)
    family = np.asarray(vocab.family_of)
    for path in files:
        pf = pq.ParquetFile(path)
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=["split", "ids"])
            t = t.filter(pc.equal(t.column("split"), split))
            for ids in t.column("ids").to_pylist():
                ids = np.asarray(ids)
                fam = family[ids]
                ts = ids[fam == Family.TIME_SIG] - ts_base
                if len(ts):
                    openings[int(ts[0])] += 1
                    meters.update(int(k) for k in np.unique(ts))
                tempo = ids[fam == Family.TEMPO] - tempo_base
                if len(tempo):
                    tempos.append(int(tempo[0]))
                song = tuple(opener_program(vocab, int(i)) for i in ids[fam == Family.TRACK])
                sets[song] += 1
                programs.update(song)
    name = [f"{n}/{d}" for n, d in vocab.time_sigs]
    return CorpusProfile(
        meter=name[openings.most_common(1)[0][0]] if openings else "4/4",
        tempo=float(round(vocab.tempos[int(np.median(tempos))], 1)) if tempos else 120.0,
        instruments=sets.most_common(1)[0][0] if sets else (0,),
        meters=tuple(name[k] for k in sorted(meters)),
        programs=tuple(sorted(programs)),
    )


def opener_program(vocab: Vocab, token: int) -> int:
    """The program a track opener opens (DRUMS = 128)."""
    text = vocab.tokens[token]
    return DRUM_PROGRAM if text == "DRUMS" else int(text.removeprefix("PROGRAM_"))


def read_profile(meta_path: Path) -> CorpusProfile | None:
    """The `profile` of a meta.json; None if it has none (preprocessed before it)."""
    meta = json.loads(Path(meta_path).read_text())
    return CorpusProfile.from_dict(meta["profile"]) if "profile" in meta else None
