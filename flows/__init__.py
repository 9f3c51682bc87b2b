"""Prefect flows: composition of tasks/ only, no logic of their own.

Every flow's entry point imports this first, for the environment its child processes inherit:
- Prefect's telemetry of a temporary server prints a "database is locked" traceback on short
  runs, so it is off unless the user set it;
- tasks/ and flows/ run from the checkout (they are not installed), so the checkout goes on
  PYTHONPATH: a served deployment runs each flow in a subprocess that imports them again (without
  it Prefect fell back to a placeholder flow and failed "PipelineModel is not fully defined").
"""

import os
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

CHECKOUT = str(Path(__file__).resolve().parents[1])
if CHECKOUT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [CHECKOUT,
                                                             os.environ.get("PYTHONPATH")]))
