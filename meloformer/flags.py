"""Command-line flags generated from a frozen config dataclass, so a setting has one home.

Each init field of the dataclass becomes one flag: its type from the annotation, its default
from the field, its help from the attribute docstring under the field. A config error that
names a field (meloformer.errors.ConfigError) is reported under the flag the user typed
(`as_flag`). This is the command layer: the library never imports it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from meloformer.errors import ConfigError


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstring of each field of dataclass `cls` (the string literal written
    on the line after `name: type = default`), joined into one line; fields without one are
    absent."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _parse_list(kind: type) -> Callable[[str], tuple]:
    """argparse type of a tuple field: comma-separated values, e.g. "128,33,0"."""
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(p.strip()) for p in text.split(",") if p.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values, got {text!r}") from None
    return parse


def _flag_kwargs(hint: Any, default: Any, repeat: bool) -> dict[str, Any]:
    """add_argument keywords for a field annotated `hint` (None and `X | None` accepted)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if bool in args:  # `bool | str` (e.g. compile: "auto"): --x / --no-x force it
            return {"action": argparse.BooleanOptionalAction, "default": default}
        hint = args[0]
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction, "default": default}
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if repeat:
            return {"action": "append", "type": item, "default": default}
        return {"type": _parse_list(item), "default": default}
    return {"type": hint, "default": default}


def add_flags(ap: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
              rename: dict[str, str] | None = None, skip: Iterable[str] = (),
              repeat: Iterable[str] = (), dashes: bool = True,
              given_only: bool = False) -> dict[str, str]:
    """Add one flag per init field of dataclass `cls` to `ap`.

    Args:
        rename: field -> flag name without the dashes (e.g. {"n_bars": "bars"}).
        skip: fields that get no flag.
        repeat: tuple fields whose flag is repeated (one item each) instead of comma-separated.
        dashes: "--top-k" (True) or the seed's "--max_seq_len" (False).
        given_only: every default is None ("not given", for layering over a preset); the help
            still states the field's default.

    Returns:
        field -> flag as typed ("--bars"), for `values` and `as_flag`.
    """
    rename, skip, repeat = rename or {}, set(skip), set(repeat)
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    flags = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        name = rename.get(f.name, f.name.replace("_", "-") if dashes else f.name)
        kwargs = _flag_kwargs(hints[f.name], None if given_only else default,
                              f.name in repeat)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        more = "; repeatable" if f.name in repeat else ""
        help_text = docs.get(f.name, "").replace("%", "%%")
        kwargs["help"] = f"{help_text} (default: {shown}{more})".strip()
        if kwargs.get("action") is not argparse.BooleanOptionalAction:
            kwargs["metavar"] = name.upper().replace("-", "_")
        ap.add_argument(f"--{name}", dest=f.name, **kwargs)
        flags[f.name] = f"--{name}"
    return flags


def values(args: argparse.Namespace, flags: dict[str, str], drop_none: bool = False
           ) -> dict[str, Any]:
    """The parsed value of each field in `flags` (appended lists as tuples); without the
    fields left None when `drop_none`."""
    out = {}
    for name in flags:
        value = getattr(args, name)
        out[name] = tuple(value) if isinstance(value, list) else value
    return {k: v for k, v in out.items() if v is not None} if drop_none else out


def as_flag(error: ConfigError, flags: dict[str, str]) -> ConfigError:
    """`error` named by the flag that set its field ("--bars: must be in 1..4096, got 0");
    unchanged when no flag sets it."""
    flag = flags.get(error.key)
    return error.rekeyed(flag) if flag else error
