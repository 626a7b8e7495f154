"""A map's insert bound to its loaded plugin: values from the map, the EQ response fit
(``fit = "response"``) and the compressor calibration (``calibrate``)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from mixbridge.analysis.loudness import measure_loudness
from mixbridge.effects.plugins.maps import Insert, locate
from mixbridge.effects.render import ChainRenderer
from mixbridge.effects.schema import EQ_STAGES, ChainSettings
from mixbridge.effects.vst3 import HostedPlugin

log = logging.getLogger(__name__)

FIT_POINTS = 96  # log-spaced frequencies for the response fit
FIT_IMPULSE_FRAMES = 16384
GRAPHIC_IMPULSE_FRAMES = 1 << 15  # holds the match EQ's FIR at 44.1-96 kHz
GRAPHIC_PROBE_DB = 6.0  # a graphic EQ band's gain while its response is measured
GRAPHIC_ROUNDS = 3  # least-squares rounds on the measured curve
GRAPHIC_RIDGE = 0.1  # regularisation of the graphic fit (dB of curve error per dB of band gain)
GRAPHIC_NOTE_DB = 1.0  # a curve error over this where the plugin has no band is noted
CALIBRATION_TOLERANCE_LU = 0.02  # already this close: left as it is
CALIBRATION_XTOL = 0.005  # the solved parameter's precision, in its own units (dB for a threshold)


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
            if not settings.active(stage):
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
        elif self.insert.fit == "graphic":
            values.update(self._fit_graphic(settings, sample_rate, values))
        if self.insert.calibrate and excerpt is not None:
            values.update(self._calibrate(settings, sample_rate, excerpt))
        self.values = self.plugin.set_values(values)
        return self.values

    # ---- response fits (EQ) ----
    @staticmethod
    def _fit_freqs(sample_rate: int) -> np.ndarray:
        return np.geomspace(20.0, min(20000.0, 0.45 * sample_rate), FIT_POINTS)

    def _probe(self, sample_rate: int, frames: int = FIT_IMPULSE_FRAMES):
        """Two measurements at the fit frequencies, in dB: the plugin's response as it is set now,
        and a built-in chain's (an impulse of ``frames`` through each)."""
        bins = np.round(self._fit_freqs(sample_rate) * frames / sample_rate).astype(int)
        impulse = np.zeros((1, frames), np.float32)
        impulse[0, 0] = 1.0
        probe = np.repeat(impulse, self.plugin.channels, axis=0)  # one side of a dual-mono pair is enough

        def db(y: np.ndarray) -> np.ndarray:
            return 20.0 * np.log10(np.maximum(np.abs(np.fft.rfft(y.astype(np.float64)))[bins], 1e-9))

        def plugin_db() -> np.ndarray:
            return db(self.plugin.process(probe, sample_rate, reset=True)[0])

        def builtin_db(settings: ChainSettings) -> np.ndarray:
            return db(ChainRenderer(settings, sample_rate).process(impulse)[0])

        return plugin_db, builtin_db

    def _fit_graphic(self, settings: ChainSettings, sample_rate: int, values: dict[str, float]) -> dict[str, float]:
        """The plugin's band gains solved together so its curve matches the built-in stage's:
        each band's response (at +6 dB, the others at 0) is one column of a linear model of the
        curve in dB, solved by least squares within the bands' ranges, then corrected twice on
        the plugin's measured curve (its bands interact a little)."""
        plugin_db, builtin_db = self._probe(sample_rate, GRAPHIC_IMPULSE_FRAMES)
        want = builtin_db(settings.only(self.insert.stages))
        bands = [m.param for m in self.insert.params]
        ranges = np.array([sorted((float(self.plugin.param(b).min_value), float(self.plugin.param(b).max_value)))
                           for b in bands])
        zero = {b: 0.0 for b in bands}
        self.plugin.set_values(zero)
        flat = plugin_db()
        columns = []
        for band in bands:
            self.plugin.set_values(zero | {band: GRAPHIC_PROBE_DB})
            columns.append((plugin_db() - flat) / GRAPHIC_PROBE_DB)
        influence = np.stack(columns, axis=1)
        # fit where the plugin reaches (a point some band moves by half its gain or more); below
        # its lowest band or above its highest, the plugin cannot follow, and the note says so
        reach = np.max(np.abs(influence), axis=1) >= 0.5
        ridge = GRAPHIC_RIDGE * np.eye(len(bands))  # neighbouring flat-topped bands trade off: keep the gains calm
        gains = np.zeros(len(bands))
        for _ in range(GRAPHIC_ROUNDS):
            self.plugin.set_values(dict(zip(bands, gains)))
            error = (want - plugin_db())[reach]
            step = np.linalg.lstsq(np.vstack([influence[reach], ridge]), np.concatenate([error, -ridge @ gains]),
                                   rcond=None)[0]
            gains = np.clip(gains + step, ranges[:, 0], ranges[:, 1])
        fitted = dict(zip(bands, (float(g) for g in gains)))
        self.plugin.set_values(values | fitted)
        error = want - plugin_db()
        log.info("%s: %s fitted, rms response error %.3f dB where it reaches", self.plugin.name,
                 ", ".join(self.insert.stages), float(np.sqrt(np.mean(error[reach] ** 2))))
        freqs = self._fit_freqs(sample_rate)
        if np.any(reach):
            for outside in (freqs < freqs[reach].min(), freqs > freqs[reach].max()):  # under its lowest band, over its top
                if np.any(outside) and np.max(np.abs(error[outside])) > GRAPHIC_NOTE_DB:
                    self.notes.append(f"{self.plugin.name} has no band at {freqs[outside].min():.0f}-"
                                      f"{freqs[outside].max():.0f} Hz: the built-in curve there differs by up to "
                                      f"{np.max(np.abs(error[outside])):.1f} dB")
        return fitted

    def _fit_response(self, settings: ChainSettings, sample_rate: int, values: dict[str, float]) -> dict[str, float]:
        from scipy.optimize import minimize

        plugin_db, builtin_db = self._probe(sample_rate)

        fitted: dict[str, float] = {}
        neutral = {m.param: m.off for m in self.insert.params if m.off is not None}
        for stage in self.insert.stages:
            if stage not in EQ_STAGES or not settings.active(stage):
                continue
            free = [m for m in self.insert.params if m.source.split(".")[0] == stage]
            others = {k: v for k, v in neutral.items() if k not in {m.param for m in free}}
            self.plugin.set_values(others)
            want = builtin_db(settings.only((stage,)))
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
        equals the built-in stage's: bracketed in doubling steps, then solved with Brent's method
        (loudness is monotone in it)."""
        name = self.insert.calibrate
        if name is None:
            return {}
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
        # loudness rises with the parameter (threshold): bracket the root first
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
        # lazy: scipy.optimize takes about 0.9 s to import, and only a calibration needs it
        from scipy.optimize import brentq

        chosen = float(brentq(loudness, min(a, b), max(a, b), xtol=CALIBRATION_XTOL, maxiter=24, disp=False))
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
