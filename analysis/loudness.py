"""Loudness per ITU-R BS.1770-5 and EBU R128 (Tech 3341 meter, Tech 3342 loudness range).

A streaming meter: feed ``(channels, n)`` blocks of any size; the result does not depend on
how the signal was cut. Momentary (400 ms) and short-term (3 s) loudness are evaluated at
**every sample position** with a running sum, so the maximum of a 400 ms burst is caught
exactly (EBU Tech 3341 case 13); series for plots and gating are taken every 100 ms.

This module is a leaf (numpy/scipy only): every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mixbridge.analysis.blocks import chunks
from mixbridge.analysis.iir import sosfilt

MOMENTARY_S = 0.4
SHORT_TERM_S = 3.0
STEP_S = 0.1  # 75 % overlap of the 400 ms gating blocks (BS.1770-5 §2.8); 10 Hz series
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0  # integrated loudness, BS.1770-5 eq. 6
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
LRA_PERCENTILES = (10.0, 95.0)
LOUDNESS_OFFSET = -0.691  # BS.1770-5 eq. 2

# K-weighting as analogue prototypes, so the filter is exact at any sample rate; at 48 kHz
# the bilinear transform below reproduces the coefficients tabled in BS.1770-5 (Tables 1, 2).
_SHELF_HZ, _SHELF_GAIN_DB, _SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
_HIGHPASS_HZ, _HIGHPASS_Q = 38.13547087602444, 0.5003270373238773


def channel_weights_for(channels: int) -> tuple[float, ...]:
    """BS.1770-5 channel weights G_i for mono/stereo (1.0 each)."""
    return (1.0,) * channels


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """Second-order sections of the K-weighting filter (pre-filter shelf + RLB high-pass).

    Returns
    -------
    np.ndarray, shape (2, 6)
    """
    k = np.tan(np.pi * _SHELF_HZ / sample_rate)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    k = np.tan(np.pi * _HIGHPASS_HZ / sample_rate)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0]
    return np.array([shelf, highpass])


def power_to_lufs(mean_square: np.ndarray | float) -> np.ndarray | float:
    """Weighted mean square -> loudness in LUFS (BS.1770-5 eq. 2); 0 -> -inf."""
    with np.errstate(divide="ignore"):
        return LOUDNESS_OFFSET + 10.0 * np.log10(mean_square)


def lufs_to_power(lufs: float) -> float:
    return 10.0 ** ((lufs - LOUDNESS_OFFSET) / 10.0)


@dataclass(frozen=True)
class LoudnessResult:
    """Everything the meter measured. Undefined values are ``-inf`` (silence, too short).

    Attributes
    ----------
    integrated_lufs : float
        Gated integrated loudness (BS.1770-5 §2.8).
    max_momentary_lufs, max_short_term_lufs : float
        Maxima over every sample position of the 400 ms / 3 s windows.
    momentary_lufs, short_term_lufs : np.ndarray, shape (k,)
        Every 100 ms; ``series_times_s[i]`` is where window i ends. Short-term entries
        before 3 s are averaged over the audio that exists so far.
    loudness_range_lu : float
        EBU Tech 3342 LRA; 0.0 when fewer than two short-term blocks pass the gates.
    """

    integrated_lufs: float
    max_momentary_lufs: float
    max_short_term_lufs: float
    momentary_lufs: np.ndarray
    short_term_lufs: np.ndarray
    series_times_s: np.ndarray
    loudness_range_lu: float
    duration_s: float


class LoudnessMeter:
    """Streaming BS.1770-5 / EBU R128 meter.

    Parameters
    ----------
    sample_rate : int
        In Hz.
    channels : int
    channel_weights : sequence of float, optional
        G_i per channel (BS.1770-5 Table 3): 1.0 for L, R, C; 1.41 for surrounds.
    """

    def __init__(self, sample_rate: int, channels: int, channel_weights: Sequence[float] | None = None):
        self.sample_rate = int(sample_rate)
        self.weights = np.asarray(channel_weights or channel_weights_for(channels), dtype=np.float64)
        if self.weights.shape != (channels,):
            raise ValueError(f"{len(self.weights)} channel weights for {channels} channels")
        self._sos32 = k_weighting_sos(self.sample_rate).astype(np.float32)
        self._zi = np.zeros((channels, self._sos32.shape[0], 2), dtype=np.float32)
        self._m_len = int(round(MOMENTARY_S * self.sample_rate))
        self._s_len = int(round(SHORT_TERM_S * self.sample_rate))
        self._step = int(round(STEP_S * self.sample_rate))
        self._history = np.zeros(0)  # weighted power of the last <= 3 s
        self._done = 0  # samples consumed
        self._next_end = self._m_len  # end (exclusive) of the next 100 ms series window
        self._m_sums: list[np.ndarray] = []
        self._s_sums: list[np.ndarray] = []
        self._ends: list[np.ndarray] = []
        self._max_m = 0.0
        self._max_s = 0.0
        self._seen_m = self._seen_s = False

    def process(self, block: np.ndarray) -> None:
        """Consume a ``(channels, n)`` block."""
        # Filtering in float32 (error < 1e-4 LU, tested) halves the meter's cost; sums in float64.
        block = np.asarray(block, dtype=np.float32)
        n = block.shape[1]
        if n == 0:
            return
        filtered, self._zi = sosfilt(self._sos32, block, self._zi)
        power = np.einsum("c,cn->n", self.weights, np.square(filtered, dtype=np.float64))
        cum = np.empty(self._history.size + n + 1)
        cum[0] = 0.0
        np.cumsum(self._history, out=cum[1 : self._history.size + 1])
        np.cumsum(power, out=cum[self._history.size + 1 :])
        cum[self._history.size + 1 :] += cum[self._history.size]
        origin = self._done - self._history.size  # global index of buf[0]
        start, stop = self._done + 1, self._done + n  # window ends (exclusive) in this block

        for length, attr, seen in ((self._m_len, "_max_m", "_seen_m"), (self._s_len, "_max_s", "_seen_s")):
            lo = max(start, length) - origin
            hi = stop - origin + 1
            if lo < hi:
                window_max = float(np.max(cum[lo:hi] - cum[lo - length : hi - length]))
                setattr(self, attr, max(getattr(self, attr), window_max))
                setattr(self, seen, True)

        if self._next_end <= stop:
            ends = np.arange(self._next_end, stop + 1, self._step)
            j = ends - origin
            self._m_sums.append(cum[j] - cum[j - self._m_len])
            s_len = np.minimum(ends, self._s_len)
            self._s_sums.append((cum[j] - cum[j - s_len]) / s_len * self._s_len)
            self._ends.append(ends)
            self._next_end = int(ends[-1]) + self._step

        self._history = np.concatenate((self._history, power))[-self._s_len :]
        self._done += n

    def result(self) -> LoudnessResult:
        """The measurement of everything processed so far."""
        m = np.concatenate(self._m_sums) / self._m_len if self._m_sums else np.zeros(0)
        s = np.concatenate(self._s_sums) / self._s_len if self._s_sums else np.zeros(0)
        ends = np.concatenate(self._ends) if self._ends else np.zeros(0, dtype=np.int64)
        full_s = s[ends >= self._s_len]
        return LoudnessResult(
            integrated_lufs=float(gated_loudness(m, RELATIVE_GATE_LU)),
            max_momentary_lufs=float(power_to_lufs(self._max_m / self._m_len)) if self._seen_m else -np.inf,
            max_short_term_lufs=float(power_to_lufs(self._max_s / self._s_len)) if self._seen_s else -np.inf,
            momentary_lufs=np.asarray(power_to_lufs(m), dtype=np.float64),
            short_term_lufs=np.asarray(power_to_lufs(s), dtype=np.float64),
            series_times_s=ends / self.sample_rate,
            loudness_range_lu=loudness_range(full_s),
            duration_s=self._done / self.sample_rate,
        )


def _gate(block_powers: np.ndarray, relative_lu: float) -> np.ndarray:
    """Blocks passing the absolute (-70 LUFS) and the relative gate (BS.1770-5 eq. 4-6)."""
    p = block_powers[block_powers > lufs_to_power(ABSOLUTE_GATE_LUFS)]
    if p.size == 0:
        return p
    threshold = np.mean(p) * 10.0 ** (relative_lu / 10.0)
    return p[p > threshold]


def gated_loudness(block_powers: np.ndarray, relative_lu: float = RELATIVE_GATE_LU) -> float:
    """Integrated loudness of 400 ms block mean squares (BS.1770-5 eq. 7); -inf if none pass."""
    p = _gate(block_powers, relative_lu)
    return float(power_to_lufs(np.mean(p))) if p.size else -np.inf


def loudness_range(short_term_powers: np.ndarray) -> float:
    """Loudness range in LU from 3 s block mean squares (EBU Tech 3342 §3)."""
    p = _gate(short_term_powers, LRA_RELATIVE_GATE_LU)
    if p.size < 2:
        return 0.0
    low, high = np.percentile(power_to_lufs(p), LRA_PERCENTILES)
    return float(high - low)


def measure_loudness(samples: np.ndarray, sample_rate: int,
                     channel_weights: Sequence[float] | None = None) -> LoudnessResult:
    """Measure a whole ``(channels, n)`` array at once; see :class:`LoudnessMeter`."""
    samples = np.atleast_2d(samples)
    meter = LoudnessMeter(sample_rate, samples.shape[0], channel_weights)
    for block in chunks(samples, 10 * int(sample_rate)):
        meter.process(block)
    return meter.result()


class WeightedPowerMeter:
    """Streaming :func:`weighted_power`: K-weighted, channel-weighted power summed per ``block``
    samples, fed ``(channels, n)`` chunks of any sizes (filter state and a partial block carried
    over), so the concatenated output equals :func:`weighted_power` of the whole signal.
    """

    def __init__(self, sample_rate: int, channels: int, block: int = 1,
                 channel_weights: Sequence[float] | None = None):
        self.block = int(block)
        self._weights = np.asarray(channel_weights or channel_weights_for(channels), dtype=np.float64)
        self._sos = k_weighting_sos(sample_rate).astype(np.float32)
        self._zi = np.zeros((channels, self._sos.shape[0], 2), dtype=np.float32)
        self._pending = np.zeros(0)  # per-sample power of an incomplete block

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Sums of the blocks this chunk completes, shape (k,), float64."""
        filtered, self._zi = sosfilt(self._sos, np.asarray(chunk, np.float32), self._zi)
        power = np.concatenate((self._pending, np.einsum("c,cn->n", self._weights,
                                                         np.square(filtered, dtype=np.float64))))
        whole = power.size - power.size % self.block
        self._pending = power[whole:]
        return power[:whole].reshape(-1, self.block).sum(axis=1)

    def finish(self) -> np.ndarray:
        """The sum of the last, incomplete block (no values if there is none)."""
        tail, self._pending = self._pending, np.zeros(0)
        return np.array([tail.sum()]) if tail.size else np.zeros(0)


def weighted_power(samples: np.ndarray, sample_rate: int, block: int = 1,
                   channel_weights: Sequence[float] | None = None) -> np.ndarray:
    """K-weighted, channel-weighted power ``sum_i G_i y_i[n]^2`` (BS.1770-5 eq. 1-2), summed
    over consecutive ``block``-sample blocks (``block=1``: per sample).

    Filtered in chunks by a :class:`WeightedPowerMeter`, so memory stays at one chunk.

    Returns
    -------
    np.ndarray, shape (ceil(n / block),), float64
    """
    samples = np.atleast_2d(samples)
    meter = WeightedPowerMeter(sample_rate, samples.shape[0], block, channel_weights)
    out = [meter.process(part) for part in chunks(samples, block * max(1, (1 << 20) // block))]
    out.append(meter.finish())
    return np.concatenate(out)


def integrated_from_power(power: np.ndarray, sample_rate: float) -> float:
    """Integrated loudness from :func:`weighted_power` (gating blocks as in LoudnessMeter)."""
    m_len = int(round(MOMENTARY_S * sample_rate))
    step = int(round(STEP_S * sample_rate))
    if power.size < m_len:
        return -np.inf
    cum = np.concatenate(([0.0], np.cumsum(power)))
    ends = np.arange(m_len, power.size + 1, step)
    return gated_loudness((cum[ends] - cum[ends - m_len]) / m_len)
