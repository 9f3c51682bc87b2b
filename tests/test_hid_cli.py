"""`python -m meloformer.hid encode|decode|check` from the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "meloformer.hid", *args], cwd=REPO, capture_output=True, text=True
    )


def test_encode_decode_check(fixture_midis, tmp_path):
    src = fixture_midis[0]
    out = run("encode", str(src), "-o", str(tmp_path / "song.json"))
    assert out.returncode == 0, out.stderr
    body = json.loads((tmp_path / "song.json").read_text())
    assert body["tokens"][0] == "BOS" and len(body["ids"]) == len(body["bar"])
    out = run("decode", str(tmp_path / "song.json"), "-o", str(tmp_path / "song.mid"))
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "corpus" / "a"
    folder.mkdir(parents=True)
    shutil.copy(tmp_path / "song.mid", folder / "x.mid")
    shutil.copy(fixture_midis[0].parent / "corrupt" / "miditok_Control168.mid", folder / "bad.MID")
    out = run("check", str(tmp_path / "corpus"), "--json", str(tmp_path / "check.json"))
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "check.json").read_text())
    assert rows["TOTAL"]["files"] == 2 and rows["TOTAL"]["valid"] == 1
    assert rows["TOTAL"]["rejected"] == {"parse": 1}
    assert rows["TOTAL"]["roundtrip_exact_pct"] == 100.0 and "tok/note" in out.stdout


def test_bad_input_exits_2_with_a_message(fixture_midis, tmp_path):
    bad = fixture_midis[0].parent / "corrupt" / "miditok_Control168.mid"
    out = run("encode", str(bad), "-o", str(tmp_path / "x.json"))
    assert out.returncode == 2 and "Control168" in out.stderr and "byte" in out.stderr


def test_check_names_the_rejected_files(fixture_midis, tmp_path):
    """`hid check DIR` names each rejected file with its reason under the table (the first
    few; --json has them all); an empty file says so."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(fixture_midis[0], folder / "good.mid")
    (folder / "empty.mid").write_bytes(b"")
    (folder / "short.mid").write_bytes(b"MThd\x00\x00")
    for i in range(6):
        (folder / f"junk{i}.mid").write_bytes(b"not a midi file at all %d" % i)
    out = run("check", str(folder), "--json", str(tmp_path / "check.json"))
    assert out.returncode == 0, out.stderr
    named = [line for line in out.stdout.splitlines() if line.startswith("rejected: ")]
    assert len(named) == 5
    assert f"rejected: {folder / 'empty.mid'}: empty file (0 bytes)" in named
    assert f"and 3 more rejected files (all listed in {tmp_path / 'check.json'})" in out.stdout
    rows = json.loads((tmp_path / "check.json").read_text())
    reasons = {Path(r["file"]).name: r["reason"] for r in rows["TOTAL"]["rejects"]}
    assert len(reasons) == 8 and reasons["short.mid"].startswith("cut short: 6 bytes")
