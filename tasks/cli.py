"""The end of every tasks.* and flows.* command: typed errors -> one line on stderr, exit 1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meloformer import cli
from meloformer.train.loop import TooManyBadSteps
from tasks.params import ParamsError


def run_cli(fn: Callable[[], Any]) -> Any:
    """meloformer.cli.run_cli with the params and training errors added."""
    return cli.run_cli(fn, ParamsError, TooManyBadSteps)
