"""Stage preprocess: encode the manifest's files into token shards, rejects and meta.json.

The stage's tasks are its three steps (shard_count, preprocess_shard, finalize): flows/data.py
maps preprocess_shard over the shards so they spread over the task runner (a Dask cluster).
There is no whole-stage task: one task running every shard would run them all on one worker.
main() (DVC) runs the whole stage on PreprocessConfig.workers local processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import task

from meloformer.cli import run_cli
from meloformer.data import PreprocessConfig, ShardDone
from meloformer.data import preprocess as lib
from meloformer.errors import NothingDone
from tasks.params import PARAMS_FILE, load_params


@task
def shard_count(manifest: Path, cfg: PreprocessConfig) -> int:
    """How many shards the manifest makes (the flow maps over them)."""
    return lib.shard_count(manifest, cfg)


@task
def preprocess_shard(manifest: Path, out_dir: Path, cfg: PreprocessConfig, shard: int) -> list:
    """Build one shard (in a worker process) unless it is already complete."""
    done: list[ShardDone] = lib.preprocess_shards(
        manifest, out_dir, cfg, Path.cwd(), shards=[shard], progress=False
    )
    return done


@task
def finalize(manifest: Path, out_dir: Path, cfg: PreprocessConfig) -> lib.PreprocessSummary:
    """Check every shard is there; write rejects.parquet and meta.json."""
    return lib.finalize(manifest, out_dir, cfg)


def main(argv: list[str] | None = None) -> None:
    """DVC entry: python -m tasks.preprocess --manifest M --out data/processed."""
    ap = argparse.ArgumentParser(prog="python -m tasks.preprocess")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=PARAMS_FILE)
    args = ap.parse_args(argv)

    def run() -> None:
        cfg = load_params(args.params).preprocess
        summary = lib.preprocess(args.manifest, args.out, cfg, Path.cwd())
        print(summary.line())
        if summary.ok == 0:
            raise NothingDone(f"all {summary.rejected} files were rejected "
                              f"({summary.rejected_by_error}); see {args.out}/rejects.parquet")

    run_cli(run)


if __name__ == "__main__":
    main()
