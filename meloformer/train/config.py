"""TrainConfig: every training knob as one frozen dataclass, and the hardware PRESETS."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from meloformer.device import PRECISIONS
from meloformer.errors import ConfigError, check


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (params.yaml `train:`; CLI flags override them).

    Phases: steps [0, phase2_step) run phase 1 (micro-batch 1, no loader workers: compile
    warm-up), [phase2_step, phase3_step) phase 2 (workers on), then phase 3 (the target
    `batch_size`). Steps count optimizer updates.
    """

    max_seq_len: int = 8192
    """Longest row in tokens; longer songs train on a window of whole bars over all tracks."""
    batch_size: int = 8
    """Phase-3 micro-batch (rows per forward) on each process."""
    gradient_accumulation_steps: int = 6
    """Micro-batches summed into one optimizer step."""
    learning_rate: float = 3e-4
    """Peak AdamW learning rate (after warm-up, before the cosine decay)."""
    min_lr_ratio: float = 0.1
    """Cosine floor as a fraction of learning_rate."""
    warmup_steps: int = 200
    """Optimizer steps of linear warm-up to learning_rate (train.schedule)."""
    weight_decay: float = 0.1
    """AdamW decay of the matrices (not norms, biases, embeddings)."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this before each optimizer step."""
    epochs: int = 3
    """Passes over the training split (unless max_steps stops earlier)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run `epochs` epochs)."""
    num_workers: int = 8
    """Loader processes from phase 2 on."""
    phase2_step: int = 20
    """Phase 1 (micro-batch 1, no workers: compile warm-up) ends at this step."""
    phase3_step: int = 100
    """Phase 2 (workers on) ends at this step; the target batch_size from here."""
    seed: int = 1337
    """Seeds the weights and every epoch's song order (train.plan)."""
    buckets: tuple[float, ...] = (0.25, 0.5, 1.0)
    """Row lengths as fractions of max_seq_len (rounded up to a multiple of 128)."""
    pack: bool = False
    """Pack several songs per row (doc ids keep them apart) instead of one song per row."""
    chunk_songs: int = 1024
    """Songs bucketed together; batches never mix chunks (bounds reordering and memory)."""
    compile: bool | str = "auto"
    """torch.compile the blocks: "auto" compiles wherever a compiler runs (CUDA, and CPUs
    with a C++ compiler; one warning line and eager mode otherwise), True/False force it."""
    precision: str = "auto"
    """Autocast dtype of the matmuls: "auto" = bf16 on CUDA and on CPUs with native bf16
    (AMX / AVX512-BF16), fp32 elsewhere; "bf16" or "fp32" force it. Weights, optimizer state
    and checkpoints stay fp32 (meloformer.device)."""
    threads: int = 0
    """CPU threads for torch; 0 = the cores this process may use (or OMP_NUM_THREADS)."""
    init_from: str | None = None
    """Start from this checkpoint's weights (fine-tuning): its vocabulary must match the
    data's; the optimizer, step count and run key start fresh. None: random weights."""
    log_every: int = 10
    """Log the loss every this many optimizer steps."""
    save_every: int = 500
    """Checkpoint every this many steps (and every save_every_s seconds)."""
    save_every_s: float = 300.0
    """Also checkpoint when this many seconds passed since the last save (0: off)."""
    max_bad_steps: int = 20
    """Abort after this many steps skipped for a non-finite loss."""
    infill_rate: float = 0.0
    """Share of training songs laid out as infill examples (a random track, 1-8 random bars
    moved to the end: docs/hid.md "Infilling"); 0 keeps the plain rows bit for bit."""
    control_rate: float = 0.0
    """Share of training songs that carry per-bar control tokens (note density, polyphony:
    docs/hid.md "Controls"); in such a song each bar that plays keeps each control with
    probability hid.controls.BAR_KEEP. 0 writes none (the plain rows)."""
    transpose: int = 0
    """Move each training song's melodic pitches and chord roots by a random number of
    semitones in [-transpose, transpose] (kept inside 0..127; drums stay), drawn anew per
    (epoch, song): hid.transpose. 0 keeps the plain rows bit for bit."""
    keep_every: int = 0
    """Also keep the checkpoint of every this many steps as checkpoints/step-NNNNNNN.pt (a
    run's curve: bench.curve); 0 keeps only last.pt."""

    def __post_init__(self) -> None:
        # ConfigError names the field: "params.yaml: train.<field>: ..." or "--<field>: ...".
        positive = ("max_seq_len", "batch_size", "gradient_accumulation_steps", "epochs",
                    "chunk_songs", "log_every", "save_every")
        for name in positive:
            check(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        for name in ("num_workers", "max_steps", "warmup_steps", "phase2_step", "max_bad_steps",
                     "save_every_s", "weight_decay", "grad_clip"):
            check(name, getattr(self, name), getattr(self, name) >= 0, "must be >= 0")
        check("learning_rate", self.learning_rate, self.learning_rate > 0, "must be > 0")
        check("min_lr_ratio", self.min_lr_ratio, 0 <= self.min_lr_ratio <= 1,
              "must be in [0, 1]")
        for name in ("infill_rate", "control_rate"):
            value = getattr(self, name)
            check(name, value, 0 <= value <= 1, "must be in [0, 1]")
        check("compile", self.compile, self.compile in (True, False, "auto"),
              "must be true, false or auto")
        check("precision", self.precision, self.precision in PRECISIONS,
              f"must be one of {list(PRECISIONS)}")
        check("threads", self.threads, self.threads >= 0, "must be >= 0")
        check("transpose", self.transpose, 0 <= self.transpose <= 12, "must be in 0..12")
        check("keep_every", self.keep_every, self.keep_every >= 0, "must be >= 0")
        for name in ("beta1", "beta2"):
            check(name, getattr(self, name), 0 <= getattr(self, name) < 1, "must be in [0, 1)")
        check("phase3_step", self.phase3_step, self.phase3_step >= self.phase2_step,
              f"must be >= phase2_step ({self.phase2_step})")
        ok = bool(self.buckets) and sorted(self.buckets) == list(self.buckets) and \
            self.buckets[-1] == 1 and self.buckets[0] > 0
        check("buckets", list(self.buckets), ok, "must be ascending fractions in (0, 1] "
              "ending in 1")

    def bucket_lengths(self) -> tuple[int, ...]:
        """Static row lengths T, ascending; the last is max_seq_len."""
        out = {min(self.max_seq_len, -(-int(f * self.max_seq_len) // 128) * 128)
               for f in self.buckets}
        return tuple(sorted(out))


# Per-hardware overrides of TrainConfig. Sequence length x micro-batch is what fits in memory
# for `small`/`base`; accumulation keeps the global batch near 48 sequences of 8k tokens.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(max_seq_len=1024, batch_size=2, gradient_accumulation_steps=1, num_workers=0,
                phase2_step=0, phase3_step=0, log_every=25, save_every=50),
    "rtx6000ada": dict(max_seq_len=8192, batch_size=4, gradient_accumulation_steps=12,
                       num_workers=8),
    "h800": dict(max_seq_len=8192, batch_size=8, gradient_accumulation_steps=6, num_workers=8),
    "h100": dict(max_seq_len=8192, batch_size=8, gradient_accumulation_steps=6, num_workers=8),
    "h200": dict(max_seq_len=8192, batch_size=12, gradient_accumulation_steps=4,
                 num_workers=12),
}


def resolve(preset: str | None = None, given: dict[str, Any] | None = None,
            base: TrainConfig | None = None) -> TrainConfig:
    """The run's TrainConfig: `base` (default TrainConfig()) < the preset < the keys given.

    The one resolver of every entry point (params.yaml `train:`, the seed CLI's flags). A
    preset supplies hardware defaults; a key in `given` (None entries meaning "not given")
    wins over it, so `dvc exp run -S train.batch_size=4` or `--batch_size 4` always changes
    the batch whatever the preset. All layers apply at once, so only the result is checked.

    Raises:
        ConfigError: unknown preset or field, or a value out of range ("<field>: <rule>,
            got <value>").
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError("preset", f"unknown preset; known: {sorted(PRESETS)}", preset)
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = set(given) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ConfigError("TrainConfig", f"unknown fields {sorted(unknown)}")
    return replace(base or TrainConfig(), **{**(PRESETS[preset] if preset else {}), **given})
