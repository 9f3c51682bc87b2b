"""Check a corpus against the codec: validity, exact round trip, note F1, tokens per note."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from meloformer.hid.config import HIDConfig
from meloformer.hid.decode import decode
from meloformer.hid.encode import encode_bytes, encode_midifile, vocab_for
from meloformer.hid.errors import MidiError
from meloformer.hid.reference import reference_notes

MIDI_SUFFIXES = {".mid", ".midi", ".kar"}


@dataclass
class FolderStats:
    """Totals for one folder (or the whole corpus)."""

    files: int = 0
    valid: int = 0
    rejected: Counter = field(default_factory=Counter)  # error kind -> count
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (file, reason), in order
    exact: int = 0
    notes: int = 0
    tokens: int = 0
    hits: float = 0.0  # sum of matched notes (for a pooled F1)
    src_notes: int = 0
    dec_notes: int = 0

    def add(self, other: FolderStats) -> None:
        for name in (
            "files",
            "valid",
            "exact",
            "notes",
            "tokens",
            "hits",
            "src_notes",
            "dec_notes",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected.update(other.rejected)
        self.rejects.extend(other.rejects)

    def row(self) -> dict:
        p = self.hits / max(self.dec_notes, 1)
        r = self.hits / max(self.src_notes, 1)
        return {
            "files": self.files,
            "valid": self.valid,
            "rejected": dict(self.rejected),
            "rejects": [{"file": f, "reason": r} for f, r in self.rejects],
            "roundtrip_exact_pct": 100 * self.exact / max(self.valid, 1),
            "note_f1": 2 * p * r / (p + r) if p + r else 0.0,
            "tokens_per_note": self.tokens / max(self.notes, 1),
        }


def midi_files(root: Path) -> list[Path]:
    """Every .mid/.midi/.kar under root (any case), sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in MIDI_SUFFIXES)


def check_file(path: Path, cfg: HIDConfig) -> FolderStats:
    """Encode, decode, re-encode and score one file."""
    st = FolderStats(files=1)
    data = path.read_bytes()
    try:
        enc = encode_bytes(data, cfg, str(path))
    except MidiError as e:
        st.rejected[e.kind] += 1
        st.rejects.append((str(path), e.reason))
        return st
    vocab = vocab_for(cfg)
    mid = decode(enc.ids, vocab)
    again = encode_midifile(mid, cfg, str(path))
    st.valid, st.notes, st.tokens = 1, enc.n_notes, len(enc)
    st.exact = int(np.array_equal(enc.ids, again.ids))
    try:
        source = reference_notes(mido.MidiFile(file=io.BytesIO(data)), vocab)
    except Exception:  # noqa: BLE001 - mido raises many types; it is only the oracle here
        source = None  # mido refuses a file our reader accepts: no oracle for it
    if source is not None:
        decoded = reference_notes(mid, vocab)
        st.hits = sum((source & decoded).values())
        st.src_notes, st.dec_notes = sum(source.values()), sum(decoded.values())
    return st


def check_corpus(root: Path, cfg: HIDConfig = HIDConfig()) -> dict[str, dict]:
    """Per top-level folder and in total: the FolderStats rows (see FolderStats.row)."""
    per: dict[str, FolderStats] = defaultdict(FolderStats)
    total = FolderStats()
    for path in midi_files(root):
        rel = path.relative_to(root)
        folder = rel.parts[0] if len(rel.parts) > 1 else "."
        st = check_file(path, cfg)
        per[folder].add(st)
        total.add(st)
    rows = {name: per[name].row() for name in sorted(per)}
    rows["TOTAL"] = total.row()
    return rows


def format_table(rows: dict[str, dict]) -> str:
    """A fixed-width table of check_corpus rows."""
    head = (
        f"{'folder':<22}{'files':>6}{'valid':>6}{'exact%':>8}{'noteF1':>8}{'tok/note':>9}"
        "  rejected"
    )
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        rej = ", ".join(f"{k}={v}" for k, v in sorted(r["rejected"].items())) or "-"
        lines.append(
            f"{name:<22}{r['files']:>6}{r['valid']:>6}{r['roundtrip_exact_pct']:>8.2f}"
            f"{r['note_f1']:>8.4f}{r['tokens_per_note']:>9.3f}  {rej}"
        )
    return "\n".join(lines)
