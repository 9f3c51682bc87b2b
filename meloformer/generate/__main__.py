"""CLI: python -m meloformer.generate --checkpoint CKPT --out DIR [mode] [conditions] [sampling].

Modes: from scratch (default; --instruments), --prompt x.mid (continue it in time to --bars),
--prompt x.mid --add-track PROGRAM (write one new track under the given ones),
--prompt x.mid --infill 2:9-12 [--infill 0:1-4] (rewrite those bars of those tracks, with the
whole rest of the song as context; everything else is kept token for token).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from meloformer.cli import run_cli
from meloformer.device import PRECISIONS
from meloformer.generate.conditions import parse_control
from meloformer.generate.run import GenerateConfig, run_generate
from meloformer.hid.infill import Span


def _programs(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p.strip())


def _span(text: str) -> str:
    """A valid "TRACK:FIRST-LAST" infill span, kept as text (GenerateConfig parses it)."""
    try:
        Span.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def _control(kind: str):
    """argparse type: a valid "TRACK:FIRST-LAST=LEVEL" control, kept as text."""
    def check(text: str) -> str:
        try:
            parse_control(text, kind)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
        return text
    return check


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m meloformer.generate", description=__doc__)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="directory for sample-NNN.*")
    mode = ap.add_argument_group("mode")
    mode.add_argument("--prompt", type=Path, help="MIDI to continue or to add a track to")
    mode.add_argument("--prompt-bars", type=int, help="bars of the prompt to keep (continue)")
    mode.add_argument("--add-track", type=int, metavar="PROGRAM", help="0..127, 128 = drums")
    mode.add_argument("--new-tracks", action="store_true", help="continue: may add tracks")
    mode.add_argument("--infill", action="append", type=_span, metavar="TRACK:FIRST-LAST",
                      help="rewrite bars FIRST..LAST of instrument track TRACK (0-based, in "
                      "the song's canonical track order; repeatable)")
    cond = ap.add_argument_group("conditions")
    cond.add_argument("--instruments", type=_programs, help="e.g. 128,33,0 (from scratch)")
    cond.add_argument("--bars", type=_bars, default=16, help="bars of the song (1..4096)")
    cond.add_argument("--time-signature", help="e.g. 3/4")
    cond.add_argument("--tempo", type=float, help="BPM")
    cond.add_argument("--chords", type=lambda s: tuple(s.split(",")), help="e.g. Cmaj,Amin")
    for kind, example in (("density", "2:9-12=high"), ("polyphony", "0:0-3=low")):
        cond.add_argument(f"--{kind}", action="append", type=_control(kind),
                          metavar="TRACK:FIRST-LAST=LEVEL",
                          help=f"per-bar {kind} bin, e.g. {example} (LEVEL: lowest low mid "
                          "high highest, or 0..4; repeatable)")
    cond.add_argument("--max-tokens", type=int, default=None,
                      help="cap on a sample's tokens (default: sized from the prompt; "
                      "4096 from scratch)")
    smp = ap.add_argument_group("sampling")
    smp.add_argument("--samples", type=int, default=1)
    smp.add_argument("--temperature", type=float, default=1.0)
    smp.add_argument("--top-k", type=int, default=0)
    smp.add_argument("--top-p", type=float, default=0.95)
    smp.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (0 = the cores this process may use)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="autocast of decoding: auto = bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--compile", action="store_true", help="compile the decode step (GPU)")
    ap.add_argument("--audio", action=argparse.BooleanOptionalAction, default=True,
                    help="also render each sample to .ogg (General MIDI)")
    return ap


def _bars(text: str) -> int:
    """--bars: a positive whole number (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cfg = GenerateConfig(
        n_samples=args.samples, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, seed=args.seed, n_bars=args.bars,
        time_signature=args.time_signature, tempo=args.tempo, chords=args.chords,
        instruments=args.instruments, max_tokens=args.max_tokens, device=args.device,
        threads=args.threads, compile=args.compile, precision=args.precision,
        infill=tuple(args.infill) if args.infill else None,
        density=tuple(args.density) if args.density else None,
        polyphony=tuple(args.polyphony) if args.polyphony else None, audio=args.audio,
    )
    written = run_cli(lambda: run_generate(
        args.checkpoint, args.out, cfg, report=print, prompt=args.prompt,
        prompt_bars=args.prompt_bars,
        add_program=args.add_track, new_tracks=args.new_tracks), ValueError)
    for paths in written:
        print(paths["mid"])


if __name__ == "__main__":
    main()
