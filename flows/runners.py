"""The task runner a flow fans out on: threads on this machine, or a Dask cluster.

Dask comes with the optional extra (`pip install -e ".[distributed]"`, i.e. prefect-dask), so
it is imported only when asked for.
"""

from __future__ import annotations

import os

from prefect.client.orchestration import get_client
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

DISTRIBUTED_HINT = 'needs the distributed extra: pip install -e ".[distributed]"'
# A shard task runs its files in a child process (crash and timeout containment), and a daemonic
# Dask worker may not start children. Nannies read this whenever they (re)start a worker, so it
# must stay set; remote workers take it from DASK_DISTRIBUTED__WORKER__DAEMON=False (README).
WORKER_CONFIG = {"distributed.worker.daemon": False}


def task_runner(
    threads: int, dask_address: str | None = None, dask_workers: int = 0
) -> TaskRunner:
    """Threads on this machine by default; Dask when given an address or a worker count.

    Args:
        threads: thread count of the local runner.
        dask_address: a running Dask scheduler ("tcp://host:8786"); its workers run the tasks.
        dask_workers: start a temporary local Dask cluster of this many worker processes.
    Raises:
        ImportError: Dask was asked for but prefect-dask is not installed (the message says how
            to install it).
    """
    if dask_address is None and dask_workers <= 0:
        return ThreadPoolTaskRunner(max_workers=threads)
    try:
        import dask
        from prefect_dask import DaskTaskRunner
    except ImportError as e:
        raise ImportError(f"--dask-address/--dask-workers {DISTRIBUTED_HINT}") from e
    if dask_address is not None:
        return DaskTaskRunner(address=dask_address)
    dask.config.set(WORKER_CONFIG)  # the nannies of the local cluster run in this process
    share_api_with_workers()
    # One thread per worker process: each shard task mostly waits on its child process.
    cluster = {"n_workers": dask_workers, "threads_per_worker": 1, "processes": True}
    return DaskTaskRunner(cluster_kwargs=cluster)


def share_api_with_workers() -> None:
    """Point the workers of a local cluster at the Prefect API this process uses.

    Worker processes inherit this environment. Without PREFECT_API_URL each would start a
    temporary server of its own (about 20 s each) and record its task runs there; so start
    this process's temporary server now, if it uses one, and export its address.
    """
    with get_client(sync_client=True) as client:
        os.environ.setdefault("PREFECT_API_URL", str(client.api_url))
