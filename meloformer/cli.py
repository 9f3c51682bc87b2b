"""How every command line of the project ends: a UserError (bad input, bad config, a request
that cannot be honoured) or an OSError (a missing or unreadable file) becomes one line on
stderr and a non-zero exit; anything else is a bug and keeps its traceback. A run stopped by a
signal exits 128 + the signal; Ctrl-C elsewhere exits 130 without a traceback.

This is the command layer: the library never imports it (meloformer.errors holds the types).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from meloformer.errors import NothingDone, Stopped, UserError

__all__ = ["NothingDone", "run_cli"]  # NothingDone: the command-line error commands raise


def run_cli(fn: Callable[[], Any], code: int = 1) -> Any:
    """Call `fn()`; on a UserError or OSError print "error: ..." on stderr and exit with
    `code` (SystemExit carries the message when code is 1).

    Returns what `fn` returned (a command's exit status when it is an int).
    """
    try:
        return fn()
    except (UserError, OSError) as e:
        message = f"error: {_text(e)}"
        if code == 1:
            sys.exit(message)
        print(message, file=sys.stderr)
        sys.exit(code)
    except Stopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def _text(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror}"
    return text.strip()
