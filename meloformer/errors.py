"""The errors a user can cause and fix, as one family every command line catches.

Every typed error the library raises on purpose for bad input (a bad config value, a corrupt
or missing file, a request the model cannot honour) subclasses `UserError`, keeping its older
base too (e.g. `class ShardError(UserError, ValueError)`), so `except ValueError` callers are
unchanged. meloformer.cli.run_cli turns a UserError (and an OSError) into one `error:` line;
any other exception is a bug and keeps its traceback. This module imports nothing of the
library, so any package may raise these without pulling in another.
"""

from __future__ import annotations

from typing import Any

_NOT_GIVEN = object()


class UserError(Exception):
    """Base of every error a user can fix; its message is one line naming what is at fault."""


class ConfigError(UserError, ValueError):
    """A config value breaks its rule. The message reads "<key>: <rule>, got <value>".

    `key` is the field's name, so the layer that knows where the value came from can say so
    in its own words: the params stage as "params.yaml: generate.n_bars: ...", a command line
    as "--bars: ..." (`rekeyed`).
    """

    def __init__(self, key: str, rule: str, value: Any = _NOT_GIVEN) -> None:
        self.key, self.rule, self.value = key, rule, value
        self.reason = rule + ("" if value is _NOT_GIVEN else f", got {value!r}")
        """The message without the key: "<rule>, got <value>"."""
        super().__init__(f"{key}: {self.reason}")

    def rekeyed(self, key: str) -> ConfigError:
        """The same rule and value under another name (a flag, a dotted params key)."""
        return ConfigError(key, self.rule, self.value)


class NothingDone(UserError, RuntimeError):
    """A command found nothing usable (no files, all rejected); it must not exit 0."""


class Stopped(RuntimeError):
    """A run stopped by a signal after saving its state; a command exits 128 + `signum`."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def check(key: str, value: Any, ok: bool, rule: str) -> None:
    """Raise ConfigError(key, rule, value) unless `ok` (the dataclass configs' range checks)."""
    if not ok:
        raise ConfigError(key, rule, value)
