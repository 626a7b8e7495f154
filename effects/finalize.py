"""Finalizer: gain + true-peak limiting so the output meets its delivery spec exactly.

Solves for the input gain G such that the integrated loudness of ``limit(x * G)`` equals the
target, with the true peak (our BS.1770-5 meter) at or below the ceiling. The loudness of
each candidate is computed from the K-weighted power of the input times the squared gain
curve, which costs one multiply and one cumulative sum per iteration; the final output is
then measured exactly and corrected if needed. If reaching the target would take more than
``max_limiting_db`` of peak gain reduction, the gain stops there and a warning says by how
much the target was missed, rather than crushing the track.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from assistant.errors import InvalidAudioError
from assistant.loudness import integrated_from_power, measure_loudness, weighted_power
from assistant.truepeak import peak_envelope, true_peak_dbtp
from effects.limiter import TruePeakLimiter, block_reduce, block_size

log = logging.getLogger(__name__)

LOUDNESS_TOLERANCE_LU = 0.02  # aim well inside the +-0.1 LU delivery tolerance
CEILING_MARGIN_DB = 0.02  # limiter aims this far under the ceiling
MAX_LIMITING_DB = 10.0
MAX_ITERATIONS = 20
MAX_CORRECTIONS = 4


@dataclass(frozen=True)
class FinalizeSpec:
    """Delivery spec: integrated loudness and true-peak ceiling, plus the limiting budget."""

    target_lufs: float
    ceiling_dbtp: float
    max_limiting_db: float = MAX_LIMITING_DB


@dataclass(frozen=True)
class FinalizeResult:
    samples: np.ndarray
    gain_db: float
    limiting_db: float  # peak gain reduction of the limiter
    integrated_lufs: float
    true_peak_dbtp: float
    warnings: tuple[str, ...] = field(default_factory=tuple)


def finalize(samples: np.ndarray, sample_rate: int, spec: FinalizeSpec, source: str = "<audio>") -> FinalizeResult:
    """Bring ``(channels, n)`` samples to ``spec``; see the module docstring.

    Raises
    ------
    InvalidAudioError
        When the loudness is undefined (silent, or shorter than one 400 ms block).
    """
    x = np.asarray(samples, dtype=np.float32)
    block = block_size(sample_rate)
    block_rate = sample_rate / block
    power = block_reduce(weighted_power(x, sample_rate), block, "sum") / block
    start_lufs = integrated_from_power(power, block_rate)
    if not math.isfinite(start_lufs):
        raise InvalidAudioError("has no measurable loudness (silent or shorter than 0.4 s); "
                                "cannot normalise it", source)
    env_db = 20.0 * np.log10(np.maximum(block_reduce(peak_envelope(x, sample_rate), block, "max"), 1e-12))
    peak_db = float(env_db.max())
    warnings: list[str] = []
    limiter = TruePeakLimiter(spec.ceiling_dbtp - CEILING_MARGIN_DB)

    def estimate(gain_db: float) -> float:
        curve = limiter.block_gain_db(env_db, sample_rate, gain_db)
        return integrated_from_power(power * 10.0 ** ((gain_db + curve) / 10.0), block_rate)

    max_gain = limiter.ceiling_dbtp + spec.max_limiting_db - peak_db
    reachable = estimate(max_gain)
    if reachable < spec.target_lufs - LOUDNESS_TOLERANCE_LU:
        warnings.append(
            f"target {spec.target_lufs:.1f} LUFS needs more than {spec.max_limiting_db:.0f} dB of peak "
            f"limiting; stopped at {reachable:.1f} LUFS ({spec.target_lufs - reachable:.1f} LU short). "
            "Compress the mix or lower the target.")
        gain = max_gain
    else:
        gain = _solve_gain(estimate, spec.target_lufs - start_lufs, spec.target_lufs)

    for _ in range(MAX_CORRECTIONS):
        curve = limiter.block_gain_db(env_db, sample_rate, gain)
        out = x * (TruePeakLimiter.sample_gain(curve, x.shape[1], block) * np.float32(10.0 ** (gain / 20.0)))
        measured = measure_loudness(out, sample_rate).integrated_lufs
        tp = true_peak_dbtp(out, sample_rate)
        peak_ok = tp <= spec.ceiling_dbtp - 0.005
        loud_ok = bool(warnings) or abs(measured - spec.target_lufs) <= LOUDNESS_TOLERANCE_LU
        if peak_ok and loud_ok:
            break
        if not peak_ok:  # gain modulation nudged an inter-sample peak: aim the limiter lower
            limiter = TruePeakLimiter(limiter.ceiling_dbtp - (tp - limiter.ceiling_dbtp) - 0.01)
        if not warnings:
            gain += spec.target_lufs - measured
    else:
        log.warning("%s: finalizer stopped at %.2f LUFS, %.2f dBTP", source, measured, tp)
    limiting_db = float(-np.min(curve)) if curve.size else 0.0
    return FinalizeResult(out, float(gain), limiting_db, float(measured), float(tp), tuple(warnings))


def _solve_gain(loudness_at, first_guess_db: float, target_lufs: float) -> float:
    """Find g with loudness_at(g) == target (monotone in g) by secant steps with a bracket."""
    g0 = first_guess_db
    e0 = loudness_at(g0) - target_lufs
    if abs(e0) <= LOUDNESS_TOLERANCE_LU / 4:
        return g0
    g1 = g0 - e0
    for _ in range(MAX_ITERATIONS):
        e1 = loudness_at(g1) - target_lufs
        if abs(e1) <= LOUDNESS_TOLERANCE_LU / 4:
            return g1
        slope = (e1 - e0) / (g1 - g0) if g1 != g0 else 1.0
        slope = min(max(slope, 0.05), 1.0)  # loudness rises at most 1:1 with gain, never falls
        g0, e0 = g1, e1
        g1 = g1 - e1 / slope
    log.warning("loudness solver did not converge (%.3f LU off)", e1)
    return g1
