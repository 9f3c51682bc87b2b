"""The generate stage: load a checkpoint, build the mode's script, sample, write the files."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from meloformer.data import CorpusProfile
from meloformer.device import PRECISIONS, decode_dtype, resolve_device, use_cpu_threads
from meloformer.errors import ConfigError, check
from meloformer.generate.audio import attach_audio
from meloformer.generate.conditions import (
    ConditionError,
    Conditions,
    parse_control,
    unreached_control,
)
from meloformer.generate.generate import Request, generate
from meloformer.generate.output import write_sample
from meloformer.generate.sampling import SamplingConfig
from meloformer.generate.script import (
    ModeError,
    Script,
    add_track,
    continuation,
    first_bars,
    from_scratch,
    infill,
    token_budget,
)
from meloformer.hid import (
    LEVELS,
    HIDConfig,
    Span,
    Vocab,
    encode_file,
    level,
    restore,
    track_sort_key,
)
from meloformer.io import json_ready
from meloformer.progress import Progress
from meloformer.train import SKILLS, load_learned, load_profile, load_trained

MAX_BARS = HIDConfig.max_bars  # the codec's bound on bars per song (conditions.resolve
# checks the checkpoint's own bound again)
FREE = "free"  # scratch_density: no level asked, the model chooses
AUTO = "auto"  # scratch_density: each track at the training data's level for it


@dataclass(frozen=True)
class GenerateConfig:
    """The `generate:` params section and the settings flags of `python -m meloformer.generate`
    (one field per knob, its default the one default; None = the model decides)."""

    n_samples: int = 1
    """Songs to write (sample-000, sample-001, ...)."""
    temperature: float = 1.0
    """Divides the logits; 0 = greedy."""
    top_k: int = 0
    """Sample among the k most likely legal tokens (0 = all)."""
    top_p: float = 0.95
    """Sample among the smallest set of legal tokens reaching this probability (1 = all)."""
    seed: int = 0
    """Seeds the sampling (same seed, same checkpoint, same songs)."""
    n_bars: int | None = 16
    """Bars of the song (1..4096, the codec's bound); None: the model ends it."""
    time_signature: str | None = None
    """e.g. 3/4; None: the training data's most common meter (else the model chooses)."""
    tempo: float | None = None
    """BPM; None: the training data's median tempo (else the model chooses)."""
    chords: tuple[str, ...] | None = None
    """One chord label per bar, e.g. Cmaj,Amin (needs a vocabulary with chords)."""
    instruments: tuple[int, ...] | None = None
    """Programs of the tracks to write from scratch, e.g. 128,33,0 (128 = drums); None: the
    training data's instrumentation (else the model's choice)."""
    max_tokens: int | None = None
    """Cap on a sample's tokens; None: sized from the prompt (script.token_budget; 4096 from
    scratch)."""
    device: str = "auto"
    """auto = cuda when available, else cpu."""
    compile: bool = False
    """Compile the decode step (torch.compile, CUDA graphs on GPU): worth it for long runs."""
    threads: int = 1
    """CPU threads for torch (0 = the cores this process may use). Decoding runs many tiny
    ops, where one thread beats two on a shared machine (bench/generate.py measures both)."""
    precision: str = "auto"
    """Autocast of the decode steps: auto = bf16 on CUDA, fp32 on CPU (where bf16 decoding
    is slower: meloformer.device.decode_dtype); "bf16" or "fp32" force it."""
    prompt: str | None = None
    """A MIDI file to work on when no --prompt is given (the pipeline's infill runs)."""
    infill: tuple[str, ...] | None = None
    """Spans of the prompt to rewrite, "TRACK:FIRST-LAST" (0-based instrument track in
    canonical order, bars inclusive, e.g. "2:9-12"); None = off (docs/generation.md)."""
    density: tuple[str, ...] | None = None
    """Per-bar note-density controls, "TRACK:FIRST-LAST=LEVEL" (e.g. "2:9-12=high"; LEVEL:
    lowest low mid high highest, or 0..4)."""
    polyphony: tuple[str, ...] | None = None
    """Per-bar polyphony controls, the same form (e.g. "0:0-3=low")."""
    bring_in: tuple[int, ...] | None = None
    """Continuing a prompt, the instrument tracks (0-based, canonical order) that may come in
    although silent in the prompt's last 4 bars, e.g. 0,2; None: such tracks stay silent
    (the prompt's instrumentation is kept)."""
    scratch_density: str = AUTO
    """From scratch with two or more tracks and no --density: the note density asked of
    every bar of each track. "auto": each track's median level in the training songs with
    these instruments (the checkpoint's corpus profile), "mid" for an instrumentation the
    profile lacks; a LEVEL (lowest low mid high highest, or 0..4): every track at it; "free":
    the model chooses. A track is written before the model sees the tracks after it, so
    unasked the first track of a piano duo plays as a solo piano would (docs/generation.md
    "Density from scratch"). Skipped for a model never trained for controls."""
    audio: bool = True
    """Also render each sample to <stem>.ogg (General MIDI, meloformer.audio)."""

    def __post_init__(self) -> None:
        # ConfigError names the field, so params.yaml and the command line can each name it
        # their own way ("generate.n_bars", "--bars").
        check("n_samples", self.n_samples, self.n_samples >= 1, "must be >= 1")
        check("temperature", self.temperature, self.temperature >= 0, "must be >= 0")
        check("top_k", self.top_k, self.top_k >= 0, "must be >= 0")
        check("top_p", self.top_p, 0 < self.top_p <= 1, "must be in (0, 1]")
        check("n_bars", self.n_bars, self.n_bars is None or 1 <= self.n_bars <= MAX_BARS,
              f"must be in 1..{MAX_BARS}")
        check("max_tokens", self.max_tokens, self.max_tokens is None or self.max_tokens >= 8,
              "must be >= 8")
        check("threads", self.threads, self.threads >= 0, "must be >= 0")
        check("precision", self.precision, self.precision in PRECISIONS,
              f"must be one of {list(PRECISIONS)}")
        check("tempo", self.tempo, self.tempo is None or (
            math.isfinite(self.tempo) and self.tempo > 0), "must be a positive BPM")
        check("time_signature", self.time_signature, self.time_signature is None or
              re.fullmatch(r"\s*\d+\s*/\s*\d+\s*", self.time_signature) is not None,
              "expected NUMERATOR/DENOMINATOR, e.g. 3/4")
        spans = []
        for text in self.infill or ():
            try:
                spans.append(Span.parse(text))  # parsed here once; spans() returns them
            except ValueError as e:
                raise ConfigError("infill", str(e)) from e
        object.__setattr__(self, "_spans", tuple(spans))
        if self.scratch_density not in (FREE, AUTO):
            try:
                level(self.scratch_density)
            except ValueError as e:
                raise ConfigError("scratch_density", f"{e}, or {AUTO!r} or {FREE!r}") from e
        for kind in ("density", "polyphony"):
            for text in getattr(self, kind) or ():
                try:
                    parse_control(text, kind)
                except ValueError as e:
                    raise ConfigError(kind, str(e)) from e

    def spans(self) -> list[Span]:
        """The infill spans (empty when infill is off)."""
        return list(self._spans)  # type: ignore[attr-defined]

    def request(self, script: Script, n_bars: int | None,
                programs: tuple[int, ...] | None = None) -> Request:
        """The Request for a script (n_bars overridden by modes that fix the bars; sampled
        tracks limited to `programs` when given)."""
        cond = Conditions(n_bars=n_bars, time_signature=self.time_signature, tempo=self.tempo,
                          chords=self.chords,
                          max_tokens=self.max_tokens or token_budget(script, n_bars),
                          density=self.density, polyphony=self.polyphony, programs=programs)
        sampling = SamplingConfig(self.temperature, self.top_k, self.top_p, self.seed)
        return Request(script, cond, sampling, self.n_samples)


def build_script(vocab: Vocab, cfg: GenerateConfig, prompt: Path | None = None,
                 prompt_bars: int | None = None, add_program: int | None = None,
                 new_tracks: bool = False) -> tuple[Script, int | None]:
    """The script of the mode the arguments select, and the bar count to ask for.

    Modes: no prompt = from scratch (cfg.instruments); prompt = continue it in time to
    cfg.n_bars bars; prompt + add_program = add that track under the prompt's tracks (its
    first prompt_bars bars when given);
    prompt + cfg.infill = rewrite those spans (the prompt may come from cfg.prompt).
    """
    if prompt is None and cfg.prompt is not None:
        prompt = Path(cfg.prompt)
    if cfg.infill:
        if prompt is None or add_program is not None or prompt_bars is not None:
            raise ModeError("infill needs a prompt MIDI (--prompt or generate.prompt) and "
                             "no other mode (--add-track, --prompt-bars)")
        given = encode_file(prompt, vocab.config)
        _check_controls(cfg, {cell for span in cfg.spans() for cell in span.cells()})
        return infill(vocab, given, cfg.spans()), given.n_bars
    if prompt is None:
        if add_program is not None:
            raise ModeError("add-track needs a prompt MIDI (the tracks to keep)")
        return from_scratch(vocab, cfg.instruments), cfg.n_bars
    given = encode_file(prompt, vocab.config)
    if add_program is not None:
        if prompt_bars is not None:
            given = first_bars(given, prompt_bars)
        return add_track(vocab, given, add_program), given.n_bars
    bars = max(cfg.n_bars or 0, prompt_bars or given.n_bars) if cfg.n_bars else None
    kept = prompt_bars or given.n_bars
    if not new_tracks and bars is not None:
        _check_controls(cfg, {(t, b) for t in range(1, given.n_tracks + 1)
                              for b in range(kept, bars)})
    return continuation(given, prompt_bars, new_tracks, cfg.bring_in), bars


def _check_controls(cfg: GenerateConfig, generated: set[tuple[int, int]]) -> None:
    """Refuse, before sampling, a control on a bar the mode keeps (ConditionError)."""
    message = unreached_control(Conditions(density=cfg.density, polyphony=cfg.polyphony),
                                generated)
    if message:
        raise ConditionError(message)


def check_learned(cfg: GenerateConfig, learned: dict[str, bool] | None, checkpoint: Path
                  ) -> None:
    """Refuse infill spans or per-bar controls from a model never trained for them (a model
    trained without fills wrote an empty span for `--infill`); `learned` None (a checkpoint
    that does not say) lets them through.

    Raises:
        ConditionError: naming the training param that teaches the skill.
    """
    asked = {"infill": bool(cfg.infill), "controls": bool(cfg.density or cfg.polyphony)}
    flags = {"infill": "--infill", "controls": "--density/--polyphony"}
    for skill, rate in SKILLS.items():
        if asked[skill] and learned is not None and not learned.get(skill):
            raise ConditionError(
                f"{checkpoint} was trained with train.{rate} 0: it never learned {flags[skill]}"
                f"; train with train.{rate} > 0 (e.g. 0.5), or start from a model that was "
                "(train.init_from)")


def scratch_defaults(cfg: GenerateConfig, profile: CorpusProfile
                     ) -> tuple[GenerateConfig, str | None]:
    """`cfg` with the meter, tempo and instruments it leaves open taken from the training
    data (the most common meter and instrumentation, the median tempo), and the line that
    says so (None when the user fixed all three)."""
    filled = {"time_signature": profile.meter, "tempo": profile.tempo,
              "instruments": profile.instruments}
    chosen = {k: v for k, v in filled.items() if getattr(cfg, k) is None}
    if not chosen:
        return cfg, None
    flags = {"time_signature": "--time-signature", "tempo": "--tempo",
             "instruments": "--instruments"}
    said = ", ".join(f"{flags[k]} {_text(v)}" for k, v in chosen.items())
    return replace(cfg, **chosen), (f"from scratch with the training data's {said} "
                                    "(most common meter and instruments, median tempo)")


def density_defaults(cfg: GenerateConfig, learned: dict[str, bool] | None,
                     profile: CorpusProfile | None = None
                     ) -> tuple[GenerateConfig, str | None]:
    """From scratch, `cfg` with every bar of each track asked for a note-density level
    (cfg.scratch_density; "auto": the profile's level for each track of these instruments,
    else "mid"), and the line that says so; `cfg` unchanged (and None) when the level is
    "free", the user asked for densities, fewer than two tracks are fixed, or the model never
    learned controls (`learned` None: a checkpoint that does not say, lets them through, as
    check_learned does)."""
    tracks = len(cfg.instruments or ())
    skip = (cfg.scratch_density == FREE or cfg.density or tracks < 2 or not cfg.n_bars
            or (learned is not None and not learned.get("controls")))
    if skip:
        return cfg, None
    levels, source = [cfg.scratch_density] * tracks, ""
    if cfg.scratch_density == AUTO:
        canonical = tuple(sorted(cfg.instruments, key=track_sort_key))
        found = profile.density_levels(canonical) if profile else None
        levels = [LEVELS[v] for v in found] if found else ["mid"] * tracks
        source = (" (the training songs with these instruments)" if found else
                  " (too few training songs with these instruments to say more)")
    last = cfg.n_bars - 1
    asked = tuple(f"{t}:0-{last}={lv}" for t, lv in enumerate(levels))
    said = ", ".join(levels) if len(set(levels)) > 1 else repr(levels[0])
    return replace(cfg, density=asked), (
        f"from scratch with {tracks} tracks: every bar at note density {said}{source} "
        "(--scratch-density; 'free' lets the model choose)")


def _text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def run_generate(checkpoint: Path, out_dir: Path, cfg: GenerateConfig,
                 report: Callable[[str], None] | None = None, show_progress: bool = True,
                 **mode
                 ) -> list[dict[str, Path]]:
    """Generate cfg.n_samples songs from a checkpoint into out_dir (sample-000.mid/.png/.json,
    and .ogg when cfg.audio), in the vocabulary stored in the checkpoint.

    Args:
        report: receives one line per choice made for the user (the from-scratch defaults).
        show_progress: a progress line on stderr (tokens written, of max_tokens at most).
        mode: build_script's keyword arguments (prompt, prompt_bars, add_program, new_tracks).

    Returns:
        The paths written, one dict per sample.
    """
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        use_cpu_threads(cfg.threads)
    model, record = load_trained(checkpoint, device)
    learned = load_learned(checkpoint)
    check_learned(cfg, learned, checkpoint)
    vocab = record.vocab()
    profile = load_profile(checkpoint)
    if mode.get("prompt") is None and cfg.prompt is None:  # from scratch
        said = None
        if profile is not None:
            cfg, said = scratch_defaults(cfg, profile)
        cfg, asked = density_defaults(cfg, learned, profile)
        for line in filter(None, (said, asked)) if report else ():
            report(line)
    script, n_bars = build_script(vocab, cfg, **mode)
    request = cfg.request(script, n_bars, profile.programs if profile else None)
    # Out of max_tokens, the most a sample may take (ETA an upper bound); ends at 100 %.
    bar = Progress(request.conditions.max_tokens, "generate",
                   sys.stderr if show_progress else None, unit="tokens")
    songs = generate(model, vocab, request, compile=cfg.compile,
                     dtype=decode_dtype(cfg.precision, device), progress=bar)
    bar.total = bar.done
    bar.close()
    info = {"checkpoint": str(checkpoint), "config": json_ready(cfg),
            "mode": {k: str(v) if isinstance(v, Path) else v for k, v in mode.items()}}
    spans = cfg.spans()
    if spans:  # write the songs in plain layout, the fills back in their bars
        songs = [restore(s, vocab) for s in songs]
    marks = [(s.track, s.first, s.last) for s in spans]
    written = [write_sample(s, vocab, out_dir, f"sample-{i:03d}", {**info, "index": i},
                            marks=marks)
               for i, s in enumerate(songs)]
    return [attach_audio(paths) for paths in written] if cfg.audio else written
