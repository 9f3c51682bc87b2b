"""Tokenisation speed and length: HID vs MidiTok REMI on the same files, in one process.

    python -m bench.tokenize_speed [DIR] [--json OUT]

REMI is configured as a fair peer (bench.common.remi_tokenizer): programs in one stream,
tempos and time signatures on.
Both sides read the file from bytes each time (HID: its own reader; REMI: symusic).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import remi_tokenizer
from meloformer.hid import HIDConfig, MidiError, encode_bytes, midi_files

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "midi-dev"


def bench_hid(blobs: list[tuple[str, bytes]]) -> dict:
    cfg, notes, tokens, ok = HIDConfig(), 0, 0, 0
    t0 = time.perf_counter()
    for name, data in blobs:
        try:
            enc = encode_bytes(data, cfg, name)
        except MidiError:
            continue
        ok, notes, tokens = ok + 1, notes + enc.n_notes, tokens + len(enc)
    return _row("HID", ok, notes, tokens, time.perf_counter() - t0)


def bench_remi(blobs: list[tuple[str, bytes]]) -> dict:
    import symusic

    tok = remi_tokenizer()
    notes = tokens = ok = 0
    t0 = time.perf_counter()
    for _, data in blobs:
        try:
            score = symusic.Score.from_midi(data)
            seq = tok.encode(score)
        except Exception:  # noqa: BLE001 - the peer's own failures are skipped, as HID's are
            continue
        seq = seq[0] if isinstance(seq, list) else seq
        ok += 1
        notes += sum(len(t.notes) for t in score.tracks)
        tokens += len(seq.ids)
    return _row("REMI (MidiTok)", ok, notes, tokens, time.perf_counter() - t0)


def _row(name, files, notes, tokens, seconds) -> dict:
    return {
        "tokenizer": name,
        "files": files,
        "notes": notes,
        "seconds": round(seconds, 2),
        "files_per_s": files / seconds,
        "notes_per_s": notes / seconds,
        "tokens_per_note": tokens / max(notes, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    ap.add_argument("--json")
    args = ap.parse_args()
    blobs = [(str(p), p.read_bytes()) for p in midi_files(Path(args.dir))]
    hid, remi = bench_hid(blobs), bench_remi(blobs)
    print(f"{len(blobs)} files from {args.dir}")
    print(
        f"{'tokenizer':<16}{'files':>7}{'notes':>10}{'sec':>8}{'files/s':>9}{'notes/s':>10}{'tok/note':>9}"
    )
    for r in (hid, remi):
        print(
            f"{r['tokenizer']:<16}{r['files']:>7}{r['notes']:>10}{r['seconds']:>8.2f}"
            f"{r['files_per_s']:>9.1f}{r['notes_per_s']:>10.0f}{r['tokens_per_note']:>9.3f}"
        )
    ratios = {
        "notes_per_s_hid_over_remi": hid["notes_per_s"] / remi["notes_per_s"],
        "tokens_per_note_hid_over_remi": hid["tokens_per_note"] / remi["tokens_per_note"],
    }
    print(
        f"ratio HID/REMI: notes/s {ratios['notes_per_s_hid_over_remi']:.2f}x, "
        f"tokens/note {ratios['tokens_per_note_hid_over_remi']:.2f}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"hid": hid, "remi": remi, **ratios}, indent=1))


if __name__ == "__main__":
    main()
