"""The training loop: phases, data position, steps, logging and checkpoints.

`train()` is the library entry point (the CLI and tasks/train.py call it). Everything a resumed
run needs is in the checkpoint; the data stream is a pure function of (seed, epoch, plan
origin, batches done), so a run killed at any step and resumed repeats the same losses.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from meloformer.model.config import ModelConfig
from meloformer.model.transformer import MeloFormer
from meloformer.train.checkpoint import (
    LAST,
    load_checkpoint,
    model_config_dict,
    model_config_from,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from meloformer.train.config import TrainConfig
from meloformer.train.dist import DistInfo, all_reduce, init_distributed
from meloformer.train.feed import DataFeed, DataState
from meloformer.train.metrics import TrainLogger
from meloformer.train.optim import build_optimizer
from meloformer.train.phases import oom_line, phase_at, switch_line
from meloformer.train.schedule import lr_at
from meloformer.train.shards import build_index
from meloformer.train.step import LossModule, train_step
from meloformer.train.vocabulary import VocabRecord, check_corpus, checkpoint_vocab, corpus_vocab


class TooManyBadSteps(RuntimeError):
    """More steps than TrainConfig.max_bad_steps had a non-finite loss or gradient."""


def resolve_device(device: str, dist_info: DistInfo) -> torch.device:
    """"auto" -> cuda (this rank's GPU) when available, else cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", dist_info.local_rank)
    return torch.device(device)


def train(
    cfg: TrainConfig, model_cfg: ModelConfig, data_dir: Path, out_dir: Path,
    device: str = "auto", resume: bool = False,
) -> dict:
    """Train (or continue) a MeloFormer on the `train` split of the shards in `data_dir`.

    Args:
        cfg: training knobs.
        model_cfg: the model; on resume the checkpoint's config is used instead.
        data_dir: processed data dir (or its shards/ subdir).
        out_dir: receives checkpoints/last.pt, train.log, tb/, metrics/, plots/.
        device: "auto", "cpu", "cuda" or "cuda:N".
        resume: continue from out_dir/checkpoints/last.pt when it exists.

    Returns:
        The summary written to metrics/train.json.

    Raises:
        TooManyBadSteps: the non-finite guard tripped.
    """
    info = init_distributed("cuda" if "cuda" in device or (
        device == "auto" and torch.cuda.is_available()) else "cpu")
    dev = resolve_device(device, info)
    ckpt_path = Path(out_dir) / "checkpoints" / LAST
    ckpt = load_checkpoint(ckpt_path, dev) if resume and ckpt_path.exists() else None
    vocab = corpus_vocab(data_dir)  # the model speaks the corpus's vocabulary (meta.json)
    if ckpt is not None:  # the checkpoint's model, whatever model_cfg says
        model_cfg = model_config_from(ckpt)
        check_corpus(checkpoint_vocab(ckpt, str(ckpt_path), model_cfg.vocab_size), data_dir)
    else:
        model_cfg = model_cfg.replace(vocab_size=vocab.size)
    torch.manual_seed(cfg.seed)
    model = MeloFormer(model_cfg).to(dev)
    return _Run(cfg, model, data_dir, Path(out_dir), dev, info, ckpt, vocab).run()


class _Run:
    """One training run's mutable state (kept out of `train` to keep functions short)."""

    def __init__(self, cfg, model, data_dir, out_dir, dev, info, ckpt, vocab: VocabRecord
                 ) -> None:
        self.cfg, self.model, self.out_dir, self.dev, self.info = cfg, model, out_dir, dev, info
        self.vocab = vocab
        self.optimizer = build_optimizer(model, cfg)
        self.feed = DataFeed(build_index(data_dir), cfg, info, dev, model.cfg)
        self.total_steps = cfg.max_steps or self.feed.horizon()
        self.step, self.bad_steps, self.oom_halvings, self.tokens = 0, 0, 0, 0
        self.history: list[tuple[int, float, float, float]] = []  # step, loss, lr, grad norm
        self.data = DataState()
        if ckpt is not None:
            self._restore(ckpt)
        module = LossModule(model)
        if dev.type == "cuda" and cfg.compile:
            for block in model.blocks:
                block.compile()
        self.module = DistributedDataParallel(module) if info.world > 1 else module
        self.log = TrainLogger(out_dir, info.is_main, self.total_steps)
        if ckpt is not None and ckpt["train_config"] != _plain(cfg):
            self.log.line("warning: resuming with a train config that differs from the "
                          "checkpoint's; the data order follows the new one")

    def run(self) -> dict:
        """Train to the end; returns the summary. Sinks and loader close even on error."""
        try:
            self._train()
            self._save()
            return self._finish()
        finally:
            self.feed.stop()
            self.log.close()

    def _train(self) -> None:
        cfg, log = self.cfg, self.log
        log.line(f"MeloFormer {self.model.num_params():,} params, device {self.dev}, "
                 f"world {self.info.world}, {self.total_steps} steps, resume at {self.step}")
        phase = None
        t0, tok0 = time.perf_counter(), self.tokens
        while self.step < self.total_steps and self.data.origin.epoch < cfg.epochs:
            new = phase_at(self.step, cfg, self.oom_halvings)
            if new != phase:
                log.line(switch_line(self.step, phase, new))
                self.data = self.feed.start(self.data, new)
                phase = new
            micro = self.feed.take(phase.accum)
            if not micro:  # this epoch is over on some rank
                self.data = self.feed.start(self.data.next_epoch(), phase)
                continue
            try:
                res = self._step(micro)
            except torch.OutOfMemoryError:
                phase = self._on_oom(phase)
                continue
            self.data = self.feed.advance(self.data, len(micro))
            if not res.applied:
                self._bad_step(res)
                continue
            self.step += 1
            self.tokens += res.tokens
            self.history.append((self.step, res.loss, self._lr(self.step - 1), res.grad_norm))
            if self.step % cfg.log_every == 0:
                rate = (self.tokens - tok0) / max(time.perf_counter() - t0, 1e-9)
                self._log_step(res, phase.index, rate)
                t0, tok0 = time.perf_counter(), self.tokens
            if self.step % cfg.save_every == 0:
                self._save()

    def _lr(self, step: int) -> float:
        c = self.cfg
        return lr_at(step, c.learning_rate, c.warmup_steps, self.total_steps, c.min_lr_ratio)

    def _step(self, micro):
        c = self.cfg
        return train_step(self.module, self.optimizer, micro, self._lr(self.step), c.grad_clip,
                          self.dev, self.info.world)

    def _on_oom(self, phase):
        """Halve the micro-batch (doubling accumulation) and re-plan from the step's start.

        Under DDP the job stops instead: the other ranks are already waiting in this step's
        gradient all-reduce, so one rank cannot re-plan alone (it would hang the job). The
        error reaches torchrun, which stops every rank; resume with a smaller batch_size.
        """
        if self.info.world > 1:
            raise torch.OutOfMemoryError(
                f"out of memory on rank {self.info.rank} at step {self.step} (batch_size "
                f"{phase.batch_size}) under DDP: ranks cannot halve the batch mid-step; "
                "resume from the last checkpoint with a smaller train.batch_size")
        self.optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        if phase.batch_size == 1:
            raise torch.OutOfMemoryError("out of memory at micro-batch 1; nothing left to halve")
        self.oom_halvings += 1
        new = phase_at(self.step, self.cfg, self.oom_halvings)
        self.log.line(oom_line(self.step, phase, new))
        self.data = self.feed.start(self.data, new)
        return new

    def _bad_step(self, res) -> None:
        self.bad_steps += 1
        self.log.line(f"Step {self.step}: non-finite loss {res.loss} / grad norm "
                      f"{res.grad_norm}: step skipped ({self.bad_steps} so far)")
        if self.bad_steps > self.cfg.max_bad_steps:
            raise TooManyBadSteps(f"{self.bad_steps} non-finite steps > max_bad_steps "
                                  f"{self.cfg.max_bad_steps}")

    def _log_step(self, res, phase: int, rate: float) -> None:
        lr = self.history[-1][2]
        mem = torch.cuda.max_memory_allocated(self.dev) / 2**30 if self.dev.type == "cuda" else 0
        self.log.line(f"Step {self.step}: loss {res.loss:.4f} lr {lr:.3e} grad_norm "
                      f"{res.grad_norm:.3f} tokens/s {rate:,.0f} phase {phase}")
        self.log.scalars(self.step, {"loss": res.loss, "lr": lr, "tokens_per_s": rate,
                                     "grad_norm": res.grad_norm, "memory_gib": mem,
                                     "phase": phase})

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "model_config": model_config_dict(self.model.cfg), "train_config": _plain(self.cfg),
            "vocab": self.vocab.to_dict(),
            "step": self.step, "bad_steps": self.bad_steps, "oom_halvings": self.oom_halvings,
            "tokens": self.tokens, "data": self.data.to_dict(), "rng": rng_state(),
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, 4),
        }

    def _restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self.bad_steps = ckpt["step"], ckpt["bad_steps"]
        self.oom_halvings, self.tokens = ckpt["oom_halvings"], ckpt["tokens"]
        self.data = DataState.from_dict(ckpt["data"])
        self.history = [(int(row[0]), *row[1:]) for row in ckpt["history"].tolist()]
        set_rng_state(ckpt["rng"])

    def _save(self) -> None:
        """Checkpoint, metrics and loss curve (rank 0), so a killed run leaves all three."""
        if self.info.is_main:
            save_checkpoint(self.out_dir / "checkpoints" / LAST, self._state())
            self.log.write_outputs(self._summary(), self.history)

    def _summary(self) -> dict:
        last = self.history[-1][1] if self.history else float("nan")
        return {"steps": self.step, "final_loss": last, "tokens": self.tokens,
                "bad_steps": self.bad_steps, "epochs_done": self.data.origin.epoch,
                "num_params": self.model.num_params()}

    def _finish(self) -> dict:
        summary = self._summary()
        self.log.line(f"done: {summary}")
        all_reduce(torch.zeros(1, device=self.dev))  # ranks leave together
        return summary


def _plain(cfg: TrainConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
