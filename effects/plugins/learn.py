"""Draft a plugin map for an unmapped EQ plugin by sweeping its parameters and measuring.

For one EQ stage of our schema (the input trim, a peaking band or a shelf) and the plugin
parameters that carry it (gain, frequency and, for bands, width), :func:`learn_eq_stage`:

1. sweeps the gain parameter and measures the gain the plugin actually applies (at the
   band's centre, or on the shelf's plateau);
2. sweeps the frequency parameter and measures where the band peaks (or where the shelf
   reaches half its gain);
3. for each Q on a grid, finds the width value whose measured response is closest to our
   built-in filter's (bounded 1-D search).

Each relation becomes ``same`` when the measurement agrees with the schema value (gain within
0.1 dB, frequency within 2 %), and a measured ``table`` otherwise. Every measurement is an
impulse through the plugin, so nothing depends on the plugin's documentation. The result is
the TOML of a one-insert map, with the residual errors in comments, to review and merge.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from mixbridge.effects.render import ChainRenderer
from mixbridge.effects.schema import EQ_STAGES, PARAM_INDEX, ChainSettings
from mixbridge.effects.vst3 import HostedPlugin, PluginError

log = logging.getLogger(__name__)

LEARN_RATE = 48000
IMPULSE_FRAMES = 16384
HOST_PARAM_WORDS = ("buffer", "sample_rate", "program", "latency", "bypass")
GAIN_TOLERANCE_DB = 0.1
FREQ_TOLERANCE = 0.02
FREQ_PAD = 16  # zero-padding for frequency measurements: 0.18 Hz bins at 48 kHz
SHELVES = ("low_shelf", "high_shelf")


@dataclass
class Learned:
    """What was measured for one schema parameter: a table of (schema value, plugin value)."""

    source: str
    param: str
    table: list[tuple[float, float]] = field(default_factory=list)
    identity: bool = False
    residual: str = ""


def _response_db(plugin: HostedPlugin, pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude response (dB) of an impulse through the plugin; ``pad``: FFT zero-padding factor
    (a finer frequency grid for locating a peak)."""
    impulse = np.zeros((plugin.channels, IMPULSE_FRAMES), np.float32)
    impulse[:, 0] = 1.0
    return _spectrum_db(plugin.process(impulse, LEARN_RATE, reset=True)[0], pad)


def _builtin_db(settings: ChainSettings, stage: str, pad: int = 1) -> np.ndarray:
    impulse = np.zeros((1, IMPULSE_FRAMES), np.float32)
    impulse[0, 0] = 1.0
    only = settings.only((stage,))
    return _spectrum_db(ChainRenderer(only, LEARN_RATE).process(impulse)[0], pad)[1]


def _spectrum_db(y: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    n = IMPULSE_FRAMES * pad
    freqs = np.fft.rfftfreq(n, 1.0 / LEARN_RATE)
    return freqs, 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(y.astype(np.float64), n)), 1e-9))


def _in_range(plugin: HostedPlugin, name: str, values) -> list[float]:
    p = plugin.param(name)
    lo, hi = sorted((float(p.min_value), float(p.max_value)))
    return [v for v in values if lo <= v <= hi]


def learn_eq_stage(path: str | Path, stage: str, gain: str, freq: str | None = None,
                   width: str | None = None) -> tuple[str, list[Learned]]:
    """Measure how ``stage`` maps onto the plugin at ``path``; returns (map TOML, measurements).

    Raises
    ------
    PluginError
        A named parameter the plugin lacks (valid names listed), a stage that is not an EQ
        stage or trim, or a parameter whose sweep does not change the response.
    """
    if stage not in (*EQ_STAGES, "trim"):
        raise PluginError(f"learn handles the trim and EQ stages ({', '.join(EQ_STAGES)}), not {stage!r}")
    if stage != "trim" and freq is None:
        raise PluginError(f"{stage} needs the plugin's frequency parameter (--freq)")
    plugin = HostedPlugin(path, dual_mono=True)
    for name in (gain, freq, width):
        if name is not None:
            plugin.param(name)
    freqs, _ = _response_db(plugin)
    learned = [_learn_gain(plugin, stage, gain, freq, freqs)]
    if stage != "trim":
        assert freq is not None  # refused above for every stage but the trim
        learned.append(_learn_freq(plugin, stage, gain, freq, freqs))
        if width is not None:
            learned.append(_learn_width(plugin, stage, gain, freq, width, learned[1]))
    return _to_toml(plugin, stage, gain, learned), learned


def _centre(plugin: HostedPlugin, freq: str | None) -> float:
    """A mid-range frequency setting for the gain sweep."""
    if freq is None:
        return 0.0
    p = plugin.param(freq)
    lo, hi = sorted((float(p.min_value), float(p.max_value)))
    return float(min(max(1000.0, lo), hi))


def _measure_gain(freqs: np.ndarray, db: np.ndarray, stage: str, at_hz: float) -> float:
    if stage == "trim":
        return float(np.median(db[(freqs > 20) & (freqs < 20000)]))
    if stage == "low_shelf":
        return float(np.median(db[(freqs > 5) & (freqs < at_hz / 8)]))
    if stage == "high_shelf":
        return float(np.median(db[(freqs > min(at_hz * 4, 0.4 * LEARN_RATE)) & (freqs < 0.45 * LEARN_RATE)]))
    return float(db[np.argmax(np.abs(db))])


def _learn_gain(plugin: HostedPlugin, stage: str, gain: str, freq: str | None, freqs: np.ndarray) -> Learned:
    spec = PARAM_INDEX[f"{stage}.gain_db"]
    at_hz = _centre(plugin, freq)
    if stage in SHELVES:
        at_hz = 200.0 if stage == "low_shelf" else 4000.0
    if freq is not None:
        p = plugin.param(freq)
        lo, hi = sorted((float(p.min_value), float(p.max_value)))
        plugin.set_values({freq: min(max(at_hz, lo), hi)})
    points = []
    for value in _in_range(plugin, gain, [spec.min, -6.0, -3.0, 3.0, 6.0, spec.max]):
        plugin.set_values({gain: value})
        points.append((value, _measure_gain(freqs, _response_db(plugin)[1], stage, at_hz)))
    if len(points) < 2 or max(abs(m) for _, m in points) < 0.05:
        raise PluginError(f"sweeping {gain} does not change the response; is it the gain of a {stage}?", plugin.path)
    plugin.set_values({gain: 0.0} if _in_range(plugin, gain, [0.0]) else {})
    error = max(abs(m - v) for v, m in points)
    if error <= GAIN_TOLERANCE_DB:
        return Learned(f"{stage}.gain_db", gain, identity=True, residual=f"gain applied within {error:.3f} dB")
    measured = sorted((m, v) for v, m in points)  # schema dB wanted -> plugin value that gives it
    return Learned(f"{stage}.gain_db", gain, table=[(round(m, 4), round(v, 4)) for m, v in measured],
                   residual=f"the plugin's gain differs from its label by up to {error:.2f} dB")


def _measured_freq(freqs: np.ndarray, db: np.ndarray, stage: str, gain_db: float) -> float:
    band = (freqs > 10) & (freqs < 0.45 * LEARN_RATE)
    f, d = freqs[band], db[band]
    if stage not in SHELVES:
        return float(f[np.argmax(d)])
    half = gain_db / 2.0
    rising = d >= half if stage == "high_shelf" else d <= half
    k = int(np.argmax(rising))
    if k == 0:
        return float(f[0])
    # interpolate the half-gain crossing on a log-frequency axis
    t = (half - d[k - 1]) / (d[k] - d[k - 1]) if d[k] != d[k - 1] else 0.0
    return float(math.exp(math.log(f[k - 1]) + t * (math.log(f[k]) - math.log(f[k - 1]))))


def _learn_freq(plugin: HostedPlugin, stage: str, gain: str, freq: str, freqs: np.ndarray) -> Learned:
    spec = PARAM_INDEX[f"{stage}.freq_hz"]
    boost = _in_range(plugin, gain, [6.0])
    if not boost:
        raise PluginError(f"{gain} cannot be set to +6 dB to measure the frequency", plugin.path)
    plugin.set_values({gain: 6.0})
    freqs, _ = _response_db(plugin, FREQ_PAD)
    grid = _in_range(plugin, freq, np.geomspace(spec.min, min(spec.max, 0.4 * LEARN_RATE), 7).tolist())
    points = []
    for value in grid:
        plugin.set_values({freq: value})
        points.append((value, _measured_freq(freqs, _response_db(plugin, FREQ_PAD)[1], stage, 6.0)))
    if stage in SHELVES:  # our shelf's own half-gain point is the reference, not its corner label
        reference = ChainSettings.create()
        points_ref = []
        for value, measured in points:
            s = reference.replace({f"{stage}.freq_hz": value, f"{stage}.gain_db": 6.0})
            points_ref.append((value, measured, _measured_freq(freqs, _builtin_db(s, stage, FREQ_PAD), stage, 6.0)))
    else:
        points_ref = [(v, m, v) for v, m in points]
    plugin.set_values({gain: 0.0} if _in_range(plugin, gain, [0.0]) else {})
    if len({round(m, 3) for _, m, _ in points_ref}) < 2:
        raise PluginError(f"sweeping {freq} does not move the response; is it the frequency of a {stage}?",
                          plugin.path)
    error = max(abs(m / r - 1.0) for _, m, r in points_ref)
    if error <= FREQ_TOLERANCE:
        return Learned(f"{stage}.freq_hz", freq, identity=True, residual=f"frequency within {error * 100:.1f} %")
    # plugin value that lands where our filter lands: interpolate measured(plugin value) inversely
    plugin_log = np.log([v for v, _, _ in points_ref])
    measured_log = np.log([m for _, m, _ in points_ref])
    order = np.argsort(measured_log)
    table = []
    for value, _, ref in points_ref:
        want = math.log(ref)
        table.append((round(value, 3), round(float(math.exp(np.interp(want, measured_log[order], plugin_log[order]))),
                                              3)))
    return Learned(f"{stage}.freq_hz", freq, table=table,
                   residual=f"the plugin's frequency differs from ours by up to {error * 100:.0f} %")


def _learn_width(plugin: HostedPlugin, stage: str, gain: str, freq: str, width: str, freq_learned: Learned) -> Learned:
    from scipy.optimize import minimize_scalar

    p = plugin.param(width)
    lo, hi = sorted((float(p.min_value), float(p.max_value)))
    spec = PARAM_INDEX[f"{stage}.q"]
    freq_spec = PARAM_INDEX[f"{stage}.freq_hz"]
    centre_hz = math.sqrt(freq_spec.min * freq_spec.max)  # inside the stage's range, away from its edges
    plugin_hz = centre_hz
    if freq_learned.table:
        xs, ys = zip(*freq_learned.table)
        plugin_hz = float(np.interp(math.log(centre_hz), np.log(xs), ys))
    plugin.set_values({gain: 6.0, freq: plugin_hz})
    freqs, _ = _response_db(plugin)
    band = (freqs > 20) & (freqs < 20000)
    table, worst = [], 0.0
    for q in [v for v in (0.3, 0.5, 0.707, 1.0, 2.0, 4.0, 8.0) if spec.min <= v <= spec.max]:
        settings = ChainSettings.create({f"{stage}.freq_hz": centre_hz, f"{stage}.gain_db": 6.0, f"{stage}.q": q})
        want = _builtin_db(settings, stage)

        def error(value: float, want=want) -> float:
            plugin.set_values({width: float(min(max(value, lo), hi))})
            return float(np.sqrt(np.mean((_response_db(plugin)[1] - want)[band] ** 2)))

        result = minimize_scalar(error, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4 * (hi - lo)})
        table.append((q, round(float(result.x), 4)))
        worst = max(worst, float(result.fun))
    plugin.set_values({gain: 0.0} if _in_range(plugin, gain, [0.0]) else {})
    values = [v for _, v in table]
    if max(values) - min(values) < 1e-3 * (hi - lo):
        raise PluginError(f"sweeping {width} does not change the band's width", plugin.path)
    return Learned(f"{stage}.q", width, table=table, residual=f"rms response error at the best width <= {worst:.2f} dB")


def _to_toml(plugin: HostedPlugin, stage: str, gain: str, learned: list[Learned]) -> str:
    """The draft map as TOML (written by tomli-w, so any parameter name is quoted correctly),
    with what was measured in a comment block at the top."""
    host = [n for n in plugin.param_names if any(w in n for w in HOST_PARAM_WORDS)]
    params = {}
    for item in learned:
        entry: dict = {"from": item.source}
        if item.table:
            entry["table"] = [[float(a), float(b)] for a, b in item.table]
        if item.param == gain:
            entry["off"] = 0.0
        params[item.param] = entry
    insert = {"name": f"{plugin.name} {stage}", "plugin": plugin.path.stem, "stages": [stage],
              "layout": "dual-mono" if plugin.channels == 1 else "stereo",
              **({"fit": "response"} if stage != "trim" else {}), "skip": host, "params": params}
    header = [f"# Draft map learned by `mixbridge plugins learn` from {plugin.path}",
              "# Review it, then merge the insert into a map (see presets/plugins/zam.toml).",
              *(f"# {item.source} -> {item.param}: {item.residual}" for item in learned)]
    body = tomli_w.dumps({"schema_version": 1, "name": f"{plugin.name.lower()}-draft", "insert": [insert]})
    return "\n".join(header) + "\n" + body
