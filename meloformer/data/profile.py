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

from meloformer.data.controls import split_songs
from meloformer.hid import DRUM_PROGRAM, ControlBins, Encoding, Family, Vocab, cell_stats

TRACK_DENSITY_SETS = 16  # instrumentations whose track densities the profile keeps
LEVEL_SONGS = 8  # ... each held by at least this many songs
MIDDLE_LEVEL = 2  # "mid": a track with no bar at all in the data


def _key(instruments: tuple[int, ...]) -> str:
    return ",".join(map(str, instruments))


@dataclass(frozen=True)
class CorpusProfile:
    """The training split in a few values.

    Attributes:
        meter: the most common opening time signature, "n/d".
        tempo: the median opening tempo, BPM (a tempo bin's centre).
        instruments: the most common set of programs (128 = drums), canonical order.
        meters: every time signature the songs use.
        programs: every program the songs use.
        track_density: for each instrumentation of at least LEVEL_SONGS songs (the
            TRACK_DENSITY_SETS most common), the median density control level (0..4, the
            meta.json `control_bins`) of each track's bars, empty ones counted below the
            lowest, canonical track order: ((instruments, levels), ...). Generation from
            scratch asks for these.
    """

    meter: str
    tempo: float
    instruments: tuple[int, ...]
    meters: tuple[str, ...]
    programs: tuple[int, ...]
    track_density: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    def to_dict(self) -> dict:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        d["track_density"] = {_key(s): list(levels) for s, levels in self.track_density}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CorpusProfile:
        """The profile of a meta.json or checkpoint (one written before `track_density`
        has none)."""
        levels = tuple((tuple(int(p) for p in key.split(",")), tuple(int(v) for v in value))
                       for key, value in d.get("track_density", {}).items())
        return cls(str(d["meter"]), float(d["tempo"]), tuple(int(p) for p in d["instruments"]),
                   tuple(str(m) for m in d["meters"]), tuple(int(p) for p in d["programs"]),
                   levels)

    def density_levels(self, instruments: tuple[int, ...]) -> tuple[int, ...] | None:
        """The density level of each track of `instruments` (canonical order) in the
        training songs with exactly these instruments; None when too few songs have them."""
        return dict(self.track_density).get(tuple(instruments))


def corpus_profile(files: list[Path], vocab: Vocab, bins: ControlBins | None = None,
                   split: str = "train") -> CorpusProfile:
    """The profile of `split`'s songs in the shards `files`; `bins` (meta.json
    `control_bins`) define the density levels of `track_density` (none without them)."""
    openings, tempos, sets = Counter(), [], Counter()
    meters, programs = set(), set()
    levels: dict[tuple[int, ...], list[list[np.ndarray]]] = {}  # set -> per song, per track
    ts_base, tempo_base = vocab.base(Family.TIME_SIG), vocab.base(Family.TEMPO)
    family = np.asarray(vocab.family_of)
    for enc in split_songs(files, split):
        ids = enc.ids
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
        if bins is not None and song:
            levels.setdefault(song, []).append(_bar_levels(enc, vocab, bins, len(song)))
    name = [f"{n}/{d}" for n, d in vocab.time_sigs]
    return CorpusProfile(
        meter=name[openings.most_common(1)[0][0]] if openings else "4/4",
        tempo=float(round(vocab.tempos[int(np.median(tempos))], 1)) if tempos else 120.0,
        instruments=sets.most_common(1)[0][0] if sets else (0,),
        meters=tuple(name[k] for k in sorted(meters)),
        programs=tuple(sorted(programs)),
        track_density=_track_density(sets, levels),
    )


def _bar_levels(enc: Encoding, vocab: Vocab, bins: ControlBins, tracks: int
                ) -> list[np.ndarray]:
    """Per track (canonical order) the density level of each of its bars, EMPTY (-1) for a
    bar without notes."""
    st = cell_stats(enc, vocab)
    level = bins.bin("density", st.density, st.empty)
    return [level[st.track == t] for t in range(1, tracks + 1)]


def _track_density(sets: Counter, levels: dict[tuple[int, ...], list[list[np.ndarray]]]
                   ) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """((instruments, each track's median bar level), ...) for the TRACK_DENSITY_SETS most
    common instrumentations of LEVEL_SONGS songs or more.

    The median runs over all the track's bars, an empty one counting below the lowest level
    (and a median empty bar asking for the lowest): asked of every bar, a level makes the bar
    sound, so a part that rests half the time (a pop song's bridge line: 53 % of its bars
    empty) must be asked sparse, or the song comes out twice as dense as the real ones."""
    out = []
    for song, n in sets.most_common(TRACK_DENSITY_SETS):
        if n < LEVEL_SONGS or song not in levels:
            break
        per_track = zip(*levels[song], strict=True)  # each: the songs' bar levels
        pooled = [np.concatenate(bars) for bars in per_track]
        out.append((song, tuple(max(int(np.quantile(b, 0.5, method="lower")), 0) if len(b)
                                else MIDDLE_LEVEL for b in pooled)))
    return tuple(out)


def opener_program(vocab: Vocab, token: int) -> int:
    """The program a track opener opens (DRUMS = 128)."""
    text = vocab.tokens[token]
    return DRUM_PROGRAM if text == "DRUMS" else int(text.removeprefix("PROGRAM_"))


def read_profile(meta_path: Path) -> CorpusProfile | None:
    """The `profile` of a meta.json; None if it has none (preprocessed before it)."""
    meta = json.loads(Path(meta_path).read_text())
    return CorpusProfile.from_dict(meta["profile"]) if "profile" in meta else None
