"""validate: the suite passes on good shards and names the shard and expectation it fails on."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meloformer.data.checks import paired_checks
from meloformer.data.config import DiscoverConfig, PreprocessConfig, ValidateConfig
from meloformer.data.discover import MANIFEST_FILE, SUMMARY_FILE, discover, read_summary
from meloformer.data.preprocess import preprocess
from meloformer.data.shards import SHARD_DIR, songs_file
from meloformer.data.validate import REPORT_FILE, ValidationFailed, validate
from meloformer.hid import HIDConfig, Vocab
from tasks.validate import main as validate_main

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "raw" / "sample"

SPLIT = DiscoverConfig(val_fraction=0.25, test_fraction=0.25)
LOOSE = ValidateConfig(max_reject_rate=0.2, split_tolerance=0.5)  # 13 files: splits are noisy


def sample_files(n: int) -> list[Path]:
    files = sorted(SAMPLE.rglob("*.mid"))
    return files[:: len(files) // n][:n]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """Processed dir of 12 sample songs and one corrupt file (one reject), 4 files per shard,
    with the discover.json of the run (split 50/25/25) beside the shards, as the seed CLI
    writes it."""
    root = tmp_path_factory.mktemp("good")
    (root / "corrupt.mid").write_bytes(b"MThd but not really a MIDI file")
    inputs = [*sample_files(12), root / "corrupt.mid"]
    discover(inputs, root / "processed", SPLIT, base=root)
    cfg = PreprocessConfig(workers=2, shard_size=4)
    preprocess(root / "processed" / MANIFEST_FILE, root / "processed", cfg, root, progress=False)
    return root / "processed"


@pytest.fixture
def processed(good, tmp_path) -> Path:
    """A private copy of the good processed dir, free to tamper with."""
    return Path(shutil.copytree(good, tmp_path / "processed"))


def tamper(processed: Path, column: str, edit: Callable[[list], list], shard: int = 1) -> None:
    """Rewrite the longest song of a shard with `edit` applied to one of its columns."""
    path = songs_file(processed / SHARD_DIR, shard)
    table = pq.read_table(path)
    row = max(range(table.num_rows), key=table.column("n_tokens").to_pylist().__getitem__)
    values = table.column(column).to_pylist()
    values[row] = edit(values[row])
    field = table.schema.field(column)
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, field, pa.array(values, field.type)), path)


def _set(values: list, at: int, value: int) -> list:
    values = list(values)
    values[at] = value
    return values


def test_good_shards_pass_and_report_every_expectation(good):
    report = validate(good, LOOSE, read_summary(good / SUMMARY_FILE))
    written = json.loads((good / REPORT_FILE).read_text())
    assert report.success and written["success"] and written["failed"] == 0
    batches = {o["batch"] for o in written["outcomes"]}
    assert {"shard-00000", "shard-00003", "corpus/splits", "corpus/rejects"} <= batches
    assert written["evaluated"] == len(report.outcomes) > 50


@pytest.mark.parametrize(
    ("column", "edit", "expected"),
    [
        ("ids", lambda v: _set(v, len(v) // 2, 5000), "ids in vocab"),
        ("bar", lambda v: v[:-1], "metadata arrays as long as the tokens"),
        ("bar", lambda v: _set(v, len(v) - 1, 0), "bar index non-decreasing within a track"),
        ("n_notes", lambda v: 0, "no empty songs"),
    ],
    ids=["id-out-of-range", "truncated-metadata", "bar-goes-back", "empty-song"],
)
def test_tampered_shard_fails_naming_shard_and_expectation(processed, column, edit, expected):
    tamper(processed, column, edit)
    with pytest.raises(ValidationFailed) as failed:
        validate(processed, LOOSE, read_summary(processed / SUMMARY_FILE))
    culprits = {(o.batch, o.description) for o in failed.value.report.failures}
    assert ("shard-00001", expected) in culprits
    assert all(batch == "shard-00001" for batch, _ in culprits)
    assert "shard-00001: expect_" in str(failed.value) and expected in str(failed.value)
    assert json.loads((processed / REPORT_FILE).read_text())["success"] is False


def test_reject_rate_and_split_shares_are_corpus_expectations(good):
    strict = ValidateConfig(max_reject_rate=0.0, split_tolerance=0.0)
    skewed = {"train": 0.0, "val": 0.0, "test": 1.0}
    skewed = replace(read_summary(good / SUMMARY_FILE), fractions=skewed)
    with pytest.raises(ValidationFailed) as failed:
        validate(good, strict, skewed)
    culprits = {o.batch for o in failed.value.report.failures}
    assert culprits == {"corpus/rejects", "corpus/splits"}


def test_dvc_entry_exits_nonzero_naming_the_shard(processed, tmp_path):
    tamper(processed, "ids", lambda v: _set(v, 1, 9999), shard=2)
    params = tmp_path / "params.yaml"
    params.write_text("validate: {max_reject_rate: 0.2, split_tolerance: 0.5}\n")
    args = ["--processed", str(processed), "--discover", str(processed / SUMMARY_FILE)]
    with pytest.raises(SystemExit) as exited:
        validate_main([*args, "--params", str(params)])
    assert "shard-00002: expect_column_values_to_be_between(ids_max)" in str(exited.value.code)


def test_splits_are_checked_against_what_discover_recorded_not_params(good, tmp_path, capsys):
    """discover ran at 25/25; params.yaml now says 0/0 with no tolerance: the shards are still
    valid, because validate holds them to the fractions discover.json recorded."""
    assert {"val", "test"} <= set(pq.read_table(good / MANIFEST_FILE)["split"].to_pylist())
    params = tmp_path / "params.yaml"
    params.write_text(
        "discover: {val_fraction: 0.0, test_fraction: 0.0}\n"
        "validate: {max_reject_rate: 0.2, split_tolerance: 0.0}\n"
    )
    args = ["--processed", str(good), "--discover", str(good / SUMMARY_FILE)]
    validate_main([*args, "--params", str(params)])
    assert "FAILED" not in capsys.readouterr().out
    (tmp_path / "old.json").write_text('{"found": 13}')
    with pytest.raises(SystemExit, match="old.json: no field 'duplicates'"):
        validate_main([*args[:2], "--discover", str(tmp_path / "old.json")])


def test_paired_checks_count_order_and_track_faults():
    """Hand-made song: BOS, conductor, a piano track, then drums (drums must come first)."""
    vocab = Vocab(HIDConfig())
    bos, bar = 1, vocab.index["BAR"]
    piano, drums = vocab.index["PROGRAM_0"], vocab.index["DRUMS"]
    ids = [bos, bar, piano, bar, bar, drums, bar, 2]
    cols = {
        "ids": ids,
        "type": [int(vocab.family_of[i]) for i in ids],
        "track": [0, 0, 1, 1, 1, 2, 2, 2],
        "bar": [0, 0, 0, 0, 1, 0, 0, 0],
        "program": [129, 129, 0, 0, 0, 128, 128, 128],
    }
    table = pa.table({k: pa.array([v], pa.list_(pa.int64())) for k, v in cols.items()})
    counts = {k: int(v[0]) for k, v in paired_checks(table, vocab).items()}
    assert counts == {
        "type_mismatches": 0, "bar_backsteps": 0, "track_jumps": 0,
        "program_switches": 0, "order_inversions": 1,
    }  # fmt: skip
