"""`python -m meloformer.hid check|encode|decode|render`: the codec from the command line
(render: any MIDI to OGG audio through the General MIDI renderer, meloformer.audio)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from meloformer.audio import MAX_SECONDS, render_midi
from meloformer.cli import NothingDone, run_cli
from meloformer.hid.check import check_corpus, format_table
from meloformer.hid.config import HIDConfig
from meloformer.hid.decode import decode
from meloformer.hid.encode import encode_file, vocab_for
from meloformer.hid.errors import HIDError


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


SHOWN_REJECTS = 5  # rejected files named under the table


def cmd_check(args: argparse.Namespace) -> int:
    """The table; an error (exit 2) for a missing folder or one without a valid file."""
    if not Path(args.dir).is_dir():
        raise NotADirectoryError(f"{args.dir}: no such directory")
    rows = check_corpus(Path(args.dir), HIDConfig())
    print(format_table(rows))
    rejects = rows["TOTAL"]["rejects"]
    for r in rejects[:SHOWN_REJECTS]:
        print(f"rejected: {r['file']}: {r['reason']}")
    if len(rejects) > SHOWN_REJECTS:
        where = f"in {args.json}" if args.json else "with --json FILE"
        print(f"... and {len(rejects) - SHOWN_REJECTS} more rejected files (all listed {where})")
    if args.json:
        _atomic_write(Path(args.json), json.dumps(rows, indent=1).encode())
    if rows["TOTAL"]["valid"] == 0:
        raise NothingDone(f"{args.dir}: no valid MIDI file ({rows['TOTAL']['files']} found)")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    enc = encode_file(args.input)
    vocab = vocab_for(HIDConfig())
    body = {"vocab_version": "hid-1", "vocab_hash": vocab.hash, "ids": enc.ids.tolist()}
    body.update({k: v.tolist() for k, v in enc.meta().items()})
    body["tokens"] = [vocab.tokens[i] for i in enc.ids]
    _atomic_write(Path(args.output), json.dumps(body).encode())
    print(
        f"{args.input}: {len(enc)} tokens, {enc.n_notes} notes, "
        f"{enc.n_tracks} tracks, {enc.n_bars} bars"
    )
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        body = json.loads(Path(args.input).read_text())
    except json.JSONDecodeError as e:
        raise HIDError(f"{args.input}: not a tokens JSON ({e})") from e
    vocab = vocab_for(HIDConfig())
    if body.get("vocab_hash", vocab.hash) != vocab.hash:
        raise HIDError(
            f"{args.input}: vocab_hash {body['vocab_hash']} != this codec's {vocab.hash}"
        )
    mid = decode(body["ids"], vocab)
    tmp = Path(args.output).with_name(Path(args.output).name + ".tmp")
    mid.save(tmp)
    tmp.replace(args.output)
    print(f"{args.input}: wrote {args.output} ({len(mid.tracks) - 1} tracks)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    done = render_midi(Path(args.input), Path(args.output), args.max_seconds)
    print(f"{args.input}: wrote {args.output} ({done.seconds:.1f} s audio for "
          f"{done.midi_seconds:.1f} s of MIDI, {done.bytes / 1024:.0f} KiB, "
          f"rendered in {done.render_s:.2f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m meloformer.hid", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser(
        "check", help="validity, exact round trip, note F1 and tokens/note of a corpus"
    )
    c.add_argument("dir")
    c.add_argument("--json", help="also write the table as JSON here")
    e = sub.add_parser("encode", help="MIDI -> tokens JSON (ids, token names, metadata)")
    e.add_argument("input")
    e.add_argument("-o", "--output", required=True)
    d = sub.add_parser("decode", help="tokens JSON -> MIDI")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True)
    r = sub.add_parser("render", help="MIDI -> OGG Vorbis audio (General MIDI, 44.1 kHz)")
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--max-seconds", type=float, default=MAX_SECONDS,
                   help="refuse longer songs (default %(default)s)")
    args = ap.parse_args(argv)
    command = {"check": cmd_check, "encode": cmd_encode, "decode": cmd_decode,
               "render": cmd_render}[args.cmd]
    return run_cli(lambda: command(args), code=2)


if __name__ == "__main__":
    sys.exit(main())
