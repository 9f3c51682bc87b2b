"""Prefect flows: composition of tasks/ only, no logic of their own.

Every flow's entry point imports this first: Prefect's telemetry of a temporary server prints a
"database is locked" traceback on short runs, so it is off unless the user set it.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
