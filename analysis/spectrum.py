"""Long-term band spectrum (mid and side), stereo correlation/width per band, frame series.

One streaming STFT (Hann window, 50 % overlap, ~93 ms at any rate) feeds everything:
per-bin sums of |L|^2, |R|^2 and Re(L R*) give mid/side spectra and per-band correlation
and width; a per-frame band spectrum of the mid signal feeds the dynamics and ambience
descriptors (see :mod:`analysis.dynamics`).

Bands are the 31 base-10 1/3-octave bands of IEC 61260 from 20 Hz to 20 kHz. A band's
power is the integral of the bin powers over its edges (bins split in proportion), so no band
is ever empty at any FFT resolution; bands above Nyquist read the floor value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from mixbridge.analysis import fft

BAND_CENTRES_HZ = tuple(float(1000.0 * 10.0 ** (k / 10.0)) for k in range(-17, 14))
BAND_EDGES_HZ = tuple(float(1000.0 * 10.0 ** ((k - 0.5) / 10.0)) for k in range(-17, 15))
FLOOR_DB = -120.0
FRAME_S = 0.093  # STFT length target; the FFT size is the nearest power of two
TILT_RANGE_HZ = (50.0, 16_000.0)
# Bands that define tonal balance (and the tonal error): 40 Hz to 12.5 kHz. Higher bands are
# left out because lossy sources (and our Vorbis-sourced dev corpus) low-pass near 16 kHz.
SHAPE_RANGE_HZ = (40.0, 12_600.0)


def fft_size(sample_rate: int) -> int:
    return int(2 ** round(np.log2(FRAME_S * sample_rate)))


def power_db(power: np.ndarray | float) -> np.ndarray:
    """Power (mean square) -> dB, floored at FLOOR_DB."""
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), FLOOR_DB)


@lru_cache(maxsize=16)
def band_matrix(n_fft: int, sample_rate: int) -> np.ndarray:
    """``(bins, bands)`` weights: bin power -> band power, splitting bins across band edges.
    Cached (the EQ fits ask for the same one dozens of times per track), so read-only.

    Each band's column is filled only over the bins that reach it: a dense bins x bands
    computation touched 8 arrays of that size (0.15 s for the match EQ's 2 s design grid)."""
    bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    lower = np.maximum((np.arange(bins) - 0.5) * df, 0.0)
    upper = np.minimum((np.arange(bins) + 0.5) * df, sample_rate / 2.0)
    width = np.maximum(upper - lower, 1e-12)
    edges = np.asarray(BAND_EDGES_HZ)
    weights = np.zeros((bins, edges.size - 1))
    for band, (lo_edge, hi_edge) in enumerate(zip(edges[:-1], edges[1:])):
        first = int(np.searchsorted(upper, lo_edge, side="right"))  # bins ending at or before the band: 0
        last = int(np.searchsorted(lower, hi_edge, side="left"))  # bins starting at or after it: 0
        if first >= last:
            continue
        lo = np.maximum(lower[first:last], lo_edge)
        hi = np.minimum(upper[first:last], hi_edge)
        weights[first:last, band] = np.clip(hi - lo, 0.0, None) / width[first:last]
    weights.flags.writeable = False
    return weights


def band_power_db(power: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Power per bin -> level per band (dB), power-averaged over each band's bins with the
    weights of :func:`band_matrix` (a band no bin reaches reads 0 dB)."""
    weight = matrix.sum(axis=0)
    band_power = np.divide(power @ matrix, weight, out=np.ones(weight.size), where=weight > 0)
    return 10.0 * np.log10(np.maximum(band_power, 1e-12))


@dataclass(frozen=True)
class SpectrumResult:
    """Long-term spectra in dB (mean-square level, a full-scale sine reads -3 dB in its band)."""

    mid_band_db: np.ndarray  # (31,)
    side_band_db: np.ndarray  # (31,)
    correlation_band: np.ndarray  # (31,), -1..1
    width_band: np.ndarray  # (31,), side / (mid + side) power, 0 = mono, 0.5 = uncorrelated
    correlation: float
    width: float
    tilt_db_per_octave: float
    centroid_hz: float
    frame_band_db: np.ndarray  # (frames, 31) mid band levels per frame
    frame_peak: np.ndarray  # (frames,) sample |peak| within each hop
    frame_mean_square: np.ndarray  # (frames,) mean square within each hop
    hop_s: float
    sample_sum: np.ndarray  # (channels,) sum of all samples (from the DC bins: Hann at 50 % sums to 1)


class SpectrumAnalyzer:
    """Streaming STFT accumulator over ``(channels, n)`` blocks."""

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = sample_rate
        self.channels = channels
        self.n_fft = fft_size(sample_rate)
        self.hop = self.n_fft // 2
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        self._to_bands = band_matrix(self.n_fft, sample_rate).astype(np.float32)
        # Parseval: mean square = 2 * sum(one-sided |X|^2) / (N * sum(w^2))
        self._scale = 2.0 / (self.n_fft * float(np.sum(self.window.astype(np.float64) ** 2)))
        bins = self.n_fft // 2 + 1
        self._ll = np.zeros(bins)
        self._rr = np.zeros(bins)
        self._lr = np.zeros(bins)
        self._frames = 0
        self._dc = np.zeros(channels)
        self._pending = np.zeros((channels, 0), dtype=np.float32)
        self._frame_bands: list[np.ndarray] = []
        self._frame_peak: list[np.ndarray] = []
        self._frame_ms: list[np.ndarray] = []
        self._started = False

    def process(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        if not self._started:
            # Half a frame of leading zeros so the first samples get full window weight.
            block = np.concatenate((np.zeros((self.channels, self.hop), np.float32), block), axis=1)
            self._started = True
        buf = np.concatenate((self._pending, block), axis=1)
        count = (buf.shape[1] - self.n_fft) // self.hop + 1
        if count <= 0:
            self._pending = buf
            return
        self._frames_from(buf, count)
        self._pending = buf[:, count * self.hop :]

    def _frames_from(self, buf: np.ndarray, count: int) -> None:
        frames = np.lib.stride_tricks.sliding_window_view(buf, self.n_fft, axis=1)[:, : count * self.hop : self.hop]
        spec = fft.rfft(frames * self.window, axis=-1)  # (ch, count, bins)
        self._dc += spec[:, :, 0].real.sum(axis=1)
        # Time-domain level per hop (the second half of each frame), for crest and envelope.
        hops = buf[:, self.hop : self.hop + count * self.hop].reshape(self.channels, count, self.hop)
        self._frame_peak.append(np.abs(hops).max(axis=(0, 2)))
        self._frame_ms.append(np.mean(np.square(hops, dtype=np.float64), axis=(0, 2)))
        if self.channels == 2:
            left, right = spec[0], spec[1]
            ll = left.real**2 + left.imag**2
            rr = right.real**2 + right.imag**2
            lr = left.real * right.real + left.imag * right.imag
            self._ll += ll.sum(axis=0)
            self._rr += rr.sum(axis=0)
            self._lr += lr.sum(axis=0)
            mid = (ll + rr + 2.0 * lr) * 0.25
        else:
            mid = spec[0].real ** 2 + spec[0].imag ** 2
            self._ll += mid.sum(axis=0)
        self._frame_bands.append((mid @ self._to_bands) * self._scale)
        self._frames += count

    def result(self) -> SpectrumResult:
        if self._pending.shape[1] > 0 or self._frames == 0:
            pad = self.n_fft - self.hop if self._frames else self.n_fft
            buf = np.concatenate((self._pending, np.zeros((self.channels, pad), np.float32)), axis=1)
            count = (buf.shape[1] - self.n_fft) // self.hop + 1
            self._frames_from(buf, count)
            self._pending = np.zeros((self.channels, 0), np.float32)
        frames = max(self._frames, 1)
        scale = self._scale / frames
        if self.channels == 2:
            mid = (self._ll + self._rr + 2.0 * self._lr) * 0.25
            side = (self._ll + self._rr - 2.0 * self._lr) * 0.25
        else:
            mid, side = self._ll, np.zeros_like(self._ll)
        to_bands = self._to_bands.astype(np.float64)
        mid_b, side_b = mid @ to_bands * scale, side @ to_bands * scale
        if self.channels == 2:
            ll_b, rr_b, lr_b = (v @ to_bands for v in (self._ll, self._rr, self._lr))
            corr_b = _safe_ratio(lr_b, np.sqrt(ll_b * rr_b), 1.0)
            corr = _safe_ratio(self._lr.sum(), np.sqrt(self._ll.sum() * self._rr.sum()), 1.0)
        else:
            corr_b, corr = np.ones_like(mid_b), 1.0
        width_b = _safe_ratio(side_b, mid_b + side_b, 0.0)
        # over the bands (20 Hz-20 kHz): a DC offset or subsonic rumble is not stereo width
        width = _safe_ratio(side_b.sum(), mid_b.sum() + side_b.sum(), 0.0)
        freqs = np.arange(mid.size) * self.sample_rate / self.n_fft
        centroid = _safe_ratio(float(np.sum(freqs * mid)), float(np.sum(mid)), 0.0)
        mid_db = power_db(mid_b)
        return SpectrumResult(
            mid_band_db=mid_db,
            side_band_db=power_db(side_b),
            correlation_band=np.clip(corr_b, -1.0, 1.0),
            width_band=np.clip(width_b, 0.0, 1.0),
            correlation=float(np.clip(corr, -1.0, 1.0)),
            width=float(np.clip(width, 0.0, 1.0)),
            tilt_db_per_octave=spectral_tilt(mid_db, self.sample_rate),
            centroid_hz=float(centroid),
            frame_band_db=power_db(np.concatenate(self._frame_bands)).astype(np.float32),
            frame_peak=np.concatenate(self._frame_peak),
            frame_mean_square=np.concatenate(self._frame_ms),
            hop_s=self.hop / self.sample_rate,
            sample_sum=self._dc.copy(),
        )


def _safe_ratio(num, den, empty):
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.full(np.broadcast(num, den).shape, float(empty)), where=den > 1e-20)
    return out if out.ndim else float(out)


def spectral_tilt(band_db: np.ndarray, sample_rate: int) -> float:
    """Least-squares slope of band level vs. log2 frequency, in dB per octave.

    Over the bands from 50 Hz to 16 kHz that lie below 0.45 x the sample rate. Pink noise
    reads about 0, white noise about +3 dB/octave.
    """
    centres = np.asarray(BAND_CENTRES_HZ)
    use = (centres >= TILT_RANGE_HZ[0]) & (centres <= TILT_RANGE_HZ[1]) & held_bands(sample_rate)
    use &= band_db > FLOOR_DB
    if use.sum() < 3:
        return 0.0
    slope = np.polyfit(np.log2(centres[use]), band_db[use], 1)[0]
    return float(slope)


def smooth_bands(values: np.ndarray, bands: int = 3) -> np.ndarray:
    """Moving average over ``bands`` neighbouring bands (edges repeated), same length."""
    pad = bands // 2
    values = np.asarray(values, dtype=np.float64)
    return np.convolve(np.pad(values, pad, mode="edge"), np.ones(bands) / bands, mode="valid")


def side_mid_ratio(width: float) -> float:
    """Side/mid amplitude ratio from the side share of power ``width`` = S / (M + S) (0..1)."""
    width = min(max(float(width), 1e-9), 1.0 - 1e-9)
    return float(np.sqrt(width / (1.0 - width)))


def side_share(ratio: float) -> float:
    """The side share of power S / (M + S) of a side/mid amplitude ``ratio``: the inverse of
    :func:`side_mid_ratio`."""
    return float(ratio) ** 2 / (1.0 + float(ratio) ** 2)


HELD_FRACTION = 0.45  # of the sample rate: bands centred above it are not held (the anti-alias roll-off)


def held_bands(sample_rate: float) -> np.ndarray:
    """The bands a signal at ``sample_rate`` can hold: centred at or below 0.45 x the rate."""
    return np.asarray(BAND_CENTRES_HZ) <= HELD_FRACTION * sample_rate


def shape_mask(sample_rate: int | None = None) -> np.ndarray:
    """Bands used for tonal balance: SHAPE_RANGE_HZ and held at the sample rate (:func:`held_bands`)."""
    centres = np.asarray(BAND_CENTRES_HZ)
    mask = (centres >= SHAPE_RANGE_HZ[0]) & (centres <= SHAPE_RANGE_HZ[1])
    return mask if sample_rate is None else mask & held_bands(sample_rate)


def band_shape(band_db: Sequence[float] | np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Band levels with their mean over ``mask`` removed (the overall level taken out)."""
    levels = np.asarray(band_db, dtype=np.float64)
    mask = shape_mask() if mask is None else mask
    return levels - float(np.mean(levels[mask]))
