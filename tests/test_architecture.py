"""The architecture of docs/architecture.md, checked on the source: the import-linter contracts of
pyproject.toml, no import cycle anywhere, no HTTP objects below blueprints/, no module reaching into
another's private names, and commits only in the unit of work."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("blueprints", "cli", "services", "database", "brokers", "vocabulary")
TOP_MODULES = ("app", "config", "extensions")
BELOW_BLUEPRINTS = ("services", "database", "brokers", "vocabulary")
HTTP_NAMES = frozenset({"request", "g", "abort", "session", "redirect", "url_for", "flash", "make_response"})
# The unit of work commits; the log writer and the migration lock commit on connections of their own.
COMMITS_ALLOWED = frozenset({"database/unit.py", "database/writer.py", "services/runtime/bootstrap.py"})


def _sources() -> dict[str, pathlib.Path]:
    """Every project module by dotted name (packages by their __init__)."""
    found = {name: ROOT / f"{name}.py" for name in TOP_MODULES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


SOURCES = _sources()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in SOURCES.items()}


def _imported(module: str, tree: ast.AST) -> set[str]:
    """The project modules `module` imports, at any depth of its code (imports inside functions count)."""
    out: set[str] = set()
    package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in SOURCES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in SOURCES:
                    out.add(target)
                elif base in SOURCES:
                    out.add(base)
    out.discard(module)
    return out


def test_the_import_linter_contracts_hold():
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_cycle_anywhere():
    graph = {name: _imported(name, tree) for name, tree in TREES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize("layer", BELOW_BLUEPRINTS)
def test_no_http_objects_below_blueprints(layer):
    found = []
    for name, tree in TREES.items():
        if name.split(".")[0] != layer:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("flask", "flask_login"):
                bad = {a.name for a in node.names} & (HTTP_NAMES | {"current_user", "login_user", "logout_user"})
                found += [f"{name}: from {node.module} import {b}" for b in sorted(bad)]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "flask"
                  and node.attr in HTTP_NAMES):
                found.append(f"{name}: flask.{node.attr}")
    assert found == []


def test_no_module_reaches_into_another_modules_private_names():
    found = []
    for name, tree in TREES.items():
        aliases: dict[str, str] = {}  # local name -> project module
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in SOURCES:
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in SOURCES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                    elif node.module in SOURCES and alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{name}: from {node.module} import {alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != name):
                found.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    assert found == []


def test_only_the_unit_of_work_commits():
    found = []
    for name, path in SOURCES.items():
        rel = str(path.relative_to(ROOT))
        if rel in COMMITS_ALLOWED:
            continue
        for node in ast.walk(TREES[name]):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit"
                    and not node.args):
                found.append(f"{rel}:{node.lineno}")
    assert found == []


def test_ruff_finds_nothing():
    ruff = pathlib.Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
