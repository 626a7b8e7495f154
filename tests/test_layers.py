"""Imports point one way: assistant -> models -> effects -> analysis (ARCHITECTURE.md), for every
import statement of every module, in-function imports included; analysis imports nothing
else of ours; and no two of our modules import each other, however indirectly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("analysis", "effects", "models", "assistant")  # lowest first


def _modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; ``from a.b import c`` counts as ``a.b``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in ``path``."""
    return [(line, module.split(".")[0]) for line, module in _modules(path)]


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_down_the_layers(package):
    rank = LAYERS.index(package)
    upward = [f"{path.relative_to(ROOT)}:{line} imports {target}"
              for path in sorted((ROOT / package).rglob("*.py"))
              for line, target in _imports(path)
              if target in LAYERS and LAYERS.index(target) > rank]
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from assistant.master import master_file\n")
    assert _imports(bad) == [(2, "assistant")]


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            graph[name] = {m for _, m in _modules(path) if m.split(".")[0] in LAYERS}
    cycles, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node):] + [node]))
            return
        if node in done or node not in graph:
            return
        for target in sorted(graph[node]):
            visit(target, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert cycles == []
