"""Hostile files through the preprocess stage: each becomes a song or a reject with its reason
in rejects.parquet; a slow file hits the per-file timeout and a worker killed mid-file (as the
kernel's OOM killer would) loses only that file (issue 21)."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

from hostile import EOT, chunk, dense_bar, header, meta, note, rmid, smf, tempo, time_sig
from test_preprocess import FAST, rejects_of, run, sample_files, songs_of

from meloformer.hid import HIDConfig
from meloformer.hid.encode import encode_bytes
from meloformer.hid.song import Encoding

OOM_BYTES = 5_000_000  # files this large stand for ones that exhaust memory
CFG = replace(FAST, timeout_s=1.0)  # the million-note file needs >= 2 s anywhere; others ~10 ms


def oom_encode(data: bytes, cfg: HIDConfig, path: str) -> Encoding:
    """encode_bytes, except that a file named oom-* of OOM_BYTES or more SIGKILLs the worker:
    what the OOM killer does to a process that blew memory (a test cannot safely make a real
    one on a shared machine)."""
    if Path(path).name.startswith("oom") and len(data) >= OOM_BYTES:
        os.kill(os.getpid(), signal.SIGKILL)
    return encode_bytes(data, cfg, path)


def hostile_files() -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, expected reject error or None for a song). Pitches differ so no two
    songs share tokens (dedup would reject the later as a duplicate)."""
    never_released = bytes([0, 0x90, 0, 100]) + b"".join(
        bytes([1 if i % 5000 == 0 else 0, i % 128, 100]) for i in range(1, 1_999_990))
    return {
        "promised-65535-tracks.mid": (header(ntracks=65535) + chunk(note() + EOT), "parse"),
        "track-length-max.mid": (header() + chunk(note() + EOT, size=2**32 - 1), "parse"),
        "tempo-0.mid": (smf(tempo(0) + note(61)), "parse"),
        "tempo-max.mid": (smf(tempo(2**24 - 1) + note(62)), None),
        "ts-255-255.mid": (smf(time_sig(255, 255) + note(63)), "parse"),
        "ts-0-0.mid": (smf(time_sig(0, 0) + note(64)), "parse"),
        "never-released.mid": (smf(bytes([0, 0x90, 65, 100, 0, 66, 100])), None),
        "running-status.mid": (smf(bytes([0, 0x90, 67, 100]) + meta(0x01, b"x")
                                   + bytes([0, 68, 100, 96, 67, 0, 0, 68, 0])), None),
        "smpte.mid": (smf(note(69), division=0xE728), "unsupported"),
        "lyrics.kar": (smf(meta(0x05, "さくら".encode("shift_jis")) + note(70)), None),
        "junk-after.mid": (smf(note(71)) + bytes(range(256)) * 8, None),
        "wrapped-rmid.mid": (rmid(smf(note(72))), None),
        "million-notes.mid": (smf(dense_bar(999_999)), "timeout"),  # ~2 s > timeout_s
        "oom-never-released.mid": (smf(never_released), "crash"),
    }


def test_each_hostile_file_is_a_song_or_a_reject_with_its_reason(tmp_path):
    files = hostile_files()
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    inputs = sample_files(3) + [tmp_path / name for name in files]
    summary = run(inputs, tmp_path / "out", CFG, encode=oom_encode)
    rejects = {Path(p).name: r for p, r in rejects_of(tmp_path / "out").items()}
    songs = {Path(p).name for p in songs_of(tmp_path / "out")["path"].to_pylist()}
    assert summary.discovered == len(files) + 3 == summary.ok + summary.rejected
    for name, (_, error) in files.items():
        if error is None:
            assert name in songs, (name, rejects.get(name))
        else:
            assert rejects[name][0] == error and rejects[name][1], (name, rejects.get(name))
    assert "65535 tracks" in rejects["promised-65535-tracks.mid"][1]
    assert "SIGKILL" in rejects["oom-never-released.mid"][1]
    assert "after 1 s" in rejects["million-notes.mid"][1]
