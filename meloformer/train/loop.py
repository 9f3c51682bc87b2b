"""The training loop: phases, data position, steps, logging and checkpoints.

`train()` is the library entry point (the CLI and tasks/train.py call it). Everything a resumed
run needs is in the checkpoint; the data stream is a pure function of (seed, epoch, plan
origin, batches done), so a run killed at any step and resumed repeats the same losses.
Checkpoints go out every `save_every` steps, every `save_every_s` seconds, at the end, and on
SIGINT/SIGTERM (then the run stops with `Interrupted`). Each carries the run key (a hash of
the resolved configs and the shards' bytes) so `resume="auto"` continues only the same run.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Literal

import torch
from torch.nn.parallel import DistributedDataParallel

from meloformer.data import build_index, meta_path, read_control_bins, read_profile
from meloformer.device import autocast_dtype, compiler_missing, resolve_device, use_cpu_threads
from meloformer.errors import Stopped, UserError
from meloformer.io import json_ready
from meloformer.model import MeloFormer, ModelConfig
from meloformer.train.checkpoint import (
    LAST,
    kept_name,
    load_checkpoint,
    load_learned,
    model_config_dict,
    model_config_from,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trained_for,
)
from meloformer.train.config import TrainConfig
from meloformer.train.dist import all_reduce, init_distributed
from meloformer.train.feed import DataFeed
from meloformer.train.infill import example_room
from meloformer.train.metrics import METRICS_FILE, TrainLogger
from meloformer.train.optim import build_optimizer, lr_at
from meloformer.train.start import auto_resume, pretrained, run_key
from meloformer.train.step import LossModule, train_step
from meloformer.train.stream import DataState, epoch_steps, oom_line, phase_at, switch_line
from meloformer.train.vocabulary import (
    VocabError,
    VocabRecord,
    check_corpus,
    checkpoint_vocab,
    corpus_vocab,
)


class TooManyBadSteps(UserError, RuntimeError):
    """More steps than TrainConfig.max_bad_steps had a non-finite loss or gradient."""


class Interrupted(Stopped):
    """SIGINT or SIGTERM stopped the run after it wrote a checkpoint (`signum` says which)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def train(
    cfg: TrainConfig, model_cfg: ModelConfig, data_dir: Path, out_dir: Path,
    device: str = "auto", resume: bool | Literal["auto"] = False,
    metrics_dir: Path | None = None,
) -> dict:
    """Train (or continue) a MeloFormer on the `train` split of the shards in `data_dir`.

    Args:
        cfg: training knobs.
        model_cfg: the model; on resume the checkpoint's config is used instead.
        data_dir: processed data dir (or its shards/ subdir).
        out_dir: receives checkpoints/last.pt, train.log, tb/, metrics/, plots/.
        device: "auto", "cpu", "cuda" or "cuda:N".
        resume: True: continue from out_dir/checkpoints/last.pt when it exists. "auto" (what
            `dvc repro` uses): continue only an unfinished run with the same run key, else
            start fresh and log why.
        metrics_dir: receives train.json and plots/train_loss.tsv (default out_dir/metrics).

    Returns:
        The summary written to metrics_dir/train.json.

    Raises:
        TooManyBadSteps: the non-finite guard tripped.
        Interrupted: SIGINT/SIGTERM arrived; a checkpoint of the last step was written.
        CheckpointError: resume=True and the checkpoint is unreadable.
    """
    info = init_distributed("cuda" if "cuda" in device or (
        device == "auto" and torch.cuda.is_available()) else "cpu")
    dev = resolve_device(device, info.local_rank)
    if dev.type == "cpu":
        use_cpu_threads(cfg.threads)
    ckpt_path = Path(out_dir) / "checkpoints" / LAST
    ckpt = load_checkpoint(ckpt_path, dev) if resume is True and ckpt_path.exists() else None
    key = run_key(cfg, model_cfg, data_dir)
    note = None
    if resume == "auto" and ckpt_path.exists():
        ckpt, note = auto_resume(ckpt_path, dev, key)
    if ckpt is not None:  # the checkpoint's model and vocabulary, whatever model_cfg says
        model_cfg = model_config_from(ckpt)
        vocab = checkpoint_vocab(ckpt, str(ckpt_path), model_cfg.vocab_size)
        check_corpus(vocab, data_dir)
    else:  # the model speaks the corpus's vocabulary (meta.json)
        vocab = corpus_vocab(data_dir)
        model_cfg = model_cfg.replace(vocab_size=vocab.size)
    torch.manual_seed(cfg.seed)
    if ckpt is None and cfg.init_from:
        model = pretrained(Path(cfg.init_from), vocab, dev)
        if model_config_dict(model.cfg) != model_config_dict(model_cfg):
            note = "; ".join(filter(None, [note, (
                f"fine-tuning {cfg.init_from}: its architecture runs ({model.cfg.n_layer} "
                "layers); model_size and model: apply to runs from scratch "
                "(train.init_from null)")]))
    else:
        model = MeloFormer(model_cfg).to(dev)
    metrics_dir = Path(metrics_dir) if metrics_dir else Path(out_dir) / "metrics"
    return _Run(cfg, model, data_dir, Path(out_dir), dev, info, ckpt, key, metrics_dir,
                note, vocab).run()


class _Run:
    """One training run's mutable state (kept out of `train` to keep functions short)."""

    def __init__(self, cfg, model, data_dir, out_dir, dev, info, ckpt, key, metrics_dir,
                 note, vocab: VocabRecord) -> None:
        self.cfg, self.model, self.out_dir, self.dev, self.info = cfg, model, out_dir, dev, info
        self.key, self.complete, self.signum = key, False, 0
        self.vocab = vocab
        self.optimizer = build_optimizer(model, cfg)
        index = build_index(data_dir)
        index = index.with_room(example_room(index, cfg.infill_rate, cfg.control_rate))
        bins = read_control_bins(meta_path(data_dir)) if cfg.control_rate > 0 else None
        self.profile = read_profile(meta_path(data_dir))  # generation's defaults
        # What generation may ask of this model (a fine-tune keeps what its start learned).
        self.learned = trained_for(json_ready(cfg), cfg.init_from
                                   and load_learned(Path(cfg.init_from)))
        if cfg.control_rate > 0 and bins is None:
            raise VocabError(f"{meta_path(data_dir)}: no control_bins (preprocessed before "
                             "controls existed): rerun preprocess, or set control_rate 0")
        self.feed = DataFeed(index, cfg, info, dev, model.cfg, vocab.vocab(), bins)
        self.epoch_steps = epoch_steps(index, cfg, info.world)
        self.total_steps = max(1, min(cfg.max_steps or self.epoch_steps, self.epoch_steps))
        self.step, self.bad_steps, self.oom_halvings, self.tokens = 0, 0, 0, 0
        self.rate = 0.0  # tokens/s over the last log_every steps (train.json: tokens_per_s)
        self.history: list[tuple[int, float, float, float]] = []  # step, loss, lr, grad norm
        self.data = DataState()
        if ckpt is not None:
            self._restore(ckpt)
        module = LossModule(model)
        self.dtype = autocast_dtype(cfg.precision, dev)
        self.log = TrainLogger(out_dir, info.is_main, self.total_steps, metrics_dir, self.step)
        self.compiled = self._compile(model)
        self.module = DistributedDataParallel(module) if info.world > 1 else module
        if note:
            self.log.line(note)
        if ckpt is not None and ckpt["train_config"] != json_ready(cfg):
            self.log.line("warning: resuming with a train config that differs from the "
                          "checkpoint's; the data order follows the new one")

    def _compile(self, model: MeloFormer) -> bool:
        """Compile each block when cfg.compile asks (auto: wherever a compiler runs); one
        warning line and eager mode when none does. Returns whether the blocks compiled."""
        if self.cfg.compile is False:
            return False
        missing = compiler_missing(self.dev)
        if missing:
            self.log.line(f"warning: running eager: {missing}")
            return False
        for block in model.blocks:
            block.compile()
        return True

    def run(self) -> dict:
        """Train to the end; returns the summary. Sinks and loader close even on error."""
        restore = self._catch_signals()
        try:
            self._train()
            if self.signum:
                self._save()
                name = signal.Signals(self.signum).name
                self.log.line(f"{name} at step {self.step}: checkpoint saved; run the same "
                              "command again (or dvc repro) to continue")
                raise Interrupted(f"training stopped by {name} at step {self.step}; "
                                  "the checkpoint is saved, rerun to continue", self.signum)
            self.complete = True
            self._save()
            return self._finish()
        finally:
            restore()
            self.feed.stop()
            self.log.close()

    def _catch_signals(self):
        """Turn the first SIGINT/SIGTERM into a stop after the current step (a second one
        acts as usual); returns the function restoring the old handlers. Main thread only
        (a Prefect task thread cannot install handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        sigs = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.getsignal(s) for s in sigs}

        def restore() -> None:
            for s, handler in old.items():
                signal.signal(s, handler)

        def on_signal(signum, frame) -> None:
            self.signum = signum
            restore()

        for s in sigs:
            signal.signal(s, on_signal)
        return restore

    def _stop_requested(self) -> bool:
        """A signal arrived on any rank (every rank stops at the same step)."""
        if self.info.world == 1:
            return bool(self.signum)
        flag = torch.tensor([int(bool(self.signum))], device=self.dev)
        self.signum = self.signum or (signal.SIGTERM if all_reduce(flag).item() else 0)
        return bool(self.signum)

    def _train(self) -> None:
        cfg, log = self.cfg, self.log
        log.line(f"MeloFormer {self.model.num_params():,} params, device {self.dev}, "
                 f"world {self.info.world}, {self.total_steps} steps "
                 f"({cfg.epochs} epochs = {self.epoch_steps} steps), resume at {self.step}")
        log.line(f"config: {json.dumps(self._config())}")
        log.line(f"precision {self.dtype or torch.float32} (autocast), compiled blocks "
                 f"{self.compiled}, {torch.get_num_threads()} CPU threads")
        phase, phase_steps = None, 0
        t0, tok0 = time.perf_counter(), self.tokens
        saved_at = time.monotonic()
        while self.data.origin.epoch < cfg.epochs and (
                not cfg.max_steps or self.step < cfg.max_steps):
            if self._stop_requested():
                return
            new = phase_at(self.step, cfg, self.oom_halvings)
            if new != phase:
                log.line(switch_line(self.step, phase, new))
                self.data = self.feed.start(self.data, new)
                phase, phase_steps = new, 0
            micro = self.feed.take(phase.accum)
            if not micro:  # this epoch is over on some rank
                self.data = self.data.next_epoch()
                if self.data.origin.epoch < cfg.epochs:
                    self.data = self.feed.start(self.data, phase)
                continue
            try:
                started = time.perf_counter()
                res = self._step(micro)
                if self.compiled and phase_steps == 0:
                    log.line(f"first step of phase {phase.index}: "
                             f"{time.perf_counter() - started:.1f} s (includes compiling)")
                phase_steps += 1
            except torch.OutOfMemoryError:
                phase = self._on_oom(phase)
                continue
            self.data = self.data.advance(len(micro))
            if not res.applied:
                self._bad_step(res)
                continue
            self.step += 1
            self.tokens += res.tokens
            self.history.append((self.step, res.loss, self._lr(self.step - 1), res.grad_norm))
            # tokens/s since the last line shown on the terminal (every log_every steps)
            rate = (self.tokens - tok0) / max(time.perf_counter() - t0, 1e-9)
            show = self.step % cfg.log_every == 0
            self._log_step(res, phase.index, rate, show)
            if show:
                self.rate = rate
                t0, tok0 = time.perf_counter(), self.tokens
            due = cfg.save_every_s and time.monotonic() - saved_at >= cfg.save_every_s
            kept = cfg.keep_every and self.step % cfg.keep_every == 0
            if self.step % cfg.save_every == 0 or due or kept:
                self._save(keep=bool(kept))
                saved_at = time.monotonic()

    def _lr(self, step: int) -> float:
        c = self.cfg
        return lr_at(step, c.learning_rate, c.warmup_steps, self.total_steps, c.min_lr_ratio)

    def _step(self, micro):
        c = self.cfg
        return train_step(self.module, self.optimizer, micro, self._lr(self.step), c.grad_clip,
                          self.dev, self.info.world, self.dtype)

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

    def _log_step(self, res, phase: int, rate: float, show: bool) -> None:
        """Every step to train.log and TensorBoard; to the terminal only when `show`."""
        lr = self.history[-1][2]
        mem = torch.cuda.max_memory_allocated(self.dev) / 2**30 if self.dev.type == "cuda" else 0
        self.log.line(f"Step {self.step}: loss {res.loss:.4f} lr {lr:.3e} grad_norm "
                      f"{res.grad_norm:.3f} tokens/s {rate:,.0f} phase {phase}", show)
        self.log.scalars(self.step, {"loss": res.loss, "lr": lr, "tokens_per_s": rate,
                                     "grad_norm": res.grad_norm, "memory_gib": mem,
                                     "phase": phase})

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "model_config": model_config_dict(self.model.cfg),
            "train_config": json_ready(self.cfg),
            "run_key": self.key, "complete": self.complete,
            "vocab": self.vocab.to_dict(),
            "profile": self.profile.to_dict() if self.profile else None,
            "learned": self.learned,
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

    def _save(self, keep: bool = False) -> None:
        """Checkpoint, metrics and loss curve (rank 0), so a killed run leaves all three;
        `keep` also writes the step's own copy (train.keep_every)."""
        if self.info.is_main:
            state = self._state()
            save_checkpoint(self.out_dir / "checkpoints" / LAST, state)
            if keep:
                save_checkpoint(self.out_dir / "checkpoints" / kept_name(self.step), state)
            self.log.write_outputs(self._summary(), self._config(), self.history)

    def _summary(self) -> dict:
        last = self.history[-1][1] if self.history else float("nan")
        return {"steps": self.step, "final_loss": last, "tokens": self.tokens,
                "bad_steps": self.bad_steps, "epochs_done": self.data.origin.epoch,
                "num_params": self.model.num_params(), "tokens_per_s": round(self.rate, 1)}

    def _config(self) -> dict:
        """What actually runs: the resolved TrainConfig and ModelConfig (train_config.json)."""
        return {"train": json_ready(self.cfg), "model": model_config_dict(self.model.cfg)}

    def _finish(self) -> dict:
        summary = self._summary()
        self.log.line(f"done: {summary['steps']} steps, {summary['epochs_done']} epochs, "
                      f"{summary['tokens']:,} tokens, final loss {summary['final_loss']:.4f}, "
                      f"{summary['bad_steps']} bad steps ({self.log.metrics_dir / METRICS_FILE})")
        all_reduce(torch.zeros(1, device=self.dev))  # ranks leave together
        return summary
