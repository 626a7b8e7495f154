"""Build the DPF test plugin (tests/fixtures/dpf_fixture) into VST3 bundles with g++.

Needs Debian's ``dpf-source`` (/usr/share/dpf) and g++; about 5 s per bundle. Bundles are cached
per source hash under the pytest cache folder, so later runs reuse them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

DPF = Path("/usr/share/dpf")
SOURCE = Path(__file__).parent / "fixtures" / "dpf_fixture"


def missing_tools() -> str | None:
    """Why the fixture cannot be built here, or None."""
    if not (DPF / "distrho" / "DistrhoPluginMain.cpp").exists():
        return "dpf-source is not installed (apt install dpf-source; .ci/setup.sh does this)"
    if shutil.which("g++") is None:
        return "g++ is not installed"
    return None


def build(out_dir: Path, channels: int = 2) -> Path:
    """The fixture bundle for ``channels`` (1: a mono-only plugin), built into ``out_dir``."""
    name = "MixbridgeFixture" if channels == 2 else "MixbridgeFixtureMono"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(SOURCE.iterdir()))).hexdigest()[:12]
    bundle = out_dir / digest / f"{name}.vst3"
    binary = bundle / "Contents" / "x86_64-linux" / f"{name}.so"
    if binary.exists():
        return bundle
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["g++", "-std=gnu++11", "-O1", "-shared", "-fPIC", "-fvisibility=hidden",
         "-DDISTRHO_PLUGIN_TARGET_VST3", f"-DMIXBRIDGE_FIXTURE_CHANNELS={channels}",
         f'-DMIXBRIDGE_FIXTURE_NAME="{name}"', f"-I{SOURCE}", f"-I{DPF / 'distrho'}",
         str(SOURCE / "FixturePlugin.cpp"), str(DPF / "distrho" / "DistrhoPluginMain.cpp"),
         f"-Wl,--version-script={DPF / 'utils' / 'symbols' / 'vst3.version'}",
         "-o", str(binary), "-ldl", "-lpthread"],
        check=True, capture_output=True)
    return bundle
