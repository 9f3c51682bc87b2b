"""CLI: python -m meloformer.generate --checkpoint CKPT --out DIR [mode] [settings].

Modes: from scratch (default; --instruments), --prompt x.mid (continue it in time to --bars),
--prompt x.mid --add-track PROGRAM (write one new track under the given ones),
--prompt x.mid --infill 2:9-12 [--infill 0:1-4] (rewrite those bars of those tracks, with the
whole rest of the song as context; everything else is kept token for token).

The settings flags are GenerateConfig's fields (the `generate:` section of params.yaml), with
its defaults and its field docs as help.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from meloformer.cli import run_cli
from meloformer.errors import ConfigError
from meloformer.flags import add_flags, as_flag, values
from meloformer.generate.run import GenerateConfig, run_generate

# GenerateConfig field -> the flag's name where the seed's name differs from the field's.
RENAME = {"n_samples": "samples", "n_bars": "bars"}
REPEATED = ("infill", "density", "polyphony")  # one span or control per flag


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser, and GenerateConfig field -> flag for the settings."""
    ap = argparse.ArgumentParser(prog="python -m meloformer.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="directory for sample-NNN.*")
    mode = ap.add_argument_group("mode")
    mode.add_argument("--prompt", type=Path, help="MIDI to continue, to add a track to or to "
                      "infill")
    mode.add_argument("--prompt-bars", type=int, help="bars of the prompt to keep (continue)")
    mode.add_argument("--add-track", type=int, metavar="PROGRAM", help="0..127, 128 = drums")
    mode.add_argument("--new-tracks", action="store_true", help="continue: may add tracks")
    settings = ap.add_argument_group("settings (GenerateConfig, params.yaml generate:)")
    flags = add_flags(settings, GenerateConfig, rename=RENAME, skip=("prompt",),
                      repeat=REPEATED)
    return ap, flags


def main(argv: list[str] | None = None) -> None:
    ap, flags = build_parser()
    args = ap.parse_args(argv)
    try:
        cfg = GenerateConfig(**values(args, flags))
    except ConfigError as e:  # a usage error naming the flag typed: exit 2, as argparse's
        ap.error(str(as_flag(e, flags)))
    written = run_cli(lambda: run_generate(
        args.checkpoint, args.out, cfg, report=print, prompt=args.prompt,
        prompt_bars=args.prompt_bars, add_program=args.add_track, new_tracks=args.new_tracks))
    for paths in written:
        print(paths["mid"])


if __name__ == "__main__":
    main()
