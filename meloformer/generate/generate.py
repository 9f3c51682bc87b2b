"""Generation, split as in gpt-fast: prefill (the shared prompt, one step), decode_one_token
(one step per token), and one sampling loop driven by either logit source: the cached one, or
`FullForward`, which re-runs the whole model per token (the oracle and the bench baseline)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from meloformer.device import autocast
from meloformer.generate.cache import DecodeCache
from meloformer.generate.conditions import (
    ConditionError,
    Conditions,
    resolve,
    unreached_control,
)
from meloformer.generate.constrain import Controller, GenerationError
from meloformer.generate.rows import CellTracker, build_rows
from meloformer.generate.sampling import SamplingConfig, pool_closing, sample
from meloformer.generate.script import Script, prompt_tokens
from meloformer.generate.step import StepFn, extend, forward_rows
from meloformer.hid import EOS, Encoding, Vocab
from meloformer.model import Batch, MeloFormer


class LogitSource(Protocol):
    """Next-token logits for B rows that grow in lockstep."""

    def prefill(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        """Read the prompt, tokens (B, P) with metas (B, P, 5); logits (B, V) after it."""

    def decode_one_token(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        """Read one more token per row, (B, 1) and (B, 1, 5); logits (B, V) after it."""

    def extend(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        """Read K more tokens per row at once, (B, K) and (B, K, 5) (a forced run); logits
        (B, V) after the last."""


# Tokens per read of a prompt or forced run in the sampling loop (the progress line's step;
# Cached cuts each read further into its prefill_chunk).
READ_CHUNK = 1024


class Cached:
    """Logits from the KV cache: prefill once, then one cached step per token.

    Args:
        static: give every decode step one shape (one summary row, all slots attended), so
            that `compile` can capture it once.
        compile: decode with torch.compile(step, mode="reduce-overhead") (CUDA graphs on
            GPU; gpt-fast's compiled decode_one_token). Implies static.
        prefill_chunk: prompt tokens per prefill step (bounds the (Q, K) mask of a long
            prompt, e.g. the given song of add-track).
        step: the tensor part of a step (default `forward_rows`; bench/generate.py passes a
            frozen older one to compare).
        dtype: autocast dtype of every step (None: the weights' dtype). The cache's keys
            and values are stored in the dtype the projections produce under it.
        sparse: DecodeCache's sparse steps (False: the whole-range baseline).
    """

    def __init__(self, model: MeloFormer, batch: int, max_tokens: int, max_summaries: int,
                 static: bool = False, compile: bool = False, prefill_chunk: int = 1024,
                 step: StepFn = forward_rows, dtype: torch.dtype | None = None,
                 sparse: bool = True):
        p = next(model.parameters())
        self.model, self.static, self.chunk = model, static or compile, prefill_chunk
        self.device, self.dtype = p.device, dtype
        self.cache = DecodeCache(model.cfg, batch, max_tokens, max_summaries, p.device,
                                 dtype or p.dtype, sparse)
        self.trackers = [CellTracker() for _ in range(batch)]
        self.eager_step = step
        self.step_fn = (torch.compile(step, mode="reduce-overhead", fullgraph=True)
                        if compile else step)

    def _step(self, tokens: np.ndarray, metas: np.ndarray, static: bool) -> torch.Tensor:
        cfg = self.model.cfg
        rows = build_rows(self.trackers, tokens, metas, self.cache.length, self.cache.geometry,
                          summaries=not self.cache.dense, summarize_empty=cfg.summarize_empty,
                          summary_rows=int(static and not self.cache.dense))
        step = self.step_fn if static else self.eager_step
        with autocast(self.device, self.dtype):
            logits = extend(self.model, self.cache, rows, step, full_range=static)[:, -1]
        return logits.float()

    def prefill(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        return self.extend(tokens, metas)

    def extend(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        """Chunks of at most `prefill_chunk` tokens: each step's mask is (chunk, slots in
        use), so memory grows linearly with the song, never with its square."""
        for i in range(0, tokens.shape[1], self.chunk):
            logits = self._step(tokens[:, i : i + self.chunk], metas[:, i : i + self.chunk],
                                static=False)
        return logits

    def decode_one_token(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        return self._step(tokens, metas, static=self.static)


class FullForward:
    """Logits from the whole model over the whole sequence at every token (no cache)."""

    def __init__(self, model: MeloFormer, executor: str | None = None):
        self.model, self.executor = model, executor
        self.tokens: np.ndarray | None = None
        self.metas: np.ndarray | None = None

    @torch.no_grad()
    def prefill(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        self.tokens, self.metas = tokens, metas
        songs = [_as_song(t, m) for t, m in zip(tokens, metas, strict=True)]
        batch = Batch.from_encodings([[s] for s in songs]).to(next(self.model.parameters()).device)
        return self.model(batch, self.model.plan(batch, self.executor))[:, -1]

    def decode_one_token(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        return self.extend(tokens, metas)

    def extend(self, tokens: np.ndarray, metas: np.ndarray) -> torch.Tensor:
        return self.prefill(np.concatenate([self.tokens, tokens], 1),
                            np.concatenate([self.metas, metas], 1))


@dataclass(frozen=True)
class Request:
    """What to generate: a mode's script, the conditions, sampling, and how many samples."""

    script: Script
    conditions: Conditions = Conditions()
    sampling: SamplingConfig = SamplingConfig()
    n_samples: int = 1


def generate(model: MeloFormer, vocab: Vocab, req: Request, cached: bool = True,
             compile: bool = False, dtype: torch.dtype | None = None,
             progress: Callable[[int], None] | None = None) -> list[Encoding]:
    """Sample `req.n_samples` songs at once under the grammar, the script and the conditions.

    Args:
        model: the model (its config decides the mask rules; eval mode is set here).
        vocab: the HID vocabulary the model was trained on.
        req: the request.
        cached: False runs the full-forward oracle instead of the KV cache.
        compile: decode with a compiled, CUDA-graphed step (see Cached).
        dtype: autocast dtype of the cached steps (None: fp32; meloformer.device).
        progress: called with the tokens written so far (the longest row), once per step.

    Returns:
        One Encoding per sample (ids and metadata as the encoder writes them).

    Raises:
        GenerationError: the prompt breaks the grammar or max_tokens cannot hold the song.
        ConditionError: a condition the vocabulary cannot write, or a control requested on
            a bar the run did not generate.
    """
    rules = resolve(req.conditions, vocab)
    prompt = prompt_tokens(req.script)
    if not prompt or len(prompt) >= rules.max_tokens:
        raise GenerationError(f"the prompt has {len(prompt)} tokens; it must be non-empty and "
                              f"shorter than max_tokens ({rules.max_tokens}): raise max_tokens")
    model.eval()
    n = req.n_samples
    slots = _summary_slots(model, rules.max_tokens)
    source = (Cached(model, n, rules.max_tokens, slots, compile=compile, dtype=dtype)
              if cached else FullForward(model))
    rows = [Controller(vocab, req.script, rules) for _ in range(n)]
    songs = _loop(source, rows, prompt, req.sampling, next(model.parameters()).device,
                  progress)
    for c in rows:  # a request the run could not honour is an error, never dropped silently
        message = unreached_control(req.conditions, set(c.st.controls))
        if message:
            raise ConditionError(message)
    return songs


@torch.no_grad()
def _loop(source: LogitSource, rows: list[Controller], prompt: tuple[int, ...],
          cfg: SamplingConfig, device: torch.device,
          progress: Callable[[int], None] | None = None) -> list[Encoding]:
    """The sampling loop shared by both logit sources.

    Tokens the script gives (a forced run: the given tracks after an added one, the bars
    around an infill span) are read in one step while every live row has some, as the
    prompt is: one token per model step only where something is sampled. (Add-track under
    a 227-bar song read its 7,200 given tokens after the new track one step each: 8 min.)
    """
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    ids = [list(prompt) for _ in rows]
    metas = [[_take(c, t) for t in prompt] for c in rows]
    report = progress or (lambda done: None)
    logits = _read(source, np.array(ids), np.array(metas), report, 0)
    while not all(c.done for c in rows):
        report(max(len(i) for i in ids))
        run = _forced_run(rows)
        if run:
            start = len(ids[0])
            logits = _read(source, *_take_run(rows, ids, metas, run), report, start)
            continue
        allowed = np.stack([_eos_only(c) if c.done else c.mask() for c in rows])
        logits = _pool_closing(logits, rows, allowed)
        tokens = sample(logits, torch.from_numpy(allowed).to(device), cfg, gen).tolist()
        for b, c in enumerate(rows):
            if c.done:  # a finished row repeats EOS's metadata; nothing is recorded
                tokens[b] = EOS
                continue
            metas[b].append(c.step(tokens[b]))
            ids[b].append(tokens[b])
        if all(c.done for c in rows):
            break
        step_meta = np.array([m[-1] for m in metas])[:, None]
        logits = source.decode_one_token(np.array(tokens)[:, None], step_meta)
    return [_as_song(np.array(i), np.array(m), c)
            for i, m, c in zip(ids, metas, rows, strict=True)]


def _read(source: LogitSource, tokens: np.ndarray, metas: np.ndarray,
          report: Callable[[int], None], start: int) -> torch.Tensor:
    """Read tokens (B, K) with metas (B, K, 5) in pieces of READ_CHUNK (start = 0: the
    prompt, whose first piece is the prefill), reporting the tokens read so far after each
    piece; logits (B, V) after the last."""
    for i in range(0, tokens.shape[1], READ_CHUNK):
        piece = (tokens[:, i : i + READ_CHUNK], metas[:, i : i + READ_CHUNK])
        logits = source.prefill(*piece) if start + i == 0 else source.extend(*piece)
        report(start + i + piece[0].shape[1])
    return logits


def _take_run(rows: list[Controller], ids: list[list[int]], metas: list[list[tuple]], run: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Step every live row through its next `run` given tokens (checked against the grammar
    as prompt tokens are) and record them; return the step's tokens (B, run) and metas
    (B, run, 5). A finished row repeats EOS with its last metadata; nothing is recorded."""
    live = [not c.done for c in rows]  # before the run: its last token may be EOS
    for b, c in enumerate(rows):
        for _ in range(run if live[b] else 0):
            token = c.forced()
            metas[b].append(_take(c, token))
            ids[b].append(token)
    tokens = [i[-run:] if on else [EOS] * run for on, i in zip(live, ids, strict=True)]
    step_metas = [m[-run:] if on else [m[-1]] * run for on, m in zip(live, metas, strict=True)]
    return np.array(tokens), np.array(step_metas)


def _forced_run(rows: list[Controller]) -> int:
    """Tokens every live row's script gives next (0 when some live row samples next).
    Only runs of 2 or more are read at once: one token is an ordinary decode step."""
    runs = [c.forced_run() for c in rows if not c.done]
    run = min(runs) if runs else 0
    return run if run >= 2 else 0


def _pool_closing(logits: torch.Tensor, rows: list[Controller],
                  allowed: np.ndarray) -> torch.Tensor:
    """Rows whose bar must close its track get the model's whole "bar over" mass on their
    allowed closing tokens (Controller.closing, sampling.pool_closing)."""
    sources = [None if c.done else c.closing(a) for c, a in zip(rows, allowed, strict=True)]
    if all(s is None for s in sources):
        return logits
    src = np.stack([np.zeros_like(a) if s is None else s for s, a in
                    zip(sources, allowed, strict=True)])
    dst = src & allowed
    device = logits.device
    return pool_closing(logits, torch.from_numpy(src).to(device), torch.from_numpy(dst).to(device))


def _summary_slots(model: MeloFormer, max_tokens: int) -> int:
    """Summaries a song of max_tokens can hold: one per cell of >= 2 tokens (or of 1)."""
    return max_tokens if model.cfg.summarize_empty else max_tokens // 2 + 1


def _take(c: Controller, token: int) -> tuple[int, ...]:
    """Step a prompt token, checked first (mask() raises GenerationError on a bad prompt)."""
    c.mask()
    return c.step(token)


def _eos_only(c: Controller) -> np.ndarray:
    out = np.zeros(len(c.vocab), dtype=bool)
    out[EOS] = True
    return out


def _as_song(ids: np.ndarray, metas: np.ndarray, c: Controller | None = None) -> Encoding:
    """ids (L,) and metas (L, 5) as an Encoding (counts from the grammar state when given)."""
    cols = np.asarray(metas, dtype=np.int64).reshape(-1, 5).T
    st = c.st if c is not None else None
    return Encoding(
        ids=np.asarray(ids, dtype=np.int32), track=cols[0].astype(np.int16),
        bar=cols[1].astype(np.int16), type=cols[2].astype(np.int8),
        pos=cols[3].astype(np.int16), program=cols[4].astype(np.int16),
        n_bars=st.n_bars if st else 0, n_tracks=len(st.programs) if st else 0,
        n_notes=len(st.notes) if st else 0,
    )
