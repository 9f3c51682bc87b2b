"""preprocess: shards of real files, rejects with reasons, fault containment, resumption."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, corpus_index

from meloformer.data.config import DiscoverConfig, PreprocessConfig
from meloformer.data.discover import MANIFEST_FILE, discover
from meloformer.data.manifest import read_manifest
from meloformer.data.preprocess import META_FILE, REJECTS_FILE, preprocess
from meloformer.data.shards import SHARD_DIR, read_key, songs_file
from meloformer.hid import HIDConfig, MidiError
from meloformer.hid.encode import encode_bytes
from meloformer.hid.song import Encoding
from meloformer.io import TMP_SUFFIX

SAMPLE = REPO / "data" / "raw" / "sample"
FAST = PreprocessConfig(workers=2, shard_size=4, timeout_s=0.5)


def sample_files(n: int) -> list[Path]:
    """n files of the bundled sample, spread over its sources."""
    files = sorted(SAMPLE.rglob("*.mid"))
    return files[:: max(1, len(files) // n)][:n]


def faulty_encode(data: bytes, cfg: HIDConfig, path: str) -> Encoding:
    """encode_bytes, except for files named to hang, get stuck in 'C code', or crash."""
    name = Path(path).name
    if name.startswith("hang"):
        time.sleep(600)  # Python-level hang: the soft deadline (SIGALRM) interrupts it
    if name.startswith("stuck"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # deaf to the soft deadline
        time.sleep(600)
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return encode_bytes(data, cfg, path)


def run(inputs: list[Path], out: Path, cfg: PreprocessConfig = FAST, **kw):
    """discover + preprocess into out/ (paths relative to out's parent)."""
    discover(inputs, out, DiscoverConfig(), base=out.parent)
    return preprocess(out / MANIFEST_FILE, out, cfg, out.parent, progress=False, **kw)


def rejects_of(out: Path) -> dict[str, tuple[str, str]]:
    table = pq.read_table(out / REJECTS_FILE).to_pylist()
    return {r["path"]: (r["error"], r["message"]) for r in table}


def songs_of(out: Path) -> pa.Table:
    return pa.concat_tables(
        pq.read_table(f) for f in sorted((out / SHARD_DIR).glob("*[0-9].parquet"))
    )


def test_shards_hold_every_song_in_manifest_order_with_narrow_types(tmp_path):
    summary = run(sample_files(10), tmp_path / "out")
    manifest = read_manifest(tmp_path / "out" / MANIFEST_FILE)
    songs = pq.read_table(songs_file(tmp_path / "out" / SHARD_DIR, 0))
    assert summary.ok == summary.discovered == 10 and summary.rejected == 0
    assert songs["hash"].to_pylist() == manifest["hash"].tolist()[:4]
    assert songs.schema.field("ids").type == pa.list_(pa.uint16())
    assert songs.schema.field("track").type == pa.list_(pa.uint8())
    row = songs.slice(0, 1).to_pylist()[0]
    enc = encode_bytes((tmp_path / row["path"]).read_bytes(), HIDConfig(), row["path"])
    for name in ("ids", "track", "bar", "type", "pos", "program"):
        np.testing.assert_array_equal(row[name], getattr(enc, name))
    assert (row["n_tokens"], row["n_notes"], row["n_bars"]) == (len(enc), enc.n_notes, enc.n_bars)
    meta = json.loads((tmp_path / "out" / META_FILE).read_text())
    assert meta["totals"]["ok"] + meta["totals"]["rejected"] == meta["totals"]["discovered"]


@pytest.mark.corpus
def test_corrupt_files_are_rejected_with_the_codec_reason(corpus, tmp_path):
    broken = [corpus / r["path"] for r in corpus_index() if r["kind"] == "broken-by-design"]
    listing = tmp_path / "midi_files.txt"
    listing.write_text("\n".join(map(str, sample_files(12) + broken)) + "\n")
    out = tmp_path / "out"
    summary = run([listing], out, replace(FAST, shard_size=8))
    manifest = read_manifest(out / MANIFEST_FILE)
    rejects, songs = rejects_of(out), set(songs_of(out)["path"].to_pylist())
    assert summary.ok + summary.rejected == summary.discovered == len(manifest)
    kept = [p for p in broken if p.as_posix() in set(manifest["path"])]  # one path per content
    assert len(kept) == len(manifest) - 12
    for path in kept:
        try:
            encode_bytes(path.read_bytes(), HIDConfig(), str(path))
        except MidiError as e:
            assert rejects[path.as_posix()] == (e.kind, e.reason)
        else:  # the codec reads some "broken" test files; then they must be songs
            assert path.as_posix() in songs
    assert len(rejects) >= len(kept) - 2  # the codec is lenient with at most a couple


def test_hang_stuck_and_crash_lose_only_their_file(tmp_path):
    good = sample_files(9)
    for i, prefix in enumerate(["hang", "stuck", "crash"]):
        shutil.copy(good[i], tmp_path / f"{prefix}-{good[i].name}")
    files = good[3:] + sorted(tmp_path.glob("*-*.mid"))
    summary = run(files, tmp_path / "out", encode=faulty_encode)
    rejects = {Path(p).name.split("-")[0]: r for p, r in rejects_of(tmp_path / "out").items()}
    assert summary.ok == 6 and summary.rejected == 3 and summary.discovered == 9
    assert rejects["hang"][0] == "timeout" and "0.5 s" in rejects["hang"][1]
    assert rejects["stuck"][0] == "timeout" and "killed" in rejects["stuck"][1]
    assert rejects["crash"][0] == "crash" and "SIGSEGV" in rejects["crash"][1]
    assert not list((tmp_path / "out").rglob(f"*{TMP_SUFFIX}"))
    # The summary names the rejected files and where the full list is.
    lines = summary.line().splitlines()
    named = [x for x in lines if x.startswith("  rejected ")]
    assert len(named) == 3 and any("crash-" in x and "SIGSEGV" in x for x in named)
    assert lines[-1] == "  ... all 3 in rejects.parquet"


def test_file_changed_after_discover_is_rejected(tmp_path):
    files = [shutil.copy(f, tmp_path) for f in sample_files(3)]
    discover([tmp_path], tmp_path / "out", DiscoverConfig(), base=tmp_path)
    Path(files[0]).write_bytes(Path(files[1]).read_bytes())
    out = tmp_path / "out"
    summary = preprocess(out / MANIFEST_FILE, out, FAST, tmp_path, progress=False)
    assert summary.rejected == 1
    assert next(iter(rejects_of(tmp_path / "out").values()))[0] == "changed"


def test_rerun_reuses_shards_and_config_change_rebuilds(tmp_path):
    out = tmp_path / "out"
    first = run(sample_files(10), out)
    stamp = {p: p.stat().st_mtime_ns for p in (out / SHARD_DIR).iterdir()}
    again = preprocess(out / MANIFEST_FILE, out, FAST, tmp_path, progress=False)
    assert (first.built, again.built, again.shards) == (3, 0, 3)
    assert stamp == {p: p.stat().st_mtime_ns for p in (out / SHARD_DIR).iterdir()}
    changed = replace(FAST, hid=replace(FAST.hid, velocity_bins=16), workers=1)
    rebuilt = preprocess(out / MANIFEST_FILE, out, changed, tmp_path, progress=False)
    assert rebuilt.built == 3
    assert read_key(songs_file(out / SHARD_DIR, 0)).config_hash == changed.content_hash()
    fewer = run(sample_files(10)[:5], out)  # shrinking the manifest drops the extra shard
    assert fewer.shards == 2 and sorted(p.name for p in (out / SHARD_DIR).iterdir()) == [
        "shard-00000.parquet", "shard-00000.rejects.parquet",
        "shard-00001.parquet", "shard-00001.rejects.parquet",
    ]  # fmt: skip


def _cli(out: Path, inputs: Path) -> list[str]:
    return [sys.executable, "-m", "meloformer.preprocess", "--input", str(inputs),
            "--output", str(out), "--workers", "1", "--shard-size", "3", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    """The seed's command line, uninterrupted, on the bundled sample."""
    out = tmp_path_factory.mktemp("clean") / "out"
    done = subprocess.run(_cli(out, SAMPLE), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    n = len(list(SAMPLE.rglob("*.mid")))
    assert done.stdout.startswith(f"preprocess: {n} discovered, {n} ok, 0 rejected")
    return out


@pytest.mark.parametrize("victim", ["process-group", "parent-only"])
def test_sigkill_midway_then_rerun_matches_an_uninterrupted_run(clean_run, tmp_path, victim):
    """SIGKILL at any point (of everything, or of the parent alone, orphaning its workers)
    leaves nothing a rerun cannot finish into the uninterrupted run's exact bytes."""
    proc = subprocess.Popen(_cli(tmp_path / "killed", SAMPLE), start_new_session=True)
    shards = tmp_path / "killed" / SHARD_DIR
    while not list(shards.glob("shard-*[0-9].parquet")) and proc.poll() is None:
        time.sleep(0.005)
    if victim == "process-group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(shards.glob("shard-*[0-9].parquet"))) < 25, "the run ended before the kill"
    rerun = subprocess.run(_cli(tmp_path / "killed", SAMPLE), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not list((tmp_path / "killed").rglob(f"*{TMP_SUFFIX}"))
    killed = sorted(p.relative_to(tmp_path / "killed") for p in (tmp_path / "killed").rglob("*"))
    assert killed == sorted(p.relative_to(clean_run) for p in clean_run.rglob("*"))
    for rel in killed:
        path = clean_run / rel
        assert path.is_dir() or path.read_bytes() == (tmp_path / "killed" / rel).read_bytes(), rel


def test_meta_records_each_programs_training_pitch_range(tmp_path):
    from meloformer.data.meta import RANGE_MIN_NOTES, pitch_ranges, read_pitch_ranges
    from meloformer.hid.encode import vocab_for
    from meloformer.hid.vocab import Family

    hist = np.zeros((130, 128), np.int64)
    hist[33, 40:61] = 10  # 210 notes on 40..60, one stray low note
    hist[33, 5] = 1
    hist[0, 60] = RANGE_MIN_NOTES - 1  # too few notes for a range
    assert pitch_ranges(hist) == {"33": [40, 60, 211]}
    out = tmp_path / "out"
    run(sample_files(8), out)
    vocab, songs = vocab_for(HIDConfig()), songs_of(out).to_pylist()
    expected: dict[int, list[int]] = {}
    for song in songs:
        if song["split"] != "train":
            continue
        ids = np.array(song["ids"])
        keep = vocab.family_of[ids] == Family.PITCH
        for prog, pitch in zip(np.array(song["program"])[keep], vocab.value_of[ids[keep]],
                               strict=True):
            expected.setdefault(int(prog), []).append(int(pitch))
    ranges = read_pitch_ranges(out / META_FILE)
    assert ranges and set(ranges) == {p for p, v in expected.items() if len(v) >= 50}
    for prog, (lo, hi) in ranges.items():
        pitches = np.array(expected[prog])
        assert np.mean((pitches < lo) | (pitches > hi)) <= 0.011
        assert lo <= np.median(pitches) <= hi
