"""Mixbridge: analyze a mix, judge it against a target, master it or suggest an effect chain.

The repository's folders are installed as one package, ``mixbridge`` (pyproject's
``package-dir``): ``mixbridge.analysis`` (the analyzer, the base layer), ``mixbridge.effects``,
``mixbridge.models``, ``mixbridge.assistant`` and ``mixbridge.presets``. A user's own
``models`` or ``effects`` package can never shadow ours.

The public API is re-exported here, imported on first use (so ``import mixbridge`` and
``mixbridge --help`` stay fast)::

    from mixbridge import analyze_file, master_file, resolve_target
    report = master_file("mix.wav", "master.wav", resolve_target("spotify"))
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Mixbridge spreads its own work over the cores (the input's analysis beside the reference's, the
# meters beside the render); OpenBLAS's worker threads, which spin while they wait for the next
# product, would take those cores from it. A 3-minute master measured on 2 cores: 6.1 s of CPU
# and 4.0 s wall with them, 3.9 s and 3.4 s without. Set before numpy loads OpenBLAS (it reads the
# variable once); a value the user set is kept, and an application that imported numpy first
# keeps its own pool.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# public name -> the module that defines it
_API = {
    "Audio": "mixbridge.analysis.audio",
    "load": "mixbridge.analysis.audio",
    "Features": "mixbridge.analysis.features",
    "analyze": "mixbridge.analysis.analyze",
    "analyze_file": "mixbridge.analysis.analyze",
    "MixbridgeError": "mixbridge.analysis.errors",
    "ChainSettings": "mixbridge.effects.schema",
    "render": "mixbridge.effects.render",
    "Target": "mixbridge.assistant.targets",
    "Profile": "mixbridge.assistant.targets",
    "load_profile": "mixbridge.assistant.targets",
    "JudgeOptions": "mixbridge.assistant.judge",
    "Amounts": "mixbridge.assistant.judge",
    "resolve_target": "mixbridge.assistant.master",
    "master_file": "mixbridge.assistant.master",
    "suggest_file": "mixbridge.assistant.master",
    "suggest_settings": "mixbridge.assistant.decide",
    "MasterReport": "mixbridge.assistant.master",
    "run_batch": "mixbridge.assistant.batch",
    "MasterOptions": "mixbridge.assistant.options",
    "master_stems": "mixbridge.assistant.stems",
    "StemOptions": "mixbridge.assistant.stems",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mixbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
