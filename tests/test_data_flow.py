"""The Prefect data flow under prefect_test_harness: discover -> map(preprocess) -> validate,
on threads and on a two-process Dask cluster (skipped without the [distributed] extra), and its
command line on params.yaml's `raw` (another folder than data/raw)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.testing.utilities import prefect_test_harness

import flows.data
from flows.data import data
from flows.runners import WORKER_CONFIG, task_runner
from meloformer.data.config import PreprocessConfig, ValidateConfig
from meloformer.data.shards import SHARD_DIR, shard_of, songs_file
from tasks.params import Params
from tasks.paths import Paths
from tasks.preprocess import shard_count

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "raw" / "sample"


@pytest.fixture(scope="module")
def harness():
    """A throwaway Prefect backend for this module's flow runs."""
    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_data_flow_fans_out_over_shards_and_writes_the_dvc_outs(harness, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in sorted(SAMPLE.glob("freedoom/*.mid"))[:7]:
        shutil.copy(path, raw)
    params = replace(Params(), preprocess=PreprocessConfig(workers=2, shard_size=3))
    paths = Paths(raw=raw).under(tmp_path)
    interim, processed = paths.interim, paths.processed
    report = data(params, paths)
    assert report.success
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["totals"] == {**meta["totals"], "discovered": 7, "ok": 7, "rejected": 0}
    assert (
        len(meta["shards"]) == 3 == shard_count.fn(interim / "manifest.parquet", params.preprocess)
    )
    for out in ("shards/shard-00002.parquet", "rejects.parquet", "validation.json"):
        assert (processed / out).is_file(), out


def test_the_data_command_reads_the_raw_param_not_data_raw(harness, tmp_path, monkeypatch,
                                                          capsys):
    """`python -m flows.data` on a project whose params.yaml points `raw` at my-midi/ (the
    README's "Bring your own music"): the manifest lists those files and nothing else."""
    mine = tmp_path / "my-midi" / "deep"
    mine.mkdir(parents=True)
    for path in sorted(SAMPLE.glob("freedoom/*.mid"))[:3]:
        shutil.copy(path, mine)
    (tmp_path / "data" / "raw").mkdir(parents=True)  # a default folder the flow must not read
    shutil.copy(sorted(SAMPLE.glob("freedoom/*.mid"))[3], tmp_path / "data" / "raw")
    (tmp_path / "params.yaml").write_text(
        "raw: my-midi\npreprocess: {workers: 1, shard_size: 2}\n"
        "validate: {max_reject_rate: 0.5, split_tolerance: 1.0}\n")
    monkeypatch.chdir(tmp_path)
    flows.data.main(["--params", "params.yaml"])
    rows = pq.read_table(Paths().manifest).to_pydict()
    assert sorted(Path(p).parent for p in rows["path"]) == [Path("my-midi/deep")] * 3
    out = capsys.readouterr().out
    assert "stages run: discover, preprocess, validate" in out  # no dvc.yaml here: all run
    assert (Paths().processed / "validation.json").is_file()


# --- Scale-out: the same flow on a Dask cluster (needs the [distributed] extra) ----------------


@pytest.fixture(scope="module")
def dask_client():
    """A LocalCluster of two worker processes, configured as flows.runners configures one."""
    pytest.importorskip("prefect_dask")
    import dask
    from distributed import Client, LocalCluster

    with (
        dask.config.set(WORKER_CONFIG),
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _inputs(raw: Path) -> list[str]:
    """The 12 largest sample songs (the slowest shards: the longest window to kill a worker in)
    and 4 corrupt files, named so each 4-row shard holds one; returns the corrupt names."""
    raw.mkdir()
    songs = iter(sorted(SAMPLE.rglob("*.mid"), key=lambda f: (-f.stat().st_size, f))[:12])
    corrupt = []
    for row in range(16):
        if row % 4 == 1:
            corrupt.append(f"{row:02d}-corrupt.mid")
            (raw / corrupt[-1]).write_bytes(b"MThd but not really a MIDI file %d" % row)
        else:
            shutil.copy(next(songs), raw / f"{row:02d}.mid")
    return corrupt


def _ancestor_in(pid: int, candidates: set[int]) -> int | None:
    """The first of `candidates` among pid and its ancestors (via /proc), else None."""
    while pid > 1:
        if pid in candidates:
            return pid
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None
    return None


def _kill_mid_shard(client, shard_dir: Path, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the Dask worker whose shard task is writing a songs file not yet committed."""
    workers = set(client.run(os.getpid).values())
    while not stop.is_set():
        for tmp in shard_dir.glob("shard-?????.parquet.*.tmp"):  # songs being written
            shard, writer = shard_of(tmp), int(tmp.name.split(".")[-2])
            owner = _ancestor_in(writer, workers)
            if owner is not None and not songs_file(shard_dir, shard).exists():
                os.kill(owner, signal.SIGKILL)
                killed.update(shard=shard, pid=owner)
                return
        stop.wait(0.002)


def _outputs(processed: Path) -> dict[str, bytes]:
    files = [*sorted((processed / SHARD_DIR).iterdir()), processed / "rejects.parquet"]
    return {f.name: f.read_bytes() for f in files}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers via /proc")
def test_dask_run_matches_the_local_run_through_a_killed_worker(harness, dask_client, tmp_path):
    corrupt = _inputs(tmp_path / "raw")
    params = replace(
        Params(),
        preprocess=PreprocessConfig(workers=1, shard_size=4),
        validate=ValidateConfig(max_reject_rate=0.3, split_tolerance=0.5),
    )
    local, remote = tmp_path / "local", tmp_path / "dask"
    local_processed = Paths().under(local).processed
    on_threads = data.with_options(task_runner=task_runner(threads=2))
    on_threads(params, Paths(raw=tmp_path / "raw").under(local))

    killed, stop = {}, threading.Event()
    shard_dir = Paths().under(remote).processed / SHARD_DIR
    killer = threading.Thread(target=_kill_mid_shard, args=(dask_client, shard_dir, killed, stop))
    killer.start()
    on_dask = data.with_options(task_runner=task_runner(1, dask_client.scheduler.address))
    try:
        report = on_dask(params, Paths(raw=tmp_path / "raw").under(remote))
    finally:
        stop.set()
        killer.join()

    assert killed, "no worker was killed mid-shard"
    assert killed["pid"] not in dask_client.run(os.getpid).values()  # it died; the nanny
    assert report.success  # restarted it, and Dask ran the killed shard's task again
    remote_processed = Paths().under(remote).processed
    assert _outputs(remote_processed) == _outputs(local_processed)  # byte-identical
    rejects = pq.read_table(remote_processed / "rejects.parquet").to_pydict()
    assert sorted(Path(p).name for p in rejects["path"]) == corrupt


def test_task_runner_is_threads_unless_dask_is_asked_for(monkeypatch):
    from prefect.task_runners import ThreadPoolTaskRunner

    assert isinstance(task_runner(threads=3), ThreadPoolTaskRunner)
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # as if the extra were missing
    with pytest.raises(ImportError, match=r'pip install -e "\.\[distributed\]"'):
        task_runner(threads=3, dask_workers=2)
