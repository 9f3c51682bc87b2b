"""MidiTok REMI for bench/quality.py: its ids (the tokenizer of bench.common.remi_tokenizer)
as an Encoding the same transformer reads, a plain (uncached) sampler of REMI songs, and the
sampling settings it shares with the HID sampler of quality_score.py (GenSettings)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from meloformer.generate import SamplingConfig, sample
from meloformer.hid import Encoding
from meloformer.model import Batch

REMI_FAMILIES = ("Special", "Bar", "Position", "Pitch", "Velocity", "Duration", "Program",
                 "Tempo", "TimeSig", "Other")


@dataclass(frozen=True)
class GenSettings:
    """One sampling setting for every model: `n_samples` songs from scratch (the model picks
    the instruments), `bars` bars each, at most `max_tokens` tokens, drawn by
    meloformer.generate.sampling.sample with this temperature, top_p and seed."""

    n_samples: int = 4
    bars: int = 4
    max_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int = 0

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.temperature, 0, self.top_p, self.seed)


# ---------------------------------------------------------------- REMI as an Encoding


@dataclass(frozen=True)
class RemiTables:
    """Per REMI id: family index (REMI_FAMILIES), bar flag, position value (-1: none),
    program (-1: none; drums 128), note flag. BOS/EOS ids of the tokenizer."""

    family: np.ndarray
    is_bar: np.ndarray
    position: np.ndarray
    program: np.ndarray
    is_note: np.ndarray
    bos: int
    eos: int

    @classmethod
    def of(cls, tok) -> RemiTables:
        names = [tok[i] for i in range(len(tok))]
        kind = [n.split("_", 1)[0] for n in names]
        value = [n.split("_", 1)[1] if "_" in n else "" for n in names]
        fam = {"PAD": 0, "BOS": 0, "EOS": 0, "MASK": 0, "PitchDrum": 3}
        family = np.array([fam.get(k, REMI_FAMILIES.index(k) if k in REMI_FAMILIES else 9)
                           for k in kind], dtype=np.int64)
        pairs = list(zip(kind, value, strict=True))
        position = np.array([int(v) if k == "Position" else -1 for k, v in pairs])
        program = np.array([(128 if int(v) < 0 else int(v)) if k == "Program" else -1
                            for k, v in pairs])
        return cls(family, np.array([k == "Bar" for k in kind]), position, program,
                   np.array([k in ("Pitch", "PitchDrum") for k in kind]),
                   names.index("BOS_None"), names.index("EOS_None"))


def remi_encoding(ids: np.ndarray, t: RemiTables) -> Encoding:
    """REMI ids (BOS/EOS added) with metadata the transformer can read (remi_stream)."""
    return remi_stream(np.concatenate([[t.bos], ids, [t.eos]]), t)


def remi_stream(ids: np.ndarray, t: RemiTables) -> Encoding:
    """REMI ids as given (a whole song or a prefix) with their metadata: bar = Bar tokens
    so far, pos = the last Position in the bar, program = the last Program token (129 before
    any), track 0, type 0. Each is a function of the prefix, as HID's metadata is, so the
    sampler can rebuild it after every token."""
    ids = np.asarray(ids, dtype=np.int64)
    bar = np.maximum(np.cumsum(t.is_bar[ids]) - 1, 0)
    n = np.arange(len(ids))
    pos_at = np.where(t.is_bar[ids] | (t.position[ids] >= 0), n, -1)
    last = np.maximum.accumulate(pos_at)
    pos = np.where(last >= 0, np.maximum(t.position[ids[np.maximum(last, 0)]], 0), 0)
    prog_at = np.maximum.accumulate(np.where(t.program[ids] >= 0, n, -1))
    program = np.where(prog_at >= 0, t.program[ids[np.maximum(prog_at, 0)]], 129)
    zeros = np.zeros_like(ids)
    return Encoding(ids, zeros, bar, zeros.copy(), pos, program, int(bar.max()) + 1, 1,
                    int(t.is_note[ids].sum()))


@torch.no_grad()
def remi_sample_ids(model, t: RemiTables, g: GenSettings) -> list[list[int]]:
    """REMI: a plain sampling loop, the whole model re-run over every open row for every token
    (no cache, no grammar: only PAD/BOS/MASK are barred). Rows start at BOS and grow by one
    token per step (so the open rows always have one length); a row ends at EOS, at the Bar
    token that would open bar `bars` + 1, or at `max_tokens` tokens.

    Returns:
        Per sample, its ids without BOS and without the token that ended it.
    """
    model.eval()
    gen = torch.Generator().manual_seed(g.seed)
    allowed = torch.from_numpy(t.family != 0)  # family 0: the special tokens
    allowed[t.eos] = True
    rows, bars, done = [[t.bos] for _ in range(g.n_samples)], [0] * g.n_samples, []
    open_ = list(range(g.n_samples))
    while open_ and len(rows[open_[0]]) < g.max_tokens:
        batch = Batch.from_encodings([[remi_stream(np.array(rows[i]), t)] for i in open_])
        logits = model(batch)[:, -1]  # (open rows, V) after each row's last token
        tokens = sample(logits, allowed.expand(len(open_), -1), g.sampling(), gen).tolist()
        for i, tok in zip(open_, tokens, strict=True):
            bars[i] += bool(t.is_bar[tok])
            if tok == t.eos or bars[i] > g.bars:
                done.append(i)
            else:
                rows[i].append(tok)
        open_ = [i for i in open_ if i not in done]
    return [r[1:] for r in rows]


def remi_samples(model, tok, t: RemiTables, g: GenSettings) -> list[bytes | None]:
    """REMI samples decoded to MIDI by miditok (None: nothing to decode, or miditok failed)."""
    out = []
    for ids in remi_sample_ids(model, t, g):
        try:
            out.append(tok.decode(ids).dumps_midi() if ids else None)
        except Exception:  # noqa: BLE001 - a malformed sample counts as undecodable
            out.append(None)
    return out
