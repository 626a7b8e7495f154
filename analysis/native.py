"""scipy's compiled kernels, loaded by their files, without scipy's package imports.

Importing ``scipy.signal`` costs about 1.0 s on this machine and ``scipy.fft`` about 0.3 s
(scipy 1.17: their package imports pull in ``scipy.stats``, ``scipy.special`` and the
array-API layers), while the compiled extension modules Mixbridge calls (``sosfilt``'s loop,
pocketfft) load in milliseconds. :func:`scipy_extension` loads one such module by its file.
Those modules are private to scipy: each caller probes the kernel on a known answer and falls
back to scipy's public function (logged once) if the file is gone or behaves otherwise, so a
scipy release that moves them costs start-up time, never a result.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType

# One load at a time: a module being initialised can already sit in sys.modules, so a second
# thread (the input's analysis beside the reference's) would take it half-made.
_LOCK = threading.Lock()


def scipy_extension(name: str) -> ModuleType:
    """The compiled module ``name`` (e.g. ``"scipy.signal._sosfilt"``), loaded by its file, or
    the one already imported. Raises ``ImportError`` if it cannot be found or loaded."""
    with _LOCK:
        return _load(name)


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    scipy_spec = importlib.util.find_spec("scipy")
    if scipy_spec is None or not scipy_spec.submodule_search_locations:
        raise ImportError("scipy is not installed")
    parts = name.split(".")[1:]
    folder = Path(next(iter(scipy_spec.submodule_search_locations))).joinpath(*parts[:-1])
    paths = [folder / f"{parts[-1]}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise ImportError(f"no compiled module {name} under {folder}")
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
