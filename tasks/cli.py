"""The end of every tasks.* and flows.* command: meloformer.cli.run_cli (a UserError, the params
stage's ParamsError included, or an OSError -> one line on stderr, exit 1).

The tasks import meloformer.cli directly; this name stays for the flows that import it here.
"""

from __future__ import annotations

from meloformer.cli import run_cli

__all__ = ["run_cli"]
