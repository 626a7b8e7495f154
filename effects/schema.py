"""The one parameter schema: every stage and parameter of the chain, with units and ranges.

``PARAMS`` drives everything that touches a setting: validation, the JSON preset, the
model's normalised outputs, the renderer, the VST3 maps and the CLI display. Nothing else
re-types a range. Parameter names are ``"<stage>.<param>"`` with the unit in the name.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.errors import SettingsError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 2 added the match EQ, 3 the polarity stage, 4 the expander (older chains read with them off)
# The match EQ's bands: the analyzer's third-octave centres, named by their nominal frequencies (ISO 266).
MATCH_EQ_NOMINAL_HZ = (20, 25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250,
                       1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000)
MATCH_EQ_PARAMS = tuple(f"match_eq.band_{str(f).replace('.', '_')}hz_db" for f in MATCH_EQ_NOMINAL_HZ)


@dataclass(frozen=True)
class ParamSpec:
    """One ranged parameter. ``scale`` is "lin" or "log" (log for Hz, ms, Q and ratio)."""

    name: str
    unit: str
    min: float
    max: float
    default: float
    scale: str = "lin"
    label: str = ""

    def normalise(self, value: float) -> float:
        """Physical value -> 0..1 on this parameter's scale."""
        if self.scale == "log":
            return (math.log(value) - math.log(self.min)) / (math.log(self.max) - math.log(self.min))
        return (value - self.min) / (self.max - self.min)

    def denormalise(self, unit_value: float) -> float:
        """0..1 -> physical value (clipped to the range)."""
        u = min(max(float(unit_value), 0.0), 1.0)
        if self.scale == "log":
            return math.exp(math.log(self.min) + u * (math.log(self.max) - math.log(self.min)))
        return self.min + u * (self.max - self.min)

    def check(self, value: float) -> float:
        value = float(value)
        if not math.isfinite(value) or not self.min <= value <= self.max:
            raise SettingsError(
                f"{self.name} = {value:g} {self.unit} is out of range "
                f"[{self.min:g}, {self.max:g}] {self.unit}"
            )
        return value


def _hz_label(hz: float) -> str:
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz:g} Hz"


def _p(name, unit, lo, hi, default, scale="lin", label=""):
    return ParamSpec(name, unit, lo, hi, default, scale, label)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the chain, in signal order: the facts every module derives from it."""

    name: str
    label: str  # as a producer reads it
    linear: bool  # a linear, time-invariant stage: its effect is one measured response (or a side gain)
    neutral: tuple[tuple[str, float], ...] = ()  # the stage does nothing while these parameters hold these values
    # the model's convention (its training data and outputs): the stage is on when this parameter is over this value
    switch: tuple[str, float] | None = None


STAGE_SPECS: tuple[StageSpec, ...] = (
    StageSpec("polarity", "polarity", True),  # on: the right channel's polarity inverted (no parameters)
    StageSpec("trim", "input trim", True, (("trim.gain_db", 0.0),)),
    StageSpec("highpass", "high-pass", True),
    *(StageSpec(name, label, True, ((f"{name}.gain_db", 0.0),)) for name, label in (
        ("low_shelf", "low shelf"), ("peak1", "EQ band 1"), ("peak2", "EQ band 2"), ("peak3", "EQ band 3"),
        ("peak4", "EQ band 4"), ("high_shelf", "high shelf"))),
    StageSpec("match_eq", "match EQ", True, tuple((name, 0.0) for name in MATCH_EQ_PARAMS)),
    StageSpec("expander", "upward expander", False, (("expander.ratio", 1.0),)),
    StageSpec("compressor", "compressor", False, switch=("compressor.ratio", 1.05)),
    StageSpec("reverb", "reverb", False, (("reverb.wet", 0.0),), switch=("reverb.wet", 0.005)),
    StageSpec("stereo", "stereo width", True, (("stereo.width_percent", 100.0),)),
)
STAGE_INDEX: Mapping[str, StageSpec] = MappingProxyType({st.name: st for st in STAGE_SPECS})
STAGES = tuple(st.name for st in STAGE_SPECS)
EQ_STAGES = ("low_shelf", "peak1", "peak2", "peak3", "peak4", "high_shelf")
LINEAR_STAGES = frozenset(st.name for st in STAGE_SPECS if st.linear)
STAGE_LABELS: Mapping[str, str] = MappingProxyType({st.name: st.label for st in STAGE_SPECS})

PARAMS: tuple[ParamSpec, ...] = (
    _p("trim.gain_db", "dB", -24.0, 24.0, 0.0, label="input trim"),
    _p("highpass.cutoff_hz", "Hz", 10.0, 300.0, 20.0, "log", "high-pass cutoff"),
    _p("low_shelf.freq_hz", "Hz", 30.0, 400.0, 100.0, "log", "low shelf frequency"),
    _p("low_shelf.gain_db", "dB", -12.0, 12.0, 0.0, label="low shelf gain"),
    _p("low_shelf.q", "", 0.3, 2.0, 0.707, "log", "low shelf Q"),
    _p("peak1.freq_hz", "Hz", 40.0, 500.0, 150.0, "log", "band 1 frequency"),
    _p("peak1.gain_db", "dB", -12.0, 12.0, 0.0, label="band 1 gain"),
    _p("peak1.q", "", 0.3, 8.0, 1.0, "log", "band 1 Q"),
    _p("peak2.freq_hz", "Hz", 150.0, 2000.0, 500.0, "log", "band 2 frequency"),
    _p("peak2.gain_db", "dB", -12.0, 12.0, 0.0, label="band 2 gain"),
    _p("peak2.q", "", 0.3, 8.0, 1.0, "log", "band 2 Q"),
    _p("peak3.freq_hz", "Hz", 500.0, 6000.0, 2000.0, "log", "band 3 frequency"),
    _p("peak3.gain_db", "dB", -12.0, 12.0, 0.0, label="band 3 gain"),
    _p("peak3.q", "", 0.3, 8.0, 1.0, "log", "band 3 Q"),
    _p("peak4.freq_hz", "Hz", 1500.0, 16000.0, 6000.0, "log", "band 4 frequency"),
    _p("peak4.gain_db", "dB", -12.0, 12.0, 0.0, label="band 4 gain"),
    _p("peak4.q", "", 0.3, 8.0, 1.0, "log", "band 4 Q"),
    _p("high_shelf.freq_hz", "Hz", 1500.0, 16000.0, 8000.0, "log", "high shelf frequency"),
    _p("high_shelf.gain_db", "dB", -12.0, 12.0, 0.0, label="high shelf gain"),
    _p("high_shelf.q", "", 0.3, 2.0, 0.707, "log", "high shelf Q"),
    *(_p(name, "dB", -12.0, 12.0, 0.0, label=f"match EQ {_hz_label(f)}")
      for name, f in zip(MATCH_EQ_PARAMS, MATCH_EQ_NOMINAL_HZ)),
    _p("expander.threshold_db", "dB", -60.0, 0.0, -20.0, label="expander threshold"),
    _p("expander.ratio", ":1", 1.0, 4.0, 1.0, "log", "expansion ratio"),
    _p("expander.attack_ms", "ms", 0.1, 100.0, 10.0, "log", "expander attack"),
    _p("expander.release_ms", "ms", 10.0, 2000.0, 200.0, "log", "expander release"),
    _p("expander.range_db", "dB", 0.0, 18.0, 6.0, label="expander range (largest gain)"),
    _p("compressor.threshold_db", "dB", -60.0, 0.0, -18.0, label="threshold"),
    _p("compressor.ratio", ":1", 1.0, 20.0, 2.0, "log", "ratio"),
    _p("compressor.attack_ms", "ms", 0.1, 100.0, 10.0, "log", "attack"),
    _p("compressor.release_ms", "ms", 10.0, 2000.0, 150.0, "log", "release"),
    _p("compressor.makeup_db", "dB", 0.0, 24.0, 0.0, label="makeup gain"),
    _p("compressor.amount_percent", "%", 0.0, 100.0, 100.0, label="parallel amount"),
    _p("reverb.room_size", "", 0.0, 1.0, 0.5, label="room size"),
    _p("reverb.damping", "", 0.0, 1.0, 0.5, label="damping"),
    _p("reverb.wet", "", 0.0, 1.0, 0.0, label="wet level (amount)"),
    _p("reverb.width", "", 0.0, 1.0, 1.0, label="reverb width"),
    _p("stereo.width_percent", "%", 0.0, 200.0, 100.0, label="stereo width (side gain)"),
)
PARAM_INDEX: Mapping[str, ParamSpec] = MappingProxyType({p.name: p for p in PARAMS})
# Stages a fresh chain has switched on: a neutral chain is an identity (all gains 0 dB).
DEFAULT_ENABLED = MappingProxyType({s: s not in ("polarity", "highpass", "match_eq", "expander", "compressor", "reverb")
                                    for s in STAGES})
# What a stage without parameters does when it is on, as a producer reads it.
SWITCH_TEXT: Mapping[str, str] = MappingProxyType({"polarity": "right channel inverted"})


def switched_on(stage: str, values: Mapping[str, float]) -> bool:
    """The model's convention for a stage with a ``switch`` (:class:`StageSpec`): on when the
    parameter is over the value (a compressor at ratio 1.0 and a reverb at wet 0 are off)."""
    switch = STAGE_INDEX[stage].switch
    if switch is None:
        raise ValueError(f"stage {stage!r} has no on/off convention")
    return values[switch[0]] > switch[1]


def stage_of(name: str) -> str:
    return name.split(".", 1)[0]


def stage_params(stage: str) -> tuple[ParamSpec, ...]:
    return tuple(p for p in PARAMS if stage_of(p.name) == stage)


@dataclass(frozen=True)
class ChainSettings:
    """The effect chain as data: a value for every parameter and an on/off per stage.

    Build with :meth:`create` (defaults for anything not given). Immutable: :meth:`replace`
    returns a new value. Every value is checked against its :class:`ParamSpec`.
    """

    values: Mapping[str, float]
    enabled: Mapping[str, bool] = field(default_factory=lambda: DEFAULT_ENABLED)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.values) - set(PARAM_INDEX))
        if unknown:
            raise SettingsError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(PARAM_INDEX)}")
        unknown = sorted(set(self.enabled) - set(STAGES))
        if unknown:
            raise SettingsError(f"unknown stage(s) {', '.join(unknown)}; valid: {', '.join(STAGES)}")
        values = {p.name: p.check(self.values.get(p.name, p.default)) for p in PARAMS}
        enabled = {s: bool(self.enabled.get(s, DEFAULT_ENABLED[s])) for s in STAGES}
        object.__setattr__(self, "values", MappingProxyType(values))
        object.__setattr__(self, "enabled", MappingProxyType(enabled))

    @classmethod
    def create(cls, values: Mapping[str, float] | None = None,
               enabled: Mapping[str, bool] | None = None) -> "ChainSettings":
        return cls(dict(values or {}), dict(enabled or {}))

    def __getitem__(self, name: str) -> float:
        if name not in PARAM_INDEX:
            raise SettingsError(f"unknown parameter {name!r}; valid: {', '.join(PARAM_INDEX)}")
        return self.values[name]

    def is_on(self, stage: str) -> bool:
        return self.enabled[stage]

    def active(self, stage: str) -> bool:
        """On, and not at its neutral value (an EQ band at 0 dB, the width at 100 %): it changes the sound."""
        neutral = STAGE_INDEX[stage].neutral
        return self.enabled[stage] and (not neutral or any(self.values[name] != value for name, value in neutral))

    @property
    def parallel_blend(self) -> float:
        """The compressor's wet share (0..1) in its parallel blend with the dry signal."""
        return self.values["compressor.amount_percent"] / 100.0

    def replace(self, values: Mapping[str, float] | None = None,
                enabled: Mapping[str, bool] | None = None) -> "ChainSettings":
        return ChainSettings({**self.values, **(values or {})}, {**self.enabled, **(enabled or {})})

    def only(self, stages: Sequence[str]) -> "ChainSettings":
        """These settings with every stage not in ``stages`` switched off (to render a part of the chain)."""
        return self.replace(enabled={s: self.enabled[s] and s in stages for s in STAGES})

    def to_dict(self) -> dict:
        stages = {}
        for stage in STAGES:
            entry: dict[str, bool | float] = {"enabled": self.enabled[stage]}
            for p in stage_params(stage):
                entry[p.name.split(".", 1)[1]] = self.values[p.name]
            stages[stage] = entry
        return {"schema_version": SCHEMA_VERSION, "stages": stages}

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "chain") -> "ChainSettings":
        version = data.get("schema_version") if isinstance(data, Mapping) else None
        if version not in (1, 2, 3, SCHEMA_VERSION) or isinstance(version, bool):
            raise SettingsError(f"chain schema_version is {version!r}; this Mixbridge reads 1 to {SCHEMA_VERSION}",
                                source)
        stages = data.get("stages")
        if not isinstance(stages, Mapping):
            raise SettingsError("chain has no 'stages' table", source)
        if version == 1:  # version 1 is version 2 without the match EQ: nothing is lost
            if "match_eq" in stages:
                raise SettingsError("chain schema_version 1 has no match_eq stage (it came with version 2)", source)
            log.info("%s: chain of schema version 1 read with the match EQ (added in version 2) off", source)
        if version in (1, 2):  # versions 1 and 2 have no polarity stage: it reads off
            if "polarity" in stages:
                raise SettingsError(f"chain schema_version {version} has no polarity stage (it came with version 3)",
                                    source)
            log.info("%s: chain of schema version %d read with the polarity stage (added in version 3) off",
                     source, version)
        if version in (1, 2, 3):  # versions 1 to 3 have no expander: it reads off
            if "expander" in stages:
                raise SettingsError(f"chain schema_version {version} has no expander stage (it came with version 4)",
                                    source)
            log.info("%s: chain of schema version %d read with the expander (added in version 4) off", source, version)
        values, enabled = {}, {}
        try:
            for stage, entry in stages.items():
                if stage not in STAGES:
                    raise SettingsError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
                for key, value in entry.items():
                    if key == "enabled":
                        if not isinstance(value, bool):
                            raise SettingsError(f"{stage}.enabled must be true or false, got {value!r}")
                        enabled[stage] = value
                    else:
                        values[f"{stage}.{key}"] = value
            return cls(values, enabled)
        except SettingsError as exc:
            raise SettingsError(exc.message, source) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise SettingsError(f"malformed chain ({exc})", source) from None

    def save(self, path: str | Path) -> Path:
        """Write the JSON preset atomically."""
        return write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ChainSettings":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError("chain file not found", path) from None
        except (OSError, ValueError) as exc:
            raise SettingsError(f"not a readable JSON chain ({exc})", path) from None
        return cls.from_dict(data, str(path))


def format_value(spec: ParamSpec, value: float) -> str:
    """A value as a producer reads it: '120 Hz', '+2.5 dB', '3.0:1', '12 ms', '40 %'."""
    if spec.unit == "Hz":
        return f"{value / 1000:.2f} kHz" if value >= 1000 else f"{value:.0f} Hz"
    if spec.unit == "dB":
        return f"{value:+.1f} dB"
    if spec.unit == ":1":
        return f"{value:.1f}:1"
    if spec.unit == "ms":
        return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
    if spec.unit == "%":
        return f"{value:.0f} %"
    return f"{value:.2f}"


def describe(settings: ChainSettings) -> list[str]:
    """One line per active stage, in signal order (neutral stages are left out: EQ stages and
    the trim at 0 dB, the width at 100 %)."""
    lines = []
    for stage in STAGES:
        if not settings.active(stage):
            continue
        if stage in SWITCH_TEXT:
            lines.append(f"{STAGE_LABELS[stage]:<13} {SWITCH_TEXT[stage]}")
            continue
        if stage == "match_eq":  # 31 faders: the ones that move
            moved = [f"{_hz_label(f)} {settings[n]:+.1f}" for n, f in zip(MATCH_EQ_PARAMS, MATCH_EQ_NOMINAL_HZ)
                     if settings[n] != 0.0]
            lines.append(f"{STAGE_LABELS[stage]:<13} " + ", ".join(moved) + " dB")
            continue
        parts = []
        for p in stage_params(stage):
            text = format_value(p, settings[p.name])
            if p.name.endswith(".q"):
                parts.append(f"Q {text}")
            elif stage in ("compressor", "reverb"):
                parts.append(f"{p.label} {text}")
            else:
                parts.append(text)
        lines.append(f"{STAGE_LABELS[stage]:<13} " + ", ".join(parts))
    return lines
