"""Plugin maps: how the stages of our chain land on a producer's VST3 plugins.

A map (``presets/plugins/<name>.toml``, versioned) lists *inserts* in chain order. Each names
a plugin bundle, the schema stages it carries, its channel layout, and per plugin parameter
where its value comes from:

- ``from = "<stage>.<param>"``: a schema parameter, converted ``same`` (identical units) or
  through a measured ``table`` of (schema value, plugin value) points, interpolated on the
  schema parameter's own scale (log for Hz, Q, ms, ratio);
- ``off``: the value that makes the parameter neutral when its stage is off;
- ``[insert.fixed]``: constants; ``skip``: host-side parameters (buffer size, meters) never set.

Two refinements use the plugin itself, so the match does not rest on a formula:

- ``fit = "response"`` (EQ inserts): each band's plugin values start from the map and are then
  fitted so the plugin's measured magnitude response (an impulse through the plugin) matches
  the built-in filter's, within 20 Hz–20 kHz.
- ``calibrate = "<plugin param>"`` (compressors): on an excerpt of the track, that parameter is
  shifted until the plugin's output loudness equals the built-in stage's. Detectors differ
  between compressors, so the same numbers do not mean the same gain reduction.

Stages no insert carries run on the built-in renderer, in their place in the chain; the plan
says which.
"""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.errors import SettingsError
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.effects.render import ChainRenderer
from mixbridge.effects.schema import EQ_STAGES, PARAM_INDEX, STAGE_LABELS, STAGES, ChainSettings, format_value
from mixbridge.effects.vst3 import SYSTEM_DIRS, HostedPlugin, PluginError

log = logging.getLogger(__name__)

MAP_SCHEMA_VERSION = 1
LAYOUTS = ("stereo", "dual-mono")
LINEAR_STAGES = frozenset({"trim", "highpass", *EQ_STAGES, "stereo"})
FIT_POINTS = 96  # log-spaced frequencies for the response fit
FIT_IMPULSE_FRAMES = 16384
CALIBRATION_TOLERANCE_LU = 0.02


@dataclass(frozen=True)
class ParamMap:
    param: str  # the plugin's parameter (pedalboard name)
    source: str  # schema parameter
    table: tuple[tuple[float, float], ...] = ()
    off: float | None = None

    def convert(self, value: float) -> float:
        if not self.table:
            return value
        spec = PARAM_INDEX[self.source]
        xs = np.array([t[0] for t in self.table])
        ys = np.array([t[1] for t in self.table])
        if spec.scale == "log":
            return float(np.interp(math.log(value), np.log(xs), ys))
        return float(np.interp(value, xs, ys))


@dataclass(frozen=True)
class Insert:
    name: str
    plugin: str  # bundle file name without .vst3
    stages: tuple[str, ...]
    layout: str = "stereo"
    params: tuple[ParamMap, ...] = ()
    fixed: Mapping[str, float] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    fit: str = "none"
    calibrate: str | None = None
    note: str = ""


@dataclass(frozen=True)
class LimiterMap:
    """The plugin that stands in for our finalizer in exported presets (never in renders: the
    finalizer's exact loudness and true-peak guarantees stay ours). It must add
    ``ceiling - threshold`` dB of gain before limiting at ``ceiling``, as maximizers do."""

    plugin: str
    ceiling: str  # plugin parameter: the output ceiling (dB)
    threshold: str  # plugin parameter: set to ceiling - gain
    margin_db: float = 0.5  # sample-peak limiters: this far under the true-peak ceiling
    fixed: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PluginMap:
    name: str
    description: str
    inserts: tuple[Insert, ...]
    source: str
    limiter: LimiterMap | None = None

    def insert_for(self, stage: str) -> Insert | None:
        return next((i for i in self.inserts if stage in i.stages), None)


# ---- loading ---------------------------------------------------------------------------------

def map_names() -> list[str]:
    folder = resources.files("mixbridge.presets").joinpath("plugins")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_map(name_or_path: str) -> PluginMap:
    """A shipped map by name (``zam``) or a map TOML file by path, checked against the schema.

    Raises
    ------
    SettingsError
        Unknown map, wrong ``schema_version``, unknown stage or schema parameter, a stage in two
        inserts, an insert spanning a nonlinear stage it does not carry, a bad layout or table.
    """
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        resource, source = path, str(path)
    elif name_or_path in map_names():
        resource = resources.files("mixbridge.presets").joinpath("plugins", f"{name_or_path}.toml")
        source = f"presets/plugins/{name_or_path}.toml"
    else:
        raise SettingsError(f"unknown plugin map {name_or_path!r}; valid: {', '.join(map_names())} "
                            "or a .toml file")
    try:
        data = tomllib.loads(resource.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read the plugin map ({exc})", source) from None
    if data.get("schema_version") != MAP_SCHEMA_VERSION:
        raise SettingsError(f"plugin map has schema_version {data.get('schema_version')!r}, "
                            f"expected {MAP_SCHEMA_VERSION}", source)
    try:
        inserts = tuple(_insert(entry) for entry in data.get("insert", []))
    except SettingsError as exc:
        raise SettingsError(exc.message, source) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"malformed insert ({type(exc).__name__}: {exc})", source) from None
    seen: dict[str, str] = {}
    for insert in inserts:
        for stage in insert.stages:
            if stage in seen:
                raise SettingsError(f"stage {stage!r} is in two inserts ({seen[stage]}, {insert.name})", source)
            seen[stage] = insert.name
    limiter = None
    if "limiter" in data:
        entry = data["limiter"]
        try:
            limiter = LimiterMap(str(entry["plugin"]), str(entry["ceiling"]), str(entry["threshold"]),
                                 float(entry.get("margin_db", 0.5)),
                                 {k: float(v) for k, v in entry.get("fixed", {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"malformed [limiter] ({type(exc).__name__}: {exc})", source) from None
    return PluginMap(str(data.get("name", path.stem)), str(data.get("description", "")), inserts, source,
                     limiter)


def _insert(entry: Mapping) -> Insert:
    name = str(entry.get("name") or entry["plugin"])
    stages = tuple(entry["stages"])
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SettingsError(f"insert {name!r}: unknown stage(s) {', '.join(unknown)}; valid: {', '.join(STAGES)}")
    span = STAGES[min(STAGES.index(s) for s in stages): max(STAGES.index(s) for s in stages) + 1]
    straddled = [s for s in span if s not in stages and s not in LINEAR_STAGES]
    if straddled:
        raise SettingsError(f"insert {name!r} spans the {', '.join(straddled)} stage it does not carry")
    layout = entry.get("layout", "stereo")
    if layout not in LAYOUTS:
        raise SettingsError(f"insert {name!r}: layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    params = []
    for param, spec in entry.get("params", {}).items():
        source = spec["from"]
        if source not in PARAM_INDEX:
            raise SettingsError(f"insert {name!r}: {param} comes from unknown parameter {source!r}")
        if source.split(".")[0] not in stages:
            raise SettingsError(f"insert {name!r}: {param} comes from {source}, whose stage it does not carry")
        table = tuple((float(a), float(b)) for a, b in spec.get("table", ()))
        if table and any(b[0] <= a[0] for a, b in zip(table, table[1:])):
            raise SettingsError(f"insert {name!r}: the table for {param} must rise in its first column")
        off = spec.get("off")
        params.append(ParamMap(param, source, table, None if off is None else float(off)))
    fit = entry.get("fit", "none")
    if fit not in ("none", "response"):
        raise SettingsError(f"insert {name!r}: fit {fit!r}; valid: none, response")
    return Insert(name=name, plugin=str(entry["plugin"]), stages=stages, layout=layout, params=tuple(params),
                  fixed={k: float(v) for k, v in entry.get("fixed", {}).items()},
                  skip=tuple(entry.get("skip", ())), fit=fit, calibrate=entry.get("calibrate"),
                  note=str(entry.get("note", "")))


def locate(plugin: str, dirs: Iterable[str | Path] = ()) -> Path:
    """The bundle ``<plugin>.vst3`` in ``dirs`` or the standard VST3 folders."""
    folders = [Path(d) for d in dirs] + list(SYSTEM_DIRS)
    for folder in folders:
        candidate = folder / f"{plugin}.vst3"
        if candidate.exists():
            return candidate
    raise PluginError(f"plugin {plugin}.vst3 not found in {', '.join(str(f) for f in folders)} "
                      "(for the ZAM map: apt install zam-plugins)")


# ---- binding a map to loaded plugins ---------------------------------------------------------

class BoundInsert:
    """An insert with its plugin loaded and every mapped parameter checked to exist."""

    def __init__(self, insert: Insert, dirs: Iterable[str | Path] = ()):
        self.insert = insert
        self.plugin = HostedPlugin(locate(insert.plugin, dirs), dual_mono=insert.layout == "dual-mono")
        for name in [m.param for m in insert.params] + list(insert.fixed) + list(insert.skip):
            self.plugin.param(name)  # raises with the list of valid names
        if insert.calibrate:
            self.plugin.param(insert.calibrate)
        self.values: dict[str, float] = {}
        self.notes: list[str] = []

    def direct_values(self, settings: ChainSettings) -> dict[str, float]:
        """Values from the map alone (conversion, ``off`` values, constants), clipped to range."""
        values = dict(self.insert.fixed)
        for m in self.insert.params:
            stage = m.source.split(".")[0]
            if not settings.is_on(stage) or (stage in EQ_STAGES and settings[f"{stage}.gain_db"] == 0.0):
                if m.off is not None:
                    values[m.param] = m.off
                    continue
            values[m.param] = self._clip(m.param, m.convert(settings[m.source]), m.source)
        return values

    def _clip(self, name: str, value: float, source: str = "") -> float:
        p = self.plugin.param(name)
        lo, hi = sorted((float(p.min_value), float(p.max_value)))
        if value < lo or value > hi:
            clipped = min(max(value, lo), hi)
            self.notes.append(f"{source or name} {value:g} is outside {self.plugin.name}'s {name} range "
                              f"[{lo:g}, {hi:g}]; set to {clipped:g}")
            return clipped
        return value

    def configure(self, settings: ChainSettings, sample_rate: int, excerpt: np.ndarray | None = None,
                  builtin_input: np.ndarray | None = None) -> dict[str, float]:
        """Choose and set this insert's values (fit / calibration included); returns them."""
        self.notes = []
        values = self.direct_values(settings)
        self.plugin.set_values(values)
        if self.insert.fit == "response":
            values.update(self._fit_response(settings, sample_rate, values))
        if self.insert.calibrate and excerpt is not None:
            values.update(self._calibrate(settings, sample_rate, excerpt))
        self.values = self.plugin.set_values(values)
        return self.values

    # ---- response fit (EQ) ----
    def _fit_response(self, settings: ChainSettings, sample_rate: int, values: dict[str, float]) -> dict[str, float]:
        from scipy.optimize import minimize

        freqs = np.geomspace(20.0, min(20000.0, 0.45 * sample_rate), FIT_POINTS)
        bins = np.round(freqs * FIT_IMPULSE_FRAMES / sample_rate).astype(int)
        impulse = np.zeros((1, FIT_IMPULSE_FRAMES), np.float32)
        impulse[0, 0] = 1.0
        probe = np.repeat(impulse, self.plugin.channels, axis=0)  # one side of a dual-mono pair is enough

        def plugin_db() -> np.ndarray:
            y = self.plugin.process(probe, sample_rate, reset=True)[0]
            return 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(y.astype(np.float64)))[bins], 1e-9))

        fitted: dict[str, float] = {}
        neutral = {m.param: m.off for m in self.insert.params if m.off is not None}
        for stage in self.insert.stages:
            if stage not in EQ_STAGES or not settings.is_on(stage) or settings[f"{stage}.gain_db"] == 0.0:
                continue
            free = [m for m in self.insert.params if m.source.split(".")[0] == stage]
            others = {k: v for k, v in neutral.items() if k not in {m.param for m in free}}
            self.plugin.set_values(others)
            only = settings.only((stage,))
            y = ChainRenderer(only, sample_rate).process(impulse)[0]
            want = 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(y.astype(np.float64)))[bins], 1e-9))
            params = [self.plugin.param(m.param) for m in free]
            start = np.array([float(p.raw_value) for p in params])

            def error(raw: np.ndarray, params=params, want=want) -> float:
                for p, r in zip(params, raw):
                    p.raw_value = float(min(max(r, 0.0), 1.0))
                return float(np.mean((plugin_db() - want) ** 2))

            before = error(start)
            result = minimize(error, start, method="Nelder-Mead",
                              options={"xatol": 1e-6, "fatol": 1e-6, "maxfev": 400,
                                       "initial_simplex": _simplex(start, 0.02)})
            best = result.x if result.fun < before else start
            error(best)
            for m in free:
                fitted[m.param] = self.plugin.value(m.param)
            log.info("%s: %s fitted, rms response error %.3f -> %.3f dB", self.plugin.name, stage,
                     math.sqrt(before), math.sqrt(min(result.fun, before)))
        self.plugin.set_values(values | fitted)
        return fitted

    # ---- loudness calibration (compressor) ----
    def _calibrate(self, settings: ChainSettings, sample_rate: int, excerpt: np.ndarray) -> dict[str, float]:
        """Shift the calibrated parameter until the plugin's output loudness on ``excerpt``
        equals the built-in stage's (secant steps, then bisection; loudness is monotone in it)."""
        name = self.insert.calibrate
        # the plugin runs fully wet here: compare with the built-in stage fully wet too
        only = settings.replace({"compressor.amount_percent": 100.0}).only(self.insert.stages)
        want = measure_loudness(ChainRenderer(only, sample_rate).process(excerpt), sample_rate).integrated_lufs
        if not math.isfinite(want):
            return {}
        p = self.plugin.param(name)
        lo, hi = sorted((float(p.min_value), float(p.max_value)))
        base = self.plugin.value(name)

        def loudness(value: float) -> float:
            self.plugin.set_values({name: value})
            out = self.plugin.process(excerpt, sample_rate, reset=True)
            return measure_loudness(out, sample_rate).integrated_lufs - want

        a, ea = base, loudness(base)
        if abs(ea) <= CALIBRATION_TOLERANCE_LU:
            return {name: base}
        # loudness rises with the parameter (threshold): bracket, then bisect
        step = 1.0 if ea < 0 else -1.0
        b, eb = a, ea
        while (eb < 0) == (ea < 0) and lo <= b + step <= hi:
            a, ea = b, eb
            b = b + step
            eb = loudness(b)
            step *= 2.0
        if (eb < 0) == (ea < 0):
            self.notes.append(f"{name} could not be calibrated inside [{lo:g}, {hi:g}]")
            return {name: b}
        for _ in range(24):
            mid = 0.5 * (a + b)
            em = loudness(mid)
            if abs(em) <= CALIBRATION_TOLERANCE_LU:
                a = b = mid
                break
            a, ea, b, eb = (mid, em, b, eb) if (em < 0) == (ea < 0) else (a, ea, mid, em)
        chosen = 0.5 * (a + b)
        self.notes.append(f"{name} calibrated {chosen - base:+.2f} (from {base:g} to {chosen:.2f}) so the "
                          "plugin's gain reduction on this track matches the built-in stage")
        return {name: chosen}


def _simplex(start: np.ndarray, size: float) -> np.ndarray:
    simplex = [start]
    for i in range(start.size):
        point = start.copy()
        point[i] = point[i] + size if point[i] + size <= 1.0 else point[i] - size
        simplex.append(point)
    return np.array(simplex)


# ---- the chain through plugins ---------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One step of the chain: a bound plugin insert, or a stage on the built-in renderer."""

    stages: tuple[str, ...]
    insert: BoundInsert | None = None


def plan_steps(settings: ChainSettings, plugin_map: PluginMap, dirs: Iterable[str | Path] = ()) -> list[Step]:
    """The chain in order: an insert for each mapped group of active stages, built-ins for the rest.

    An insert is loaded only when one of its stages is active.
    """
    active = [s for s in STAGES if settings.is_on(s)]
    steps: list[Step] = []
    placed: set[str] = set()
    for stage in active:
        insert = plugin_map.insert_for(stage)
        if insert is None:
            steps.append(Step((stage,)))
        elif insert.name not in placed:
            placed.add(insert.name)
            steps.append(Step(tuple(s for s in insert.stages if s in active), BoundInsert(insert, dirs)))
    return steps


class PluginChainRenderer:
    """Like :class:`effects.render.ChainRenderer` (consecutive blocks in, blocks out), with the
    mapped stages running in VST3 plugins.

    ``excerpt`` (``(channels, n)`` of the input, e.g. 30 s) drives the compressor calibration;
    each insert is calibrated on what reaches it in the plugin chain.
    """

    def __init__(self, settings: ChainSettings, sample_rate: int, plugin_map: PluginMap,
                 excerpt: np.ndarray | None = None, dirs: Sequence[str | Path] = ()):
        self.sample_rate = sample_rate
        self.plugin_map = plugin_map
        self.dirs = tuple(dirs)
        self.steps = plan_steps(settings, plugin_map, dirs)
        self._settings = settings
        signal = None if excerpt is None else np.ascontiguousarray(excerpt, dtype=np.float32)
        for step in self.steps:
            if step.insert is None:
                if signal is not None:
                    signal = self._builtin(step).process(signal)
                continue
            bound = step.insert
            bound.configure(settings, sample_rate, signal)
            latency = bound.plugin.latency_samples()
            if latency:
                raise PluginError(f"{bound.plugin.name} reports {latency} samples of latency; rendering "
                                  "through plugins with latency is not supported", bound.plugin.path)
            if signal is not None:
                signal = self._blend(step, signal, bound.plugin.process(signal, sample_rate, reset=True))
        self.reset()

    def _builtin(self, step: Step) -> ChainRenderer:
        return ChainRenderer(self._settings.only(step.stages), self.sample_rate)

    def reset(self) -> None:
        """Start again from silence: the next block is the start of a new signal."""
        self._builtins = {id(step): self._builtin(step) for step in self.steps if step.insert is None}
        self._started = False

    def _run(self, step: Step, block: np.ndarray) -> np.ndarray:
        if step.insert is None:
            return self._builtins[id(step)].process(block)
        return self._blend(step, block, step.insert.plugin.process(block, self.sample_rate, reset=not self._started))

    def _blend(self, step: Step, dry: np.ndarray, wet: np.ndarray) -> np.ndarray:
        """Parallel compression: the compressor's "amount" of wet, the rest dry (as the built-in)."""
        amount = self._settings["compressor.amount_percent"] / 100.0 if "compressor" in step.stages else 1.0
        if amount >= 1.0:
            return wet
        return (amount * wet + (1.0 - amount) * dry).astype(np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """The next ``(channels, n)`` block of output (float32) for the next block of input."""
        out = np.ascontiguousarray(block, dtype=np.float32)
        for step in self.steps:
            out = self._run(step, out)
        self._started = True
        return out

    def describe(self) -> list[str]:
        """One line per step: plugin and the values set, or 'built-in'."""
        lines = []
        for step in self.steps:
            labels = ", ".join(STAGE_LABELS[s] for s in step.stages)
            if step.insert is None:
                lines.append(f"{labels}: built-in (no plugin mapped)")
                continue
            values = ", ".join(f"{k} {v:g}" for k, v in step.insert.values.items())
            lines.append(f"{labels}: {step.insert.plugin.name} ({values})")
            lines += [f"  note: {n}" for n in step.insert.notes]
        return lines


# ---- preset export ---------------------------------------------------------------------------

def export_presets(renderer: PluginChainRenderer, settings: ChainSettings, out_dir: str | Path,
                   sample_rate: int, gain_db: float | None = None, ceiling_dbtp: float | None = None,
                   target_text: str = "") -> list[Path]:
    """One ``.vstpreset`` per plugin insert of a configured renderer, plus ``INSERTS.txt``
    listing which file goes on which insert, in order (built-in stages described in words).

    With the map's ``[limiter]`` and ``gain_db`` / ``ceiling_dbtp`` (the finalizer's gain, as
    estimated by the caller, and the delivery ceiling), a last preset for that limiter."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, lines = [], ["Mixbridge suggested chain: load these on the track's inserts, top to bottom.", ""]
    for number, step in enumerate(renderer.steps, 1):
        labels = ", ".join(STAGE_LABELS[s] for s in step.stages)
        if step.insert is None:
            text = "; ".join(f"{PARAM_INDEX[n].label} {format_value(PARAM_INDEX[n], settings[n])}"
                             for s in step.stages for n in PARAM_INDEX if n.startswith(s + "."))
            lines.append(f"{number}. {labels}: no plugin mapped; set by hand or use your own: {text}")
            continue
        bound = step.insert
        path = out_dir / f"{number:02d}-{bound.insert.plugin}.vstpreset"
        bound.plugin.save_preset(path, sample_rate)
        written.append(path)
        lines.append(f"{number}. {path.name} -> {bound.plugin.name} ({labels})")
        if bound.insert.layout == "dual-mono":
            lines.append("   mono plugin: on a stereo track the DAW runs it dual-mono (same preset on both sides)")
        if "compressor" in step.stages and settings["compressor.amount_percent"] < 100.0:
            lines.append(f"   parallel compression: blend {settings['compressor.amount_percent']:.0f} % "
                         "compressed with the dry signal (insert dry/wet, or a parallel bus)")
        if bound.insert.note:
            lines.append(f"   {bound.insert.note}")
        lines += [f"   note: {n}" for n in bound.notes]
    limiter = renderer.plugin_map.limiter
    if limiter is not None and gain_db is not None and ceiling_dbtp is not None:
        number = len(renderer.steps) + 1
        path, text = _limiter_preset(limiter, renderer, gain_db, ceiling_dbtp,
                                     out_dir / f"{number:02d}-{limiter.plugin}.vstpreset", sample_rate)
        written.append(path)
        lines += [f"{number}. {path.name} -> {limiter.plugin} (limiter, last): {text}"
                  + (f", aiming at {target_text}" if target_text else ""),
                  "   the gain is estimated from the track's loudest 30 s; check the meter. Mixbridge's own "
                  "finalizer (mixbridge master) lands on the target exactly, under the true-peak ceiling."]
    else:
        lines += ["", "After the chain: Mixbridge's finalizer (gain to the loudness target and a true-peak "
                  "limiter) is not part of these presets."]
    written.append(write_text(out_dir / "INSERTS.txt", "\n".join(lines) + "\n"))
    return written


def _limiter_preset(limiter: LimiterMap, renderer: PluginChainRenderer, gain_db: float, ceiling_dbtp: float,
                    path: Path, sample_rate: int) -> tuple[Path, str]:
    plugin = HostedPlugin(locate(limiter.plugin, renderer.dirs))
    ceiling = ceiling_dbtp - limiter.margin_db
    threshold_param = plugin.param(limiter.threshold)
    lo, hi = sorted((float(threshold_param.min_value), float(threshold_param.max_value)))
    threshold = min(max(ceiling - gain_db, lo), hi)
    plugin.set_values(dict(limiter.fixed) | {limiter.ceiling: ceiling, limiter.threshold: threshold})
    plugin.save_preset(path, sample_rate)
    text = (f"{limiter.ceiling} {ceiling:.1f} dB (sample peak, {limiter.margin_db:g} dB under the "
            f"{ceiling_dbtp:.1f} dBTP ceiling), {limiter.threshold} {threshold:.2f} dB ({ceiling - threshold:+.2f} dB "
            "of gain into the limiter)")
    if ceiling - threshold < gain_db - 1e-6:
        text += f"; the plugin's range stops it {gain_db - (ceiling - threshold):.1f} dB short of the target"
    return path, text
