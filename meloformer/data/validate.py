"""Stage validate: a great_expectations suite, built in code, over the preprocessed shards.

Per shard (batch "shard-00042"): the file's columns, then per-song expectations over the check
columns of checks.py: ids inside the vocabulary, metadata lists as long as the tokens, bars
non-decreasing within a track, tracks contiguous and in canonical order, no empty songs.
Per corpus: hashes unique, split shares within tolerance, reject rate under the threshold,
every shard built with the vocabulary and config meta.json names.
This is the only module of the library that imports great_expectations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from meloformer.data.checks import song_checks
from meloformer.data.config import SPLITS, ValidateConfig
from meloformer.data.discover import DiscoverSummary
from meloformer.data.meta import META_FILE
from meloformer.data.preprocess import REJECTS_FILE
from meloformer.data.report import Outcome, ValidationFailed, ValidationReport, outcomes
from meloformer.data.shards import (
    LIST_FIELDS,
    ROW_GROUP_SONGS,
    SHARD_DIR,
    read_key,
    song_schema,
    songs_files,
)
from meloformer.hid import BOS, EOS, HIDConfig, Vocab
from meloformer.io import write_json

REPORT_FILE = "validation.json"
SPLIT_SIGMAS = 4.0  # binomial standard errors allowed on top of split_tolerance (small corpora)
# Which column names a row in failure examples, per table ("hash" for songs).
ROW_NAMES = {"shard/songs": "hash", "corpus/songs": "hash", "corpus/splits": "split",
             "corpus/shards": "file"}  # fmt: skip

__all__ = ["Outcome", "ValidationFailed", "ValidationReport", "validate"]


def _zero(column: str, what: str) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeBetween(
        column=column, min_value=0, max_value=0, description=what
    )


def song_suite(vocab: Vocab) -> list[gxe.Expectation]:
    """Expectations on the per-song check table of one shard."""
    lengths = ["n_tokens", *(f"len_{name}" for name in LIST_FIELDS)]
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="ids_max", min_value=0, max_value=len(vocab) - 1, description="ids in vocab"
        ),
        gxe.ExpectMulticolumnValuesToBeEqual(
            column_list=lengths, description="metadata arrays as long as the tokens"
        ),
        _zero("bar_backsteps", "bar index non-decreasing within a track"),
        _zero("track_jumps", "tracks contiguous, numbered 0, 1, 2, ..."),
        _zero("program_switches", "one program per track"),
        _zero("order_inversions", "tracks in canonical (rank, program) order"),
        _zero("type_mismatches", "type metadata is the family of each id"),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_notes", min_value=1, description="no empty songs"
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n_notes", column_B="pitch_count", description="n_notes counts PITCH tokens"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="first_id", value_set=[BOS], description="BOS first"
        ),
        gxe.ExpectColumnValuesToBeInSet(column="last_id", value_set=[EOS], description="EOS last"),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n_tracks", column_B="max_track", description="n_tracks matches the tracks"
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n_bars", column_B="bars_seen", description="n_bars matches the bars"
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=list(SPLITS), description="split"
        ),
    ]


class _Validator:
    """One ephemeral great_expectations context holding the named suites."""

    def __init__(self, suites: dict[str, list[gxe.Expectation]]) -> None:
        # In memory only: no docs site in /tmp, no progress bars, no analytics.
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            progress_bars=ProgressBarsConfig(globally=False),
            analytics_enabled=False,
        )
        self.ctx = gx.get_context(project_config=config, mode="ephemeral")
        asset = self.ctx.data_sources.add_pandas("meloformer").add_dataframe_asset("tables")
        self.batches = asset.add_batch_definition_whole_dataframe("whole")
        self.suites = {
            name: self.ctx.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
            for name, expectations in suites.items()
        }

    def run(self, suite: str, df: pd.DataFrame, batch: str) -> list[Outcome]:
        """Validate `df` against suite `suite`; outcomes are labelled with `batch`."""
        fmt: dict = {"result_format": "SUMMARY"}
        if suite in ROW_NAMES:
            fmt["unexpected_index_column_names"] = [ROW_NAMES[suite]]
        got = self.batches.get_batch(batch_parameters={"dataframe": df}).validate(
            self.suites[suite], result_format=fmt
        )
        return outcomes(batch, got)


def column_suite(hid: HIDConfig) -> list[gxe.Expectation]:
    """The shard file has exactly the songs-file columns."""
    names = song_schema(hid).names
    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=names, exact_match=True, description="columns")
    ]


def validate_shard(v: _Validator, path: Path, vocab: Vocab) -> list[Outcome]:
    """The shard's column set, then the song suite over its check table."""
    batch = path.name.split(".")[0]
    result = v.run("shard/columns", pd.DataFrame(columns=pq.read_schema(path).names), batch)
    if not all(o.success for o in result):
        return result  # the check table cannot be computed without the columns
    return result + v.run("shard/songs", shard_checks(path, vocab), batch)


def shard_checks(path: Path, vocab: Vocab) -> pd.DataFrame:
    """The check table of a shard, built row group by row group (memory stays bounded)."""
    batches = pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_SONGS)
    parts = [song_checks(pa.Table.from_batches([b]), vocab) for b in batches]
    return (
        pd.concat(parts, ignore_index=True) if parts else song_checks(pq.read_table(path), vocab)
    )


def corpus_tables(
    processed: Path, fractions: dict[str, float], tolerance: float
) -> dict[str, pd.DataFrame]:
    """Small tables about the whole corpus: songs (hash, split), splits, rejects, shards.

    A split's allowed deviation is `tolerance` plus SPLIT_SIGMAS binomial standard errors, so a
    small corpus is not failed by chance while a large one is held to `tolerance`.
    """
    meta = json.loads((processed / META_FILE).read_text())
    files = songs_files(processed / SHARD_DIR)
    songs = pd.concat(
        [pq.read_table(f, columns=["hash", "split"]).to_pandas() for f in files]
        or [pd.DataFrame(columns=["hash", "split"])]
    )
    n = max(len(songs), 1)
    splits = pd.DataFrame({"split": list(SPLITS)})
    splits["expected"] = splits["split"].map(fractions)
    splits["observed"] = splits["split"].map(songs["split"].value_counts()).fillna(0) / n
    splits["deviation"] = (splits["observed"] - splits["expected"]).abs()
    noise = (splits["expected"] * (1 - splits["expected"]) / n).map(math.sqrt)
    splits["allowed"] = tolerance + SPLIT_SIGMAS * noise
    rejected = pq.read_metadata(processed / REJECTS_FILE).num_rows
    discovered = meta["totals"]["discovered"]
    rejects = pd.DataFrame(
        {
            "discovered": [discovered],
            "accounted": [len(songs) + rejected],
            "reject_rate": [rejected / max(discovered, 1)],
        }
    )
    keys = [read_key(f) for f in files]
    shards = pd.DataFrame(
        {
            "file": [f.name for f in files],
            "vocab_hash": [k.vocab_hash if k else None for k in keys],
            "config_hash": [k.config_hash if k else None for k in keys],
        }
    )
    return {"songs": songs, "splits": splits, "rejects": rejects, "shards": shards, "meta": meta}


def corpus_suites(meta: dict, cfg: ValidateConfig) -> dict[str, list[gxe.Expectation]]:
    """Expectations on each corpus table."""
    return {
        "songs": [
            gxe.ExpectTableRowCountToBeBetween(min_value=1, description="at least one song"),
            gxe.ExpectColumnValuesToBeUnique(column="hash", description="songs unique"),
        ],
        "splits": [
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="allowed", column_B="deviation", or_equal=True,
                description="split shares within tolerance",
            )
        ],
        "rejects": [
            gxe.ExpectColumnValuesToBeBetween(
                column="reject_rate",
                max_value=cfg.max_reject_rate,
                description=f"reject rate <= {cfg.max_reject_rate:g}",
            ),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="discovered", column_B="accounted", description="ok + rejected"
            ),
        ],
        "shards": [
            gxe.ExpectColumnValuesToBeInSet(
                column="vocab_hash", value_set=[meta["vocab"]["hash"]], description="vocab"
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="config_hash", value_set=[meta["config_hash"]], description="config"
            ),
        ],
    }  # fmt: skip


def validate(
    processed: Path, cfg: ValidateConfig, discovered: DiscoverSummary
) -> ValidationReport:
    """Validate every shard and the corpus; write `processed/validation.json`.

    Args:
        processed: the preprocess output directory (shards/, meta.json, rejects.parquet).
        cfg: thresholds.
        discovered: what the discover run that made the manifest recorded (read_summary of
            its discover.json); the split shares are checked against its `fractions`.
    Returns:
        The report (all outcomes passed).
    Raises:
        ValidationFailed: naming each failing batch (shard or corpus table) and expectation;
            validation.json is written first either way.
    """
    processed = Path(processed)
    tables = corpus_tables(processed, discovered.fractions, cfg.split_tolerance)
    meta = tables.pop("meta")
    hid = HIDConfig(**meta["hid"])
    vocab = Vocab(hid)
    corpus = corpus_suites(meta, cfg)
    suites = {"shard/columns": column_suite(hid), "shard/songs": song_suite(vocab)}
    v = _Validator(suites | {f"corpus/{name}": exps for name, exps in corpus.items()})
    found: list[Outcome] = []
    for path in songs_files(processed / SHARD_DIR):
        found += validate_shard(v, path, vocab)
    for name in corpus:
        found += v.run(f"corpus/{name}", tables[name], f"corpus/{name}")
    report = ValidationReport(tuple(found))
    write_json(processed / REPORT_FILE, report.to_dict())
    if not report.success:
        raise ValidationFailed(report)
    return report
