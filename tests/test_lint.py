"""The library, its tests and its benchmarks are lint-clean (pyflakes, import order, bugbear) under
the repo's ruff config, and the library type-checks with mypy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    result = subprocess.run([ruff, "check", "__init__.py", "analysis", "assistant", "effects", "models", "tests", "bench"],
                            cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean(tmp_path):
    """mypy over the installed package's modules (``mixbridge.*``), with pyproject's config. The
    repository root *is* the ``mixbridge`` package (package-dir), so mypy sees it through a
    symlink named ``mixbridge``."""
    pytest.importorskip("mypy", reason="mypy is not installed (it comes with the dev extra)")
    (tmp_path / "mixbridge").symlink_to(ROOT, target_is_directory=True)
    packages = [a for p in ("analysis", "effects", "models", "assistant", "presets") for a in ("-p", f"mixbridge.{p}")]
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", str(ROOT / ".mypy_cache"), "-m", "mixbridge", *packages],
                            cwd=tmp_path, env={**os.environ, "MYPYPATH": str(tmp_path)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
