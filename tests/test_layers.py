"""The import layers of meloformer/, tasks/, flows/ and bench/, read from the AST.

Layers, bottom first. A module imports only from its own package or from a lower layer; the
packages of one layer do not import each other:

    0  meloformer.errors, meloformer.io, meloformer.device     leaves any package may use
    1  meloformer.audio, meloformer.report                     leaves over io
    2  meloformer.hid                                          the codec
    3  meloformer.data, meloformer.model                       neither imports the other
    4  meloformer.train
    5  meloformer.generate
    6  meloformer.evaluate
    7  meloformer.cli                                          how every command line ends
    8  the command lines: meloformer.<pkg>.__main__ and COMMAND_LINES; nothing imports them
    9  tasks                                                   one adapter per dvc stage
    10 flows, bench                                            they compose tasks / measure

This is README "Layout" (hid <- data, model <- train <- generate <- evaluate <- command lines,
tasks, flows) made exact: audio and report sit on io only, cli sits under the command lines it
ends (and above every package whose errors it names), bench is a client like flows. A
`meloformer.<pkg>.__main__` belongs to its package for the face rule (it may use the
package's own modules) and to layer 8 for the order.

Faces: another package is used through its face only: `from meloformer.model import
MeloFormer`, never `from meloformer.model.transformer import MeloFormer`. The face of a
subpackage is its `__init__`; a top-level module (io, device, cli...) is its own face; every
module of tasks is a face (each is one stage's adapter and its entry point `python -m
tasks.<stage>`: a tasks/__init__ importing them all would load every stage for each one, and
make runpy warn); OWN_FACES lists the library's other modules that are faces of their own.
Only the importing statement is checked, so a module imported inside a function counts too.

Cycles: the package graph (a node per package, one per command line) is acyclic, the module
graph of load-time imports (module level, outside `if TYPE_CHECKING:`) too, and each package
imports alone in a fresh interpreter.

EXCEPTIONS lists, by (importer, imported module), the imports allowed to break a rule, each
with its reason; an exception that no longer matches anything fails the test, so the list only
shrinks.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("meloformer", "tasks", "flows", "bench")

LAYERS = [
    ["meloformer", "meloformer.errors", "meloformer.io", "meloformer.device",
     "meloformer.progress"],
    ["meloformer.audio", "meloformer.report"],
    ["meloformer.hid"],
    ["meloformer.data", "meloformer.model"],
    ["meloformer.train"],
    ["meloformer.generate"],
    ["meloformer.evaluate"],
    ["meloformer.cli", "meloformer.flags"],
    ["<command line>"],
    ["tasks"],
    ["flows", "bench"],
]

# Command lines that are not a package's __main__: layer 8, imported by nothing.
COMMAND_LINES = {
    "meloformer.preprocess": "the seed's `python -m meloformer.preprocess` (discover + "
    "preprocess)",
    "meloformer.train.export": "`python -m meloformer.train.export`: a checkpoint -> the shipped "
    "form",
}

# Library modules that are faces of their own (imported as themselves from other packages).
OWN_FACES = {
    "meloformer.data.discover": "a data stage: its function is named like its module "
    "(meloformer/data/__init__ keeps the stage modules modules)",
    "meloformer.data.preprocess": "a data stage (tasks/preprocess.py uses the module as `lib`)",
    "meloformer.data.validate": "a data stage, and the only module that loads "
    "great_expectations (seconds): the data face must not import it",
    "meloformer.hid.grammar": "generate's budget and constrain read the grammar checker's "
    "states as `g.T_BAR`, `g.C_POS`... (15 constants the hid face need not carry)",
}

# (importer, imported module): reason. Keep it short; it may only shrink.
EXCEPTIONS: dict[tuple[str, str], str] = {}


# ---------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    """One imported module, as one statement of `importer` names it."""

    importer: str
    target: str
    line: int
    names: tuple[str, ...]  # the names imported from `target` ('' for `import target`)
    at_load: bool  # at module level, outside `if TYPE_CHECKING:`
    type_checking: bool


@cache
def modules() -> dict[str, Path]:
    """Dotted name -> file of every module under CODE_DIRS (bench's scripts as bench.<name>)."""
    out = {}
    for top in CODE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def package_of(mod: str) -> str:
    """meloformer.<pkg> for a subpackage's modules, the module itself for meloformer's
    top-level modules, else tasks / flows / bench."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if parts[0] == "meloformer" else parts[0]


def node_of(mod: str) -> str:
    """The package graph's node: the package, except that command lines are nodes of their own."""
    return mod if is_command_line(mod) else package_of(mod)


def is_command_line(mod: str) -> bool:
    return mod in COMMAND_LINES or (mod.startswith("meloformer.") and mod.endswith(".__main__"))


def layer_of(mod: str) -> int:
    name = "<command line>" if is_command_line(mod) else package_of(mod)
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(body, at_load: bool, type_checking: bool):
    """(import statement, at load, under TYPE_CHECKING) for a statement list, recursively."""
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            yield stmt, at_load, type_checking
            continue
        nested = isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _statements(stmt.body, False, True)
            yield from _statements(stmt.orelse, at_load, type_checking)
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _statements(inner, at_load and not nested, type_checking)


def _targets(stmt: ast.Import | ast.ImportFrom, mod: str) -> list[tuple[str, tuple[str, ...]]]:
    """The modules of the code one statement imports, with the names taken from each."""
    known = modules()
    if isinstance(stmt, ast.Import):
        return [(a.name, ("",)) for a in stmt.names if a.name in known]
    if stmt.level:
        base = mod.split(".")
        base = base if known[mod].name == "__init__.py" else base[:-1]
        source = ".".join(base[: len(base) - stmt.level + 1] + [stmt.module or ""]).strip(".")
    else:
        source = stmt.module or ""
    if mod.startswith("bench.") and f"bench.{source}" in known:
        source = f"bench.{source}"  # a bench script importing a sibling by its bare name
    out, names = [], []
    for alias in stmt.names:
        if f"{source}.{alias.name}" in known and alias.name not in _bound(source):
            out.append((f"{source}.{alias.name}", ("",)))  # `from pkg import submodule`
        else:
            names.append(alias.name)
    if names and source in known:
        out.append((source, tuple(names)))
    return out


@cache
def _bound(mod: str) -> frozenset[str]:
    """The names a module binds at top level (a face's `from .crop import crop` binds `crop`,
    which `from meloformer.data import crop` then takes, not the submodule)."""
    if mod not in modules():
        return frozenset()
    out = set()
    for node in ast.parse(modules()[mod].read_text()).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                out.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return frozenset(out)


@cache
def edges() -> tuple[Edge, ...]:
    out = []
    for mod, path in modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for stmt, at_load, type_checking in _statements(tree.body, True, False):
            for target, names in _targets(stmt, mod):
                if target != mod:
                    out.append(Edge(mod, target, stmt.lineno, names, at_load, type_checking))
    return tuple(out)


def where(edge: Edge) -> str:
    return f"{modules()[edge.importer].relative_to(ROOT)}:{edge.line}"


def excepted(edge: Edge) -> bool:
    return (edge.importer, edge.target) in EXCEPTIONS


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the directed graph as a path [a, b, ..., a], or [] when acyclic."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


# ---------------------------------------------------------------- the rules


def test_the_graph_is_read():
    """The walk sees the imports it must judge (a broken walk would pass every rule)."""
    assert any(e.importer.startswith("meloformer.train.")
               and package_of(e.target) == "meloformer.model" for e in edges())
    assert any(e.importer.startswith("flows.") and e.target.startswith("tasks.") for e in edges())
    assert all(layer_of(m) >= 0 for m in modules())  # every package sits on a layer


def test_imports_point_down_the_layers():
    bad = [f"{where(e)}: {e.importer} (layer {layer_of(e.importer)}) imports {e.target} "
           f"(layer {layer_of(e.target)})"
           for e in edges()
           if package_of(e.importer) != package_of(e.target)
           and layer_of(e.target) >= layer_of(e.importer) and not excepted(e)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_nothing_imports_a_command_line():
    bad = [f"{where(e)}: imports the command line {e.target}" for e in edges()
           if is_command_line(e.target) and not excepted(e)]
    assert not bad, "\n".join(bad)


def test_other_packages_are_used_through_their_faces():
    """`from meloformer.model import MeloFormer`, never a module inside another package."""
    bad = []
    for e in edges():
        face = package_of(e.target)
        if face == package_of(e.importer) or excepted(e):
            continue
        if e.target == face or e.target in OWN_FACES or face == "tasks":
            continue
        bad.append(f"{where(e)}: {e.importer} imports {e.target}: use {face}")
    assert not bad, f"{len(bad)} imports bypass a face:\n" + "\n".join(bad)


def test_faces_export_what_they_are_asked_for():
    """Every name imported from a library package's face is in its __all__."""
    bad = []
    for e in edges():
        if not (e.target.startswith("meloformer.") and modules()[e.target].name == "__init__.py"):
            continue
        exported = _all_of(e.target)
        missing = [n for n in e.names if n and n not in exported]
        if missing and package_of(e.importer) != e.target:
            bad.append(f"{where(e)}: {e.target}.__all__ lacks {', '.join(missing)}")
    assert not bad, "\n".join(bad)


@cache
def _all_of(face: str) -> frozenset[str]:
    tree = ast.parse(modules()[face].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def test_every_exception_is_still_needed():
    """An exception that matches no import anymore is removed, so the list only shrinks."""
    used = {(e.importer, e.target) for e in edges()}
    stale = [f"{a} -> {b}" for a, b in EXCEPTIONS if (a, b) not in used]
    stale += [m for m in [*COMMAND_LINES, *OWN_FACES] if m not in modules()]
    assert not stale, "remove from tests/test_layers.py: " + ", ".join(stale)


def test_the_package_graph_is_acyclic():
    graph: dict[str, set[str]] = {}
    for e in edges():
        if not e.type_checking and node_of(e.importer) != node_of(e.target):
            graph.setdefault(node_of(e.importer), set()).add(node_of(e.target))
    assert not find_cycle(graph), " -> ".join(find_cycle(graph))


def test_no_module_imports_itself_back_at_load_time():
    graph: dict[str, set[str]] = {}
    for e in edges():
        if e.at_load:
            graph.setdefault(e.importer, set()).add(e.target)
    assert not find_cycle(graph), " -> ".join(find_cycle(graph))


def _units() -> list[str]:
    """What is imported alone: each library package / top-level module and own face; tasks,
    flows and bench each as one interpreter importing all their modules in name order."""
    mods = modules()
    units = sorted({package_of(m) for m in mods if m.startswith("meloformer.")} | set(OWN_FACES))
    return [*units, "tasks", "flows", "bench"]


@pytest.mark.parametrize("unit", _units())
def test_each_package_imports_alone(unit):
    """A fresh interpreter imports it with nothing loaded before (a cycle between faces, or a
    face that needs its importer loaded first, fails here)."""
    names = [unit]
    if unit in ("tasks", "flows", "bench"):
        names = [m.removeprefix("bench.") for m in modules() if package_of(m) == unit]
    path = [str(ROOT / "bench"), str(ROOT)] if unit == "bench" else [str(ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run([sys.executable, "-c", "; ".join(f"import {n}" for n in names)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
