"""Imports point one way: assistant -> models -> effects -> analysis (ARCHITECTURE.md), for every
import statement of every module, in-function imports included; analysis imports nothing
else of ours; no two of our modules import each other, however indirectly; and everything
of ours is imported under the one ``mixbridge`` namespace (never as a bare ``models`` or
``effects``, which a user's own package could shadow)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("analysis", "effects", "models", "assistant")  # lowest first
OURS = (*LAYERS, "presets")


def _modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; ``from a.b import c`` counts as ``a.b``, and
    ``mixbridge.`` is taken off (``mixbridge.models.net`` is ``models.net``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, module.removeprefix("mixbridge.")) for line, module in found]


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
    bad.write_text("def f():\n    from mixbridge.assistant.master import master_file\n")
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


def _bare(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path`` of one of our packages without the
    ``mixbridge.`` namespace."""
    bare = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        bare += [(node.lineno, n) for n in names if n.split(".")[0] in OURS]
    return bare


def test_everything_imports_through_the_mixbridge_namespace():
    files = [p for d in (*OURS, "tests", "bench", "examples") for p in sorted((ROOT / d).rglob("*.py"))]
    assert [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in files for line, name in _bare(p)] == []


def test_the_namespace_check_sees_a_bare_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("import models.net\nfrom mixbridge.models import net\nfrom effects import render\n")
    assert _bare(bad) == [(1, "models.net"), (3, "effects")]


def test_a_users_own_models_package_does_not_shadow_ours(tmp_path):
    """A project folder with its own ``models`` and ``effects`` packages (as many have):
    Mixbridge, imported and run from there, is still itself, and so is the user's code."""
    for name in ("models", "effects", "analysis"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"MINE = {name!r}\n")
    code = ("import models, effects, analysis, mixbridge, mixbridge.models.net\n"
            "from mixbridge import master_file, resolve_target\n"
            "assert models.MINE == 'models' and effects.MINE == 'effects' and analysis.MINE == 'analysis'\n"
            "assert resolve_target('spotify').lufs == -14.0\n"
            "assert mixbridge.models.net.__name__ == 'mixbridge.models.net'\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    cli = subprocess.run([sys.executable, "-m", "mixbridge.assistant.cli", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert "usage: mixbridge" in cli.stdout


def test_library_entry_points_take_one_options_object_and_keywords():
    """master_file, run_batch and master_stems share one options object (StemOptions adds the
    stem-set policy to MasterOptions); everything after the target and the options is keyword-only."""
    import dataclasses
    import inspect

    from mixbridge.assistant.batch import run_batch
    from mixbridge.assistant.master import master_file, suggest_file
    from mixbridge.assistant.options import MasterOptions
    from mixbridge.assistant.stems import StemOptions, master_stems

    assert issubclass(StemOptions, MasterOptions)
    assert {f.name for f in dataclasses.fields(StemOptions)} - {f.name for f in dataclasses.fields(MasterOptions)} \
        == {"pad", "corrections"}
    for entry, positional in ((master_file, 4), (run_batch, 4), (master_stems, 4), (suggest_file, 2)):
        params = list(inspect.signature(entry).parameters.values())
        assert all(p.kind == p.POSITIONAL_OR_KEYWORD for p in params[:positional]), entry.__name__
        assert all(p.kind == p.KEYWORD_ONLY for p in params[positional:]), entry.__name__
        if positional == 4:
            assert params[3].name == "options", entry.__name__


def test_the_public_api_resolves():
    import mixbridge

    assert mixbridge.__all__ and all(getattr(mixbridge, name) is not None for name in mixbridge.__all__)
    with pytest.raises(AttributeError):
        mixbridge.no_such_name  # noqa: B018


@pytest.mark.parametrize(("preset", "expected"), [(None, 1), ("2", 2)])
def test_openblas_keeps_one_thread_unless_the_user_says_otherwise(preset, expected):
    """Importing mixbridge before numpy keeps OpenBLAS to one thread (its spinning workers would
    take the cores Mixbridge's own threads use); a value the user set is kept."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    code = ("import mixbridge.analysis.analyze\n"
            "from threadpoolctl import threadpool_info\n"
            "print(max(p['num_threads'] for p in threadpool_info() if p['internal_api'] == 'openblas'))\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == min(expected, os.cpu_count() or 1)
