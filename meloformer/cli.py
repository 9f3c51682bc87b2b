"""How every command line of the project ends: the project's typed errors (bad input, bad
config, a missing or corrupt file) become one line on stderr and exit status 1; anything else
is a bug and keeps its traceback. Ctrl-C exits 130 without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from meloformer.audio import AudioError
from meloformer.data.manifest import ManifestError
from meloformer.data.pool import PreprocessError
from meloformer.data.report import ValidationFailed
from meloformer.data.shards import ShardError
from meloformer.generate.conditions import ConditionError
from meloformer.generate.constrain import GenerationError
from meloformer.generate.script import ModeError
from meloformer.hid.errors import HIDError
from meloformer.train.checkpoint import CheckpointError
from meloformer.train.loop import Interrupted

USER_ERRORS: tuple[type[BaseException], ...] = (
    AudioError, CheckpointError, ConditionError, GenerationError, HIDError, ManifestError,
    ModeError, PreprocessError, ShardError, ValidationFailed, FileNotFoundError,
    NotADirectoryError, IsADirectoryError, PermissionError,
)


class NothingDone(RuntimeError):
    """A command found nothing usable (no files, all rejected); it must not exit 0."""


def run_cli(fn: Callable[[], Any], *more: type[BaseException], code: int = 1) -> Any:
    """Call `fn()`; on USER_ERRORS, NothingDone or `more`, print "error: ..." on stderr and
    exit with `code` (SystemExit carries the message when code is 1).

    Returns what `fn` returned (a command's exit status when it is an int).
    """
    try:
        return fn()
    except (*USER_ERRORS, NothingDone, *more) as e:
        message = f"error: {_text(e)}"
        if code == 1:
            sys.exit(message)
        print(message, file=sys.stderr)
        sys.exit(code)
    except Interrupted as e:
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
