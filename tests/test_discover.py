"""discover: candidate finding (extensions, symlink loops, list files), dedup, stable splits."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import corpus_index

from meloformer import preprocess as seed_cli
from meloformer.data.config import SPLITS, DiscoverConfig
from meloformer.data.discover import (
    MANIFEST_FILE,
    SUMMARY_FILE,
    SummaryError,
    assign_splits,
    discover,
    find_midi,
    read_summary,
)
from meloformer.data.manifest import ManifestError, read_manifest, write_manifest
from tasks.discover import main as discover_stage

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_extensions_match_in_any_case(tmp_path):
    for name in ["a.mid", "b.MIDI", "c.Kar", "d.MiD", "e.txt", "f.mid.bak", "g.midx"]:
        _write(tmp_path / "in" / name, name.encode())
    manifest, summary = find_midi([tmp_path / "in"], DiscoverConfig(), base=tmp_path)
    assert sorted(manifest["path"]) == ["in/a.mid", "in/b.MIDI", "in/c.Kar", "in/d.MiD"]
    assert summary.found == 4 and summary.unique == 4 and summary.duplicates == 0


def test_symlink_loop_is_walked_once(tmp_path):
    root = tmp_path / "root"
    _write(root / "sub" / "x.mid", b"x")
    os.symlink(root, root / "sub" / "loop")  # root/sub/loop -> root: a cycle
    os.symlink(root / "sub", root / "again")  # a second way into the same directory
    manifest, summary = find_midi([root], DiscoverConfig(), base=tmp_path)
    # One real directory, one visit: the first path in sorted walk order ("again" < "sub").
    assert manifest["path"].tolist() == ["root/again/x.mid"]
    assert summary.found == 1


def test_duplicates_keep_first_path_and_share_one_split(tmp_path):
    same = b"MThd same bytes"
    _write(tmp_path / "b" / "copy.mid", same)
    _write(tmp_path / "a" / "orig.mid", same)
    _write(tmp_path / "c" / "other.mid", b"different")
    manifest, summary = find_midi([tmp_path], DiscoverConfig(), base=tmp_path)
    assert manifest["path"].tolist() == ["a/orig.mid", "c/other.mid"]
    assert summary.found == 3 and summary.unique == 2 and summary.duplicates == 1
    assert manifest.loc[0, "hash"] == hashlib.sha256(same).hexdigest()


def test_split_is_a_function_of_content_only(tmp_path):
    """Adding files never moves an existing song; the same bytes anywhere get the same split."""
    cfg = DiscoverConfig(val_fraction=0.3, test_fraction=0.3)
    for i in range(40):
        _write(tmp_path / "first" / f"{i}.mid", f"song {i}".encode())
    before, _ = find_midi([tmp_path / "first"], cfg, base=tmp_path)
    for i in range(40, 80):
        _write(tmp_path / "second" / f"renamed-{i}.mid", f"song {i - 40}".encode())
        _write(tmp_path / "second" / f"new-{i}.mid", f"song {i}".encode())
    after, summary = find_midi([tmp_path / "first", tmp_path / "second"], cfg, base=tmp_path)
    assert summary.duplicates == 40
    assert (
        dict(zip(before["hash"], before["split"], strict=True)).items()
        <= dict(zip(after["hash"], after["split"], strict=True)).items()
    )
    assert set(after["split"]) == set(SPLITS)


def test_split_shares_follow_the_fractions():
    rng = np.random.default_rng(0)
    hashes = [hashlib.sha256(rng.bytes(8)).hexdigest() for _ in range(20_000)]
    splits = np.array(assign_splits(hashes, {"train": 0.8, "val": 0.15, "test": 0.05}))
    for name, share in {"train": 0.8, "val": 0.15, "test": 0.05}.items():
        sigma = (share * (1 - share) / len(hashes)) ** 0.5
        assert abs((splits == name).mean() - share) < 4 * sigma


def test_list_file_relative_to_itself_with_comments_and_missing_entries(tmp_path):
    a = _write(tmp_path / "data" / "a.mid", b"a")
    _write(tmp_path / "data" / "b.mid", b"b")
    listing = tmp_path / "lists" / "midi_files.txt"
    listing.parent.mkdir()
    listing.write_text(f"# made by find\n{a}\n\n../data/b.mid\n../data/gone.mid\nnotes.txt\n")
    manifest, summary = find_midi([listing], DiscoverConfig(), base=tmp_path)
    assert manifest["path"].tolist() == ["data/a.mid", "data/b.mid"]
    assert [p for p, _ in summary.unreadable] == ["data/gone.mid"]
    where = str((tmp_path / "data" / "gone.mid").resolve())
    assert summary.unreadable[0][1] == f"no such file (looked for {where})"
    # The summary line names the first one and where it was looked for ("1 unreadable" said
    # nothing when a list file's relative entries pointed nowhere).
    assert f"1 unreadable (first: data/gone.mid: no such file (looked for {where})" in \
        summary.line()


def test_paths_outside_base_stay_absolute(tmp_path):
    f = _write(tmp_path / "x.mid", b"x")
    manifest, _ = find_midi([f], DiscoverConfig(), base=tmp_path / "elsewhere")
    assert manifest["path"].tolist() == [f.as_posix()]


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        find_midi([tmp_path / "nope"], DiscoverConfig(), base=tmp_path)


def test_config_rejects_impossible_fractions():
    with pytest.raises(ValueError, match="room for train"):
        DiscoverConfig(val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="extensions"):
        DiscoverConfig(extensions=("mid",))


def test_discover_writes_manifest_and_summary(tmp_path):
    _write(tmp_path / "in" / "a.mid", b"a")
    _write(tmp_path / "in" / "b.mid", b"a")
    summary = discover([tmp_path / "in"], tmp_path / "out", DiscoverConfig(), base=tmp_path)
    manifest = read_manifest(tmp_path / "out" / MANIFEST_FILE)
    assert manifest.columns.tolist() == ["path", "size", "hash", "split"]
    assert json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())["duplicates"] == 1
    assert summary.line().startswith("discover: 2 files, 1 unique")
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_summary_records_the_fractions_used_and_reads_back(tmp_path):
    cfg = DiscoverConfig(val_fraction=0.2, test_fraction=0.3)
    _write(tmp_path / "in" / "a.mid", b"a")
    written = discover([tmp_path / "in"], tmp_path / "out", cfg, tmp_path)
    assert written.fractions == pytest.approx({"train": 0.5, "val": 0.2, "test": 0.3})
    assert read_summary(tmp_path / "out" / SUMMARY_FILE) == written


def test_summary_without_fractions_is_a_clear_error(tmp_path):
    old = {"found": 1, "unique": 1, "duplicates": 0, "unreadable": [], "splits": {"train": 1}}
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(old))
    with pytest.raises(SummaryError, match=r"discover\.json: no field 'fractions'; rerun"):
        read_summary(tmp_path / SUMMARY_FILE)
    with pytest.raises(SummaryError, match="nope.json: cannot read"):
        read_summary(tmp_path / "nope.json")


def _seed_and_stage(tmp_path, monkeypatch, seed_flags: list[str], params: Path) -> list:
    """Discover the same 200 files with the seed CLI and with the DVC stage's entry; return
    both manifests and both recorded fraction dicts."""
    for i in range(200):
        _write(tmp_path / "in" / f"{i:03d}.mid", f"song {i}".encode())
    monkeypatch.chdir(tmp_path)
    # The files are not MIDI: the seed CLI writes its manifest, rejects them all, and exits 1.
    with pytest.raises(SystemExit, match="all 200 files were rejected"):
        seed_cli.main(["--input", "in", "--output", "seed", "--workers", "1", "--quiet",
                       *seed_flags])
    discover_stage(["--input", "in", "--out", "interim", "--params", str(params)])
    return [
        (read_manifest(tmp_path / d / MANIFEST_FILE), read_summary(tmp_path / d / SUMMARY_FILE))
        for d in ("seed", "interim")
    ]


def test_seed_cli_and_dvc_stage_split_alike_for_the_same_fractions(tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text("discover: {val_fraction: 0.3, test_fraction: 0.2}\n")
    flags = ["--val-fraction", "0.3", "--test-fraction", "0.2"]
    (seed, seed_sum), (stage, stage_sum) = _seed_and_stage(tmp_path, monkeypatch, flags, params)
    assert seed.equals(stage) and set(seed["split"]) == set(SPLITS)
    assert seed_sum.fractions == stage_sum.fractions
    assert stage_sum.fractions == pytest.approx({"train": 0.5, "val": 0.3, "test": 0.2})


def test_seed_cli_defaults_are_the_committed_params(tmp_path, monkeypatch):
    """One owner of the default fractions: the seed CLI without flags and `dvc repro` on the
    committed params.yaml split a corpus alike (they used to be 0.05 and 0.1)."""
    (seed, seed_sum), (stage, stage_sum) = _seed_and_stage(
        tmp_path, monkeypatch, [], REPO / "params.yaml"
    )
    assert seed_sum.fractions == stage_sum.fractions == DiscoverConfig().split_fractions
    assert seed.equals(stage)


def test_read_manifest_rejects_duplicate_hashes(tmp_path):
    manifest, _ = find_midi([_write(tmp_path / "a.mid", b"a")], DiscoverConfig(), tmp_path)
    doubled = manifest.loc[[0, 0]].assign(path=["a.mid", "b.mid"])
    write_manifest(doubled, tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match="duplicate"):
        read_manifest(tmp_path / "m.parquet")


@pytest.mark.corpus
def test_corpus_hashes_match_the_index(corpus):
    manifest, summary = find_midi([corpus], DiscoverConfig(), base=corpus)
    index = {r["path"]: r["sha256"] for r in corpus_index()}
    assert summary.found == len(index) and summary.unreadable == ()
    assert summary.unique == len(set(index.values())) == len(manifest)
    assert all(index[p] == h for p, h in zip(manifest["path"], manifest["hash"], strict=True))
