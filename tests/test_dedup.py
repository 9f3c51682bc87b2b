"""Duplicates by content (meloformer/data/dedup.py): re-saved copies of a song are one song."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pyarrow.parquet as pq
from test_preprocess import FAST, SAMPLE, rejects_of, run, songs_of

from meloformer.data.dedup import DUPLICATE, Copy, decide
from meloformer.data.discover import MANIFEST_FILE
from meloformer.data.manifest import read_manifest
from meloformer.data.preprocess import preprocess
from meloformer.data.shards import SHARD_DIR, content_hash
from meloformer.hid.encode import encode_bytes

SONG = sorted(SAMPLE.rglob("*.mid"))[0]


def resaved(src: Path, dst: Path, label: str) -> Path:
    """`src` with one text event added: other bytes (and byte hash), the same HID tokens."""
    midi = mido.MidiFile(src)
    midi.tracks[0].insert(0, mido.MetaMessage("text", text=label, time=0))
    buf = io.BytesIO()
    midi.save(file=buf)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(buf.getvalue())
    return dst


def corpus(root: Path, copies: int) -> list[Path]:
    """The original song as a/0.mid, `copies` re-saved copies (b/1.mid ...), two other songs."""
    files = [resaved(SONG, root / "a" / "0.mid", "original")]
    files += [resaved(SONG, root / "b" / f"{i}.mid", f"copy {i}") for i in range(1, copies + 1)]
    for other in sorted(SAMPLE.rglob("*.mid"))[1:3]:
        files.append(resaved(other, root / "c" / other.name, "other"))
    return files


def test_fixture_copies_differ_in_bytes_not_in_tokens(tmp_path):
    a, b = corpus(tmp_path, 1)[:2]
    assert a.read_bytes() != b.read_bytes()
    assert np.array_equal(encode_bytes(a.read_bytes()).ids, encode_bytes(b.read_bytes()).ids)


def test_later_copies_are_duplicate_rejects_naming_the_kept_file(tmp_path):
    root = tmp_path / "midi"
    corpus(root, 3)
    out = tmp_path / "out"  # shard_size 4: the copies sit in two different shards
    summary = run([root], out)
    rejects = rejects_of(out)
    assert sorted(p for p, (e, _) in rejects.items() if e == DUPLICATE) == [
        f"midi/b/{i}.mid" for i in (1, 2, 3)]
    assert {m for e, m in rejects.values()} == {"same HID tokens as midi/a/0.mid"}
    songs = songs_of(out)
    assert sorted(songs["path"].to_pylist()) == ["midi/a/0.mid", *(
        f"midi/c/{p.name}" for p in sorted(SAMPLE.rglob("*.mid"))[1:3])]
    assert summary.ok + summary.rejected == summary.discovered == 6
    assert summary.rejected_by_error == {DUPLICATE: 3}
    # A rerun changes nothing and rebuilds nothing.
    stamp = {p: p.stat().st_mtime_ns for p in (out / SHARD_DIR).iterdir()}
    again = preprocess(out / MANIFEST_FILE, out, FAST, tmp_path, progress=False)
    assert again.built == 0 and again.rejected_by_error == {DUPLICATE: 3}
    assert stamp == {p: p.stat().st_mtime_ns for p in (out / SHARD_DIR).iterdir()}


def test_content_duplicates_never_straddle_splits(tmp_path):
    root = tmp_path / "midi"
    corpus(root, 40)
    out = tmp_path / "out"
    run([root], out)
    manifest = read_manifest(out / MANIFEST_FILE)
    copies = manifest[manifest["path"].str.startswith(("midi/a/", "midi/b/"))]
    assert copies["split"].nunique() > 1  # discover's byte-hash splits do scatter the copies
    songs = songs_of(out).to_pandas()
    per_content = songs.groupby("content")["split"].agg(["count", "nunique"])
    assert (per_content["count"] == 1).all() and (per_content["nunique"] == 1).all()
    assert songs["content"].tolist() == [content_hash(i) for i in songs["ids"]]


def test_a_dropped_copy_is_a_song_again_when_the_kept_file_goes(tmp_path):
    root = tmp_path / "midi"
    files = corpus(root, 2)
    out = tmp_path / "out"
    run([root], out)
    files[0].unlink()  # the kept copy; b/1.mid (in another shard) must come back
    summary = run([root], out)
    assert "midi/b/1.mid" in set(songs_of(out)["path"].to_pylist())
    assert rejects_of(out) == {"midi/b/2.mid": (DUPLICATE, "same HID tokens as midi/b/1.mid")}
    assert summary.ok + summary.rejected == summary.discovered == 4
    assert pq.read_table(out / "rejects.parquet").column("content").to_pylist() == [
        songs_of(out).column("content")[0].as_py()]


def test_decide_keeps_the_first_copy_in_manifest_order():
    copies = [Copy(2, 0, "z", "hz", "X", False), Copy(0, 1, "a", "ha", "X", False),
              Copy(1, 1, "m", "hm", "Y", False), Copy(3, 2, "q", "hq", "Y", True)]
    decision = decide(copies)
    assert decision.duplicates == {0: [("z", "hz", "a", "X")], 2: [("q", "hq", "m", "Y")]}
    assert decision.rebuild == []
    assert decide([Copy(0, 5, "a", "ha", "X", True)]).rebuild == [5]
