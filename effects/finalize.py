"""Finalizer: gain + true-peak limiting so the output meets its delivery spec exactly.

Solves for the input gain G such that the integrated loudness of ``limit(x * G)`` equals the
target, with the true peak (our BS.1770-5 meter) at or below the ceiling. The loudness of
each candidate is computed from the K-weighted power of the input times the squared gain
curve, which costs one multiply and one cumulative sum per iteration; the final output is
then measured exactly and corrected if needed. If reaching the target would take more than
``max_limiting_db`` of peak gain reduction, the gain stops there and a warning says by how
much the target was missed, rather than crushing the track.

Two passes, so any length works in bounded memory: pass 1 feeds the signal, in chunks, to a
:class:`BlockStatsMeter` (K-weighted power and true-peak envelope per limiter block, a few
bytes per 0.5 ms); the gain is solved on those arrays; pass 2 applies the gain and the
limiter curve chunk by chunk (:func:`apply_stream`) and hands the result to the caller (an array
in memory, or a file being written), which measures it; repeated if a correction is needed.
:func:`finalize` does both passes on an array; :func:`finalize_from_stats` is the same
finalizer for callers that stream the signal themselves.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from mixbridge.analysis.blocks import chunks, fanned_out
from mixbridge.analysis.errors import InvalidAudioError
from mixbridge.analysis.loudness import LoudnessMeter, WeightedPowerMeter, integrated_from_power
from mixbridge.analysis.truepeak import PeakEnvelopeMeter, TruePeakMeter
from mixbridge.effects.limiter import TruePeakLimiter, block_size

log = logging.getLogger(__name__)

LOUDNESS_TOLERANCE_LU = 0.02  # aim well inside the +-0.1 LU delivery tolerance
CEILING_MARGIN_DB = 0.1  # limiter aims this far under the ceiling: other meters' interpolators differ
MAX_LIMITING_DB = 10.0
MAX_CORRECTIONS = 4
CHUNK_FRAMES = 1 << 20  # finalize() works on the array in chunks of this many frames


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
    # The limiter's plan, so the same gain can be applied to other signals (the stems of this
    # mix): ``TruePeakLimiter.apply(x, block_gain_db, block, gain_db)``.
    block_gain_db: np.ndarray = field(default_factory=lambda: np.zeros(0))
    block: int = 0
    trace: LimiterTrace | None = None  # the limiter over time, for the report's plots


@dataclass(frozen=True)
class BlockStats:
    """What the finalizer needs of a signal, on the limiter's grid of ``block``-sample blocks.

    Attributes
    ----------
    power : np.ndarray, shape (ceil(frames / block),), float64
        Mean K-weighted, channel-weighted power per block (BS.1770-5 eq. 1-2).
    envelope_db : np.ndarray, shape (ceil(frames / block),)
        Maximum of the linked true-peak envelope per block, in dB.
    """

    sample_rate: int
    block: int
    power: np.ndarray
    envelope_db: np.ndarray


class BlockStatsMeter:
    """Pass 1: feed consecutive ``(channels, n)`` chunks of any sizes, then take :meth:`result`."""

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = int(sample_rate)
        self.block = block_size(sample_rate)
        self._power = WeightedPowerMeter(sample_rate, channels, self.block)
        self._envelope = PeakEnvelopeMeter(sample_rate, channels, self.block)
        self._power_parts: list[np.ndarray] = []
        self._envelope_parts: list[np.ndarray] = []

    def process(self, chunk: np.ndarray) -> None:
        self.power(chunk)
        self.envelope(chunk)

    def power(self, chunk: np.ndarray) -> None:
        """One half of :meth:`process`: the K-weighted power. The halves keep separate state, so
        each may run in its own thread (:func:`analysis.blocks.fanned_out`)."""
        self._power_parts.append(self._power.process(chunk))

    def envelope(self, chunk: np.ndarray) -> None:
        """The other half of :meth:`process`: the true-peak envelope."""
        self._envelope_parts.append(self._envelope.process(chunk))

    def result(self) -> BlockStats:
        power = np.concatenate(self._power_parts + [self._power.finish()]) / self.block
        envelope = np.concatenate(self._envelope_parts + [self._envelope.finish()])
        return BlockStats(self.sample_rate, self.block, power,
                          20.0 * np.log10(np.maximum(envelope, np.float32(1e-12))))


@dataclass(frozen=True)
class FinalizePlan:
    """The finalizer's decision: ``TruePeakLimiter.apply(x, block_gain_db, block, gain_db)``
    gives the output, which measured ``integrated_lufs`` and ``true_peak_dbtp``."""

    gain_db: float
    limiting_db: float  # peak gain reduction of the limiter
    integrated_lufs: float
    true_peak_dbtp: float
    warnings: tuple[str, ...]
    block_gain_db: np.ndarray
    block: int


@dataclass(frozen=True)
class LimiterTrace:
    """The finalizer over time, for the report's plots: per hop of ``hop_s``, the most the
    limiter took off (dB, >= 0) and the output's true-peak envelope (dBTP: pass 1's envelope
    with the gain and the limiter curve applied, so it reads the output before dither)."""

    hop_s: float
    gain_reduction_db: np.ndarray
    true_peak_dbtp: np.ndarray

    def to_dict(self) -> dict:
        return {"hop_s": self.hop_s, "gain_reduction_db": [round(float(v), 2) for v in self.gain_reduction_db],
                "true_peak_dbtp": [round(float(v), 2) if math.isfinite(v) else None for v in self.true_peak_dbtp]}


def limiter_trace(stats: BlockStats, plan: FinalizePlan, points: int = 2000) -> LimiterTrace:
    """``plan`` applied to ``stats``, in at most ``points`` hops (maxima over each hop)."""
    n = stats.envelope_db.size
    per = max(1, -(-n // max(1, points)))
    hops = -(-n // per)

    def hop_max(values: np.ndarray, fill: float) -> np.ndarray:
        padded = np.full(hops * per, fill)
        padded[:n] = values
        return padded.reshape(hops, per).max(axis=1)

    reduction = hop_max(-np.asarray(plan.block_gain_db, dtype=np.float64), 0.0)
    with np.errstate(invalid="ignore"):
        peak = hop_max(stats.envelope_db + plan.gain_db + plan.block_gain_db, -math.inf)
    return LimiterTrace(per * stats.block / stats.sample_rate, np.maximum(reduction, 0.0), peak)


def apply_stream(chunks: Iterable[np.ndarray], gain_db: float, block_gain_db: np.ndarray, block: int,
                 sink: Callable[[np.ndarray], None]) -> None:
    """Pass 2: apply gain and limiter curve to consecutive chunks and give each limited chunk
    to ``sink``, which also measures it (an :class:`OutputMeter`, or a master's whole analysis
    of the samples it writes)."""
    start = 0
    for chunk in chunks:
        sink(TruePeakLimiter.apply(chunk, block_gain_db, block, gain_db, start))
        start += chunk.shape[1]


class OutputMeter:
    """What a pass-2 run returns to :func:`finalize_from_stats`: integrated loudness and true
    peak of the samples given to :meth:`process`."""

    def __init__(self, sample_rate: int, channels: int):
        self._loudness = LoudnessMeter(sample_rate, channels)
        self._peak = TruePeakMeter(sample_rate, channels)

    def process(self, block: np.ndarray) -> None:
        self.loudness(block)
        self.peak(block)

    def loudness(self, block: np.ndarray) -> None:
        """One half of :meth:`process`, as :meth:`BlockStatsMeter.power`."""
        self._loudness.process(block)

    def peak(self, block: np.ndarray) -> None:
        """The other half of :meth:`process`: the true peak."""
        self._peak.process(block)

    def result(self) -> tuple[float, float]:
        """(integrated LUFS, true peak dBTP); call once, after the last block."""
        self._peak.finish()
        return self._loudness.result().integrated_lufs, self._peak.true_peak_dbtp


def loudness_and_true_peak(samples: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a ``(channels, n)`` array, the two meters side by side."""
    x = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    meter = OutputMeter(sample_rate, x.shape[0])
    with fanned_out((meter.peak, meter.loudness)) as measure:
        for part in chunks(x, CHUNK_FRAMES):
            measure(part)
    return meter.result()


def finalize(samples: np.ndarray, sample_rate: int, spec: FinalizeSpec, source: str = "<audio>") -> FinalizeResult:
    """Bring ``(channels, n)`` samples to ``spec``; see the module docstring.

    Raises
    ------
    InvalidAudioError
        When the loudness is undefined (silent, or shorter than one 400 ms block).
    """
    x = np.asarray(samples, dtype=np.float32)
    channels = x.shape[0]
    meter = BlockStatsMeter(sample_rate, channels)
    with fanned_out((meter.envelope, meter.power)) as measure_input:  # the two meters side by side
        for part in chunks(x, CHUNK_FRAMES):
            measure_input(part)
    out = np.empty_like(x)

    def run_pass(gain_db: float, block_gain_db: np.ndarray) -> tuple[float, float]:
        filled = [0]
        output = OutputMeter(sample_rate, channels)
        with fanned_out((output.loudness, output.peak)) as measure:
            def keep(chunk: np.ndarray) -> None:
                out[:, filled[0] : filled[0] + chunk.shape[1]] = chunk
                filled[0] += chunk.shape[1]
                measure(chunk)

            apply_stream(chunks(x, CHUNK_FRAMES), gain_db, block_gain_db, meter.block, keep)
        return output.result()

    stats = meter.result()
    plan = finalize_from_stats(stats, spec, run_pass, source)
    return FinalizeResult(out, plan.gain_db, plan.limiting_db, plan.integrated_lufs, plan.true_peak_dbtp,
                          plan.warnings, plan.block_gain_db, plan.block, limiter_trace(stats, plan))


def finalize_from_stats(stats: BlockStats, spec: FinalizeSpec,
                        run_pass: Callable[[float, np.ndarray], tuple[float, float]],
                        source: str = "<audio>") -> FinalizePlan:
    """Solve the gain on pass-1 ``stats``, then have ``run_pass(gain_db, block_gain_db)`` produce
    and measure the output (pass 2, returning LUFS and dBTP), correcting and running it
    again, at most MAX_CORRECTIONS times, until the output meets ``spec``. The output the
    last call produced is the one the returned plan describes.

    Raises
    ------
    InvalidAudioError
        When the loudness is undefined (silent, or shorter than one 400 ms block).
    """
    sample_rate, block, power, env_db = stats.sample_rate, stats.block, stats.power, stats.envelope_db
    block_rate = sample_rate / block
    start_lufs = integrated_from_power(power, block_rate)
    if not math.isfinite(start_lufs):
        raise InvalidAudioError("has no measurable loudness (silent or shorter than 0.4 s); "
                                "cannot normalise it", source)
    peak_db = float(env_db.max())
    warnings: list[str] = []
    limiter = TruePeakLimiter(spec.ceiling_dbtp - CEILING_MARGIN_DB)

    def estimate(gain_db: float) -> float:
        curve = limiter.block_gain_db(env_db, sample_rate, gain_db)
        return integrated_from_power(power * 10.0 ** ((gain_db + curve) / 10.0), block_rate)

    max_gain = limiter.ceiling_dbtp + spec.max_limiting_db - peak_db
    gain, reached = _solve_gain(estimate, spec.target_lufs - start_lufs, max_gain, spec.target_lufs)
    short = reached < spec.target_lufs - LOUDNESS_TOLERANCE_LU

    for _ in range(MAX_CORRECTIONS):
        curve = limiter.block_gain_db(env_db, sample_rate, gain)
        applied = gain
        measured, tp = run_pass(gain, curve)
        peak_ok = tp <= spec.ceiling_dbtp - CEILING_MARGIN_DB / 2
        loud_ok = short or abs(measured - spec.target_lufs) <= LOUDNESS_TOLERANCE_LU
        if peak_ok and loud_ok:
            break
        if not peak_ok:  # gain modulation nudged an inter-sample peak: aim the limiter lower
            limiter = TruePeakLimiter(limiter.ceiling_dbtp - (tp - limiter.ceiling_dbtp + 0.01))
        if not short:
            gain += spec.target_lufs - measured
        max_gain = limiter.ceiling_dbtp + spec.max_limiting_db - peak_db
        if gain > max_gain:  # the budget cannot reach the target (or no longer can)
            gain, short = max_gain, True
    else:
        log.warning("%s: finalizer stopped at %.2f LUFS, %.2f dBTP", source, measured, tp)
    if short:
        warnings.append(
            f"target {spec.target_lufs:.1f} LUFS needs more than {spec.max_limiting_db:.0f} dB of peak "
            f"limiting; stopped at {measured:.1f} LUFS ({spec.target_lufs - measured:.1f} LU short). "
            "Compress the mix or lower the target.")
    limiting_db = max(0.0, float(-np.min(curve))) if curve.size else 0.0
    return FinalizePlan(float(applied), limiting_db, float(measured), float(tp), tuple(warnings), curve, block)


def _solve_gain(loudness_at, first_guess_db: float, max_gain_db: float, target_lufs: float,
                step_db: float = 0.25) -> tuple[float, float]:
    """The smallest gain (<= max_gain_db) whose loudness reaches the target, and that loudness.

    Loudness does not always rise with gain: once the limiter holds the loud passages, more
    gain can lift quiet passages over the relative gate and *lower* the integrated loudness.
    So: secant steps from the no-limiting guess; if they fail, scan upward for the first
    gain that reaches the target and refine inside that step; if none does, the loudest gain.
    """
    tolerance = LOUDNESS_TOLERANCE_LU / 4

    def error(g: float) -> float:
        return loudness_at(g) - target_lufs

    g0 = min(first_guess_db, max_gain_db)
    e0 = error(g0)
    if abs(e0) <= tolerance:
        return g0, target_lufs + e0
    g1 = min(g0 - e0, max_gain_db)
    for _ in range(8):
        e1 = error(g1)
        if abs(e1) <= tolerance:
            return g1, target_lufs + e1
        if g1 == g0 or (g1 >= max_gain_db and e1 < 0):
            break
        slope = min(max((e1 - e0) / (g1 - g0), 0.05), 1.0)
        g0, e0, g1 = g1, e1, min(g1 - e1 / slope, max_gain_db)
    # Robust path: scan up from the no-limiting guess (whose loudness is at most the target).
    lo = min(first_guess_db, max_gain_db) - step_db
    grid = np.append(np.arange(lo, max_gain_db, step_db), max_gain_db)
    errors = np.array([error(g) for g in grid])
    hits = np.flatnonzero(errors >= -tolerance)
    if hits.size == 0:
        best = int(np.argmax(errors))
        return float(grid[best]), target_lufs + float(errors[best])
    i = int(hits[0])
    if i == 0:
        return float(grid[0]), target_lufs + float(errors[0])
    a, b, ea, eb = grid[i - 1], grid[i], errors[i - 1], errors[i]
    for _ in range(12):  # bisection inside the bracketing step
        mid = 0.5 * (a + b)
        em = error(mid)
        if abs(em) <= tolerance:
            return float(mid), target_lufs + em
        a, b, ea, eb = (mid, b, em, eb) if em < 0 else (a, mid, ea, em)
    return float(b), target_lufs + float(eb)
