"""The Prefect API a flow's command line will talk to: checked before any work starts, and the
served runner's repeated "at capacity" line said only when it changes."""

from __future__ import annotations

import logging

import httpx
from prefect.settings import get_current_settings

UNSET_HINT = ("start it (prefect server start) or run on a temporary server "
              "(prefect config unset PREFECT_API_URL)")


class PrefectUnreachable(ConnectionError):
    """PREFECT_API_URL names a server that does not answer (the message says what to do)."""


def require_api(timeout_s: float = 5.0) -> None:
    """Return when no API is configured (each run starts a temporary server) or the configured
    one answers its health check.

    Raises:
        PrefectUnreachable: naming the URL and the two ways out, instead of the client's
            traceback after its retries.
    """
    url = get_current_settings().api.url
    if not url:
        return
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as e:
        raise PrefectUnreachable(f"no Prefect server answers at {url} ({type(e).__name__}): "
                                 f"{UNSET_HINT}") from e


CAPACITY_LINE = "%d scheduled runs skipped (at capacity)"


class CapacityOnChange(logging.Filter):
    """Passes the runner's CAPACITY_LINE only when its count changed: a served deployment
    whose interval is shorter than a run would otherwise log it every poll (10 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: object = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != CAPACITY_LINE:
            return True
        count = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if count == self.last:
            return False
        self.last = count
        return True


def quiet_capacity_line() -> None:
    """Install CapacityOnChange on Prefect's runner logger (idempotent)."""
    logger = logging.getLogger("prefect.runner")
    if not any(isinstance(f, CapacityOnChange) for f in logger.filters):
        logger.addFilter(CapacityOnChange())
