"""Plugin maps: loading and checking ``presets/plugins/<name>.toml`` (see the package docstring),
and locating the plugin bundles they name."""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from mixbridge.analysis.errors import SettingsError
from mixbridge.effects.schema import LINEAR_STAGES, PARAM_INDEX, STAGES
from mixbridge.effects.vst3 import SYSTEM_DIRS, PluginError

log = logging.getLogger(__name__)

MAP_SCHEMA_VERSION = 1
LAYOUTS = ("stereo", "dual-mono")
FITS = ("none", "response", "graphic")


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
    resource: Traversable
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
    if fit not in FITS:
        raise SettingsError(f"insert {name!r}: fit {fit!r}; valid: {', '.join(FITS)}")
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
