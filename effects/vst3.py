"""VST3 hosting, isolated here: find and scan plugins, load one, set parameters exactly,
process audio (dual-mono for mono-only plugins) and read or write ``.vstpreset`` files.

pedalboard hosts the plugins. Three of its behaviours shape this module:

- Setting a parameter by name snaps it to a 1000-step grid. We set the normalised
  ``raw_value`` instead and read the plugin's own display value back, searching the
  normalised value until the plugin reports the value we asked for.
- A VST3 plugin's saved state only follows its parameters after it has processed audio, so
  :meth:`HostedPlugin.preset_bytes` processes a short block of silence first.
- Its error for a wrong or damaged preset is generic. :func:`read_preset_header` checks the
  file first, so the error can name the class-ID mismatch or the truncation.

Scanning loads each bundle in a child process. A plugin that crashes or hangs then costs
only that plugin. Results are cached per bundle (path, size and modification time of its
files) in ``<cache>/vst3-scan.json``. Slow loaders such as ZamVerb (minutes) pay once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from mixbridge.analysis.atomic import atomic_path, cache_root, write_text
from mixbridge.analysis.errors import InputNotFoundError, InvalidAudioError, SettingsError, UnreadableAudioError
from mixbridge.analysis.progress import Progress

log = logging.getLogger(__name__)

SYSTEM_DIRS = (Path.home() / ".vst3", Path("/usr/lib/vst3"), Path("/usr/local/lib/vst3"))
SCAN_CACHE = "vst3-scan.json"
SCAN_CACHE_VERSION = 1
SCAN_TIMEOUT_S = 900.0  # ZamVerb needs about 150 s on one core; a hung plugin is given up after this
SETTLE_FRAMES = 512
VALUE_TOLERANCE = 2e-6  # relative to the parameter's range (float32 normalised values): "exactly as asked"
PRESET_MAGIC = b"VST3"
PRESET_HEADER_BYTES = 48  # magic, version (int32), class ID (32 ASCII hex), chunk-list offset (int64)


class PluginError(SettingsError):
    """A plugin cannot be found, loaded or used as asked (exit code 7, like other settings)."""

    code = "plugin"


@dataclass(frozen=True)
class ParamInfo:
    """One parameter as the plugin reports it; ``name`` is pedalboard's Python name."""

    name: str
    label: str
    unit: str
    min_value: float
    max_value: float
    value: float  # at load: the plugin's default
    steps: int | None  # discrete parameters (booleans have 2)


@dataclass(frozen=True)
class PluginInfo:
    path: str
    name: str
    vendor: str
    category: str
    class_id: str
    channels: int  # largest main-bus channel count it runs at (1: mono-only)
    load_s: float
    params: tuple[ParamInfo, ...]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "PluginInfo":
        return cls(**{**data, "params": tuple(ParamInfo(**p) for p in data["params"])})


# ---- finding and scanning -------------------------------------------------------------------

def find_bundles(dirs: Iterable[str | Path] = (), system: bool = True) -> list[Path]:
    """``.vst3`` bundles in ``dirs`` (searched recursively) and, with ``system``, the standard folders.

    Raises
    ------
    InputNotFoundError
        A given folder or bundle does not exist.
    PluginError
        A given path exists but is neither a folder nor a ``.vst3`` bundle.
    """
    found: dict[Path, None] = {}
    for d in dirs:
        path = Path(d)
        if not path.exists():
            raise InputNotFoundError("does not exist", path)
        if path.suffix == ".vst3":
            found[path.resolve()] = None
        elif path.is_dir():
            found.update((p.resolve(), None) for p in sorted(path.rglob("*.vst3")) if p.is_dir() or p.is_file())
        else:
            raise PluginError("is not a VST3 bundle (.vst3) or a folder of them", path)
    if system:
        for d in SYSTEM_DIRS:
            if d.is_dir():
                found.update((p.resolve(), None) for p in sorted(d.glob("*.vst3")))
    return list(found)


def _bundle_key(path: Path) -> list:
    """What identifies a bundle's build: size and modification time of every file in it."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [[str(p.relative_to(path) if p != path else p.name), p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def scan(dirs: Iterable[str | Path] = (), system: bool = True, use_cache: bool = True, jobs: int = 2,
         timeout_s: float = SCAN_TIMEOUT_S,
         progress: Progress | None = None) -> tuple[list[PluginInfo], dict[str, str]]:
    """Describe every bundle found: (plugins, {bundle path: error} for those that failed).

    Each uncached bundle is loaded in a child process (``jobs`` at a time); results, failures
    included, are cached until the bundle's files change.
    """
    bundles = find_bundles(dirs, system)
    cache_path = cache_root() / SCAN_CACHE
    cache = _read_cache(cache_path) if use_cache else {}
    todo = [b for b in bundles if cache.get(str(b), {}).get("key") != _bundle_key(b)]
    if todo and progress:
        progress(f"loading {len(todo)} plugin bundle(s) ({len(bundles) - len(todo)} cached)")

    def describe_child(bundle: Path) -> tuple[Path, dict]:
        entry: dict[str, object] = {"key": _bundle_key(bundle)}
        try:
            entry["info"] = _describe_in_child(bundle, timeout_s).to_dict()
        except PluginError as exc:
            entry["error"] = exc.message
        return bundle, entry

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for k, (bundle, entry) in enumerate(pool.map(describe_child, todo), 1):
            cache[str(bundle)] = entry
            if progress:
                progress(f"plugins: {bundle.name} " + ("ok" if "info" in entry else str(entry["error"])), k, len(todo))
    if todo and use_cache:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_text(cache_path, json.dumps({"version": SCAN_CACHE_VERSION, "bundles": cache}, indent=1) + "\n")
    plugins = [PluginInfo.from_dict(cache[str(b)]["info"]) for b in bundles if "info" in cache[str(b)]]
    failures = {str(b): cache[str(b)]["error"] for b in bundles if "error" in cache[str(b)]}
    return plugins, failures


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("bundles", {}) if data.get("version") == SCAN_CACHE_VERSION else {}


def _describe_in_child(bundle: Path, timeout_s: float) -> PluginInfo:
    try:
        done = subprocess.run([sys.executable, "-m", "mixbridge.effects.vst3", str(bundle)], capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, "PYTHONPATH": _package_root()})
    except subprocess.TimeoutExpired:
        raise PluginError(f"did not load within {timeout_s:.0f} s", bundle) from None
    lines = done.stdout.strip().splitlines()
    if done.returncode < 0:
        raise PluginError(f"the plugin crashed the loader (signal {-done.returncode})", bundle)
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise PluginError(f"the loader failed ({tail})", bundle) from None
    if "error" in result:
        raise PluginError(result["error"], bundle)
    return PluginInfo.from_dict(result)


def _package_root() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def describe(path: str | Path) -> PluginInfo:
    """Load ``path`` in this process and describe it (what :func:`scan` runs in a child)."""
    import time

    start = time.perf_counter()
    plugin = HostedPlugin(path)
    return plugin.describe(time.perf_counter() - start)


# ---- one hosted plugin ----------------------------------------------------------------------

def _load(path: Path):
    import pedalboard

    try:
        return pedalboard.load_plugin(str(path))
    except ImportError as exc:  # pedalboard's message for "not a plugin / cannot be loaded"
        raise PluginError(f"failed to load as a VST3 plugin ({str(exc).splitlines()[0]})", path) from None
    except (RuntimeError, ValueError) as exc:
        raise PluginError(f"failed to load ({str(exc).splitlines()[0]})", path) from None


class HostedPlugin:
    """One VST3 plugin, loaded from a bundle path.

    With ``dual_mono``, a mono-only plugin on stereo audio runs as two instances (one per
    channel) with identical parameters; without it, that case is an error.
    """

    def __init__(self, path: str | Path, dual_mono: bool = False):
        path = Path(path)
        if not path.exists():
            raise InputNotFoundError("plugin not found", path)
        if path.suffix != ".vst3":
            raise PluginError("is not a VST3 plugin (expected a .vst3 bundle)", path)
        self.path = path
        self.dual_mono = dual_mono
        self._instances = [_load(path)]
        plugin = self._instances[0]
        if not getattr(plugin, "is_effect", True) or getattr(plugin, "is_instrument", False):
            raise PluginError("is an instrument, not an effect", path)
        self.name = str(plugin.name)
        self.channels = 2 if self._accepts(2) else 1
        self._takes_mono = self.channels == 1 or self._accepts(1)
        self.class_id = read_preset_header(self._raw_preset(), path).class_id

    # ---- description ----
    @property
    def vendor(self) -> str:
        return str(getattr(self._instances[0], "manufacturer_name", ""))

    def _accepts(self, channels: int) -> bool:
        try:
            self._instances[0].process(np.zeros((channels, 32), np.float32), 44100.0, reset=True)
        except ValueError:
            return False
        return True

    @property
    def param_names(self) -> list[str]:
        return list(self._instances[0].parameters)

    def describe(self, load_s: float = float("nan")) -> PluginInfo:
        plugin = self._instances[0]
        params = []
        for name, p in plugin.parameters.items():
            steps = getattr(p, "num_steps", None)
            params.append(ParamInfo(
                name=name, label=str(p.name), unit=str(p.label or ""),
                min_value=_finite(p.min_value), max_value=_finite(p.max_value), value=self.value(name),
                steps=int(steps) if steps and steps < 2**31 - 1 else None))
        return PluginInfo(path=str(self.path), name=self.name, vendor=self.vendor,
                          category=str(getattr(plugin, "category", "")), class_id=self.class_id,
                          channels=self.channels, load_s=round(load_s, 3), params=tuple(params))

    def param(self, name: str):
        params = self._instances[0].parameters
        if name not in params:
            raise PluginError(f"has no parameter {name!r}; valid: {', '.join(params)}", self.path)
        return params[name]

    # ---- values ----
    def value(self, name: str) -> float:
        """The parameter's value in its own unit, as the plugin displays it."""
        p = self.param(name)
        text = str(p.string_value).strip()
        match = re.match(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text)
        if match:
            return float(match.group(0))
        lowered = text.lower()
        if lowered in ("on", "true", "yes"):
            return 1.0
        if lowered in ("off", "false", "no"):
            return 0.0
        lo, hi = _finite(p.min_value), _finite(p.max_value)  # a named value ("Zero"): its position
        return lo + float(p.raw_value) * (hi - lo) if hi != lo else float(p.raw_value)

    def raw_values(self) -> dict[str, float]:
        return {name: float(p.raw_value) for name, p in self._instances[0].parameters.items()}

    def set_values(self, values: Mapping[str, float]) -> dict[str, float]:
        """Set parameters to physical values exactly; returns the values the plugin reports.

        Each value is set through the normalised ``raw_value`` (never pedalboard's 1000-step
        by-name setter): first the linear guess, then a bisection on the normalised value
        until the plugin's readback is within :data:`VALUE_TOLERANCE` of its range.
        Discrete parameters take the nearest step.

        Raises
        ------
        PluginError
            An unknown parameter name (the message lists the valid ones), or a value outside
            the parameter's range.
        """
        actual = {}
        for name, target in values.items():
            p = self.param(name)
            lo, hi = _finite(p.min_value), _finite(p.max_value)
            if not (math.isfinite(target) and min(lo, hi) - 1e-9 <= target <= max(lo, hi) + 1e-9):
                raise PluginError(f"{name} = {target:g} is outside its range [{lo:g}, {hi:g}] {p.label or ''}",
                                  self.path)
            raw = self._solve_raw(name, float(target), lo, hi)
            for instance in self._instances[1:]:
                instance.parameters[name].raw_value = raw
            actual[name] = self.value(name)
        return actual

    def _solve_raw(self, name: str, target: float, lo: float, hi: float) -> float:
        p = self.param(name)
        span = (hi - lo) or 1.0
        tolerance = VALUE_TOLERANCE * abs(span)

        def set_and_read(raw: float) -> float:
            p.raw_value = min(max(raw, 0.0), 1.0)
            return self.value(name)

        raw = (target - lo) / span
        if abs(set_and_read(raw) - target) <= tolerance:
            return float(p.raw_value)
        a, b = 0.0, 1.0
        va, vb = set_and_read(a), set_and_read(b)
        if va > vb:  # a parameter whose value falls as the normalised value rises
            a, b, va, vb = b, a, vb, va
        best = (abs(va - target), a)
        for _ in range(40):
            mid = 0.5 * (a + b)
            vm = set_and_read(mid)
            best = min(best, (abs(vm - target), mid))
            if abs(vm - target) <= tolerance:
                break
            a, b = (mid, b) if vm < target else (a, mid)
        set_and_read(best[1])
        return float(p.raw_value)

    # ---- audio ----
    def process(self, samples: np.ndarray, sample_rate: int, reset: bool = True) -> np.ndarray:
        """``(channels, n)`` float32 through the plugin; same shape out. Mono audio into a
        stereo-only plugin is fed to both its inputs and its left output is kept.

        Raises
        ------
        InvalidAudioError
            Stereo audio into a mono-only plugin without ``dual_mono``.
        """
        x = np.ascontiguousarray(samples, dtype=np.float32)
        channels = x.shape[0]
        if channels == 1 and not self._takes_mono:  # a stereo-only plugin: mono in both sides, one side out
            out = self._instances[0].process(np.repeat(x, 2, axis=0), float(sample_rate), reset=reset)
            return np.asarray(out[:1], dtype=np.float32)
        if channels <= self.channels:
            return np.asarray(self._instances[0].process(x, float(sample_rate), reset=reset), dtype=np.float32)
        if not self.dual_mono:
            raise InvalidAudioError(f"{self.name} is mono-only and the audio is stereo; run it dual-mono "
                                    "(layout = \"dual-mono\" in the plugin map)", self.path)
        while len(self._instances) < channels:
            twin = _load(self.path)
            for name, value in self.raw_values().items():
                twin.parameters[name].raw_value = value
            self._instances.append(twin)
        return np.concatenate([
            np.asarray(inst.process(x[c:c + 1], float(sample_rate), reset=reset), dtype=np.float32)
            for c, inst in enumerate(self._instances[:channels])])

    def latency_samples(self) -> int:
        return int(getattr(self._instances[0], "reported_latency_samples", 0) or 0)

    # ---- presets ----
    def _raw_preset(self) -> bytes:
        return bytes(self._instances[0].preset_data)

    def preset_bytes(self, sample_rate: int = 48000) -> bytes:
        """The plugin's state as a ``.vstpreset``, after a block of silence (the state lags otherwise)."""
        self._instances[0].process(np.zeros((self.channels, SETTLE_FRAMES), np.float32), float(sample_rate),
                                   reset=False)
        return self._raw_preset()

    def save_preset(self, path: str | Path, sample_rate: int = 48000) -> Path:
        data = self.preset_bytes(sample_rate)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
        return Path(path)

    def load_preset(self, path: str | Path) -> None:
        """Load a ``.vstpreset`` into every instance, after checking it is whole and for this plugin.

        Raises
        ------
        InputNotFoundError, UnreadableAudioError
            Missing or unreadable file.
        PluginError
            Truncated or not a VST3 preset, or saved by another plugin (class-ID mismatch).
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputNotFoundError("preset not found", path) from None
        except OSError as exc:
            raise UnreadableAudioError(f"cannot read the preset ({exc.strerror})", path) from None
        header = read_preset_header(data, path)
        if header.class_id != self.class_id:
            raise PluginError(f"is a preset for another plugin (class ID {header.class_id}); "
                              f"{self.name} has class ID {self.class_id}", path)
        for instance in self._instances:
            try:
                instance.load_preset(str(path))
            except RuntimeError as exc:
                raise PluginError(f"{self.name} refused the preset ({exc})", path) from None


def _finite(value) -> float:
    value = float(value) if value is not None else float("nan")
    return value if math.isfinite(value) else 0.0


# ---- .vstpreset files -----------------------------------------------------------------------

@dataclass(frozen=True)
class PresetHeader:
    version: int
    class_id: str
    chunks: tuple[tuple[str, int, int], ...]  # (id, offset, size)


def read_preset_header(data: bytes, source: str | Path = "<preset>") -> PresetHeader:
    """Check a ``.vstpreset``'s structure (Steinberg VST3 SDK, "Preset format").

    Layout: ``'VST3'``, int32 version, 32 ASCII hex digits of the class ID, int64 offset of
    the chunk list; the list is ``'List'``, int32 count, then per chunk a 4-byte ID and int64
    offset and size. All integers little-endian. Every chunk must lie inside the file.
    """
    if len(data) < PRESET_HEADER_BYTES or data[:4] != PRESET_MAGIC:
        raise PluginError("is not a VST3 preset (no 'VST3' header)" if data[:4] != PRESET_MAGIC
                          else "is truncated (shorter than a preset header)", source)
    version, = struct.unpack_from("<i", data, 4)
    try:
        class_id = data[8:40].decode("ascii")
    except UnicodeDecodeError:
        raise PluginError("has a damaged class ID", source) from None
    list_offset, = struct.unpack_from("<q", data, 40)
    if not 0 < list_offset <= len(data) - 8 or data[list_offset:list_offset + 4] != b"List":
        raise PluginError("is truncated or damaged (its chunk list is missing)", source)
    count, = struct.unpack_from("<i", data, list_offset + 4)
    end = list_offset + 8 + 20 * count
    if count < 0 or end > len(data):
        raise PluginError("is truncated (its chunk list is cut short)", source)
    chunks = []
    for i in range(count):
        base = list_offset + 8 + 20 * i
        chunk_id = data[base:base + 4].decode("ascii", "replace")
        offset, size = struct.unpack_from("<qq", data, base + 4)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise PluginError(f"is truncated (chunk {chunk_id!r} runs past the end of the file)", source)
        chunks.append((chunk_id, offset, size))
    return PresetHeader(version, class_id, tuple(chunks))


def scan_table(plugins: Sequence[PluginInfo]) -> list[str]:
    """Readable lines for ``mixbridge plugins scan``: per plugin a heading, its path, and its
    parameters as a Markdown table (drawn as a table on a terminal)."""
    lines = []
    for info in plugins:
        layout = "mono-only" if info.channels == 1 else "stereo"
        lines += [f"{info.name} ({info.vendor}; {info.category}; {layout}; loaded in {info.load_s:.2f} s)",
                  f"  {info.path}"]
        if info.params:
            lines += ["| parameter | min | max | unit | steps | now |", "| --- | ---: | ---: | --- | ---: | ---: |"]
            lines += [f"| {p.name} | {p.min_value:g} | {p.max_value:g} | {p.unit} | {p.steps or ''} | {p.value:g} |"
                      for p in info.params]
        lines.append("")
    return lines


def _child_main(path: str) -> None:
    """``python -m mixbridge.effects.vst3 BUNDLE``: print the bundle's description (or error) as one JSON line.

    Exits with ``os._exit`` so a plugin that misbehaves while unloading cannot change the result.
    """
    try:
        result = describe(path).to_dict()
    except PluginError as exc:
        result = {"error": exc.message}
    except Exception as exc:  # any failure inside a foreign plugin is that plugin's error
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    _child_main(sys.argv[1])
