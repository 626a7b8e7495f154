"""The match EQ: a 31-band graphic EQ on the analyzer's third-octave centres (20 Hz - 20 kHz),
rendered as one minimum-phase FIR filter.

Its gain curve runs straight (in dB, on a log-frequency axis) between nodes at the band
centres, and holds the end nodes below 20 Hz and above 20 kHz. The nodes are solved so that
each band's power-averaged gain, as the analyzer measures it (its band matrix), is the band's
setting: the settings read like a graphic EQ's faders, and the judgment can set them from a
measured band difference directly. (A node at its band's setting would not do: a lone
+6 dB band would measure +4.6 dB, its skirts sloping inside the band.)

Minimum phase, so it adds no latency and no pre-ringing (a mastering EQ's phase, as the
parametric stages' biquads have). It runs by overlap-add in scipy's float32 FFT, between the
pedalboard stages, and not in pedalboard's ``Convolution``: measured on pedalboard 0.9.26, that
plugin normalises any impulse response (output = IR x 0.125 / its norm), and takes 1.0 s on a
3-minute stereo track against 0.25 s here (numpy's float64 transforms take 0.6 s). Through VST3
plugins the stage runs on ZamGEQ31 (``presets/plugins/zam.toml``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from mixbridge.analysis import fft
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_matrix, held_bands

FIR_SECONDS = 0.3  # the filter's length, rounded up to a power of two (0.37 s at 44.1 kHz: 7 periods of 20 Hz)
MAX_FIR_TAPS = 1 << 15  # at 96 kHz and over: 0.34 s or less (the response measurement's FFT holds it)
DESIGN_FFT_SECONDS = 2.0  # the design grid: 0.5 Hz apart
OLA_FFT = 1 << 17  # the overlap-add transform, at least 2x the filter (hop: 7/8 of it at 44.1 kHz)
NODE_ITERATIONS = 6  # node solve: each round takes the band error to under a third


def curve_db(nodes_db, freqs_hz: np.ndarray) -> np.ndarray:
    """The gain curve (dB) at ``freqs_hz`` through ``nodes_db`` at the band centres: straight
    between them on log frequency, the end nodes held beyond them (0 Hz included)."""
    log_f = np.log2(np.maximum(np.asarray(freqs_hz, dtype=np.float64), 1e-3))
    return np.interp(log_f, np.log2(BAND_CENTRES_HZ), np.asarray(nodes_db, dtype=np.float64))


def design_db(gains_db, sample_rate: int, n_fft: int) -> np.ndarray:
    """The stage's gain (dB) on the bins of an ``n_fft`` transform: the curve through the nodes
    whose band averages are ``gains_db``. Bands the rate cannot hold (over 0.45 x the rate,
    :func:`analysis.spectrum.held_bands`) have no say: the top held node runs on to Nyquist."""
    matrix = band_matrix(n_fft, sample_rate)
    weight = matrix.sum(axis=0)
    held = held_bands(sample_rate) & (weight > 0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    gains = np.asarray(gains_db, dtype=np.float64)
    nodes = gains.copy()
    top = int(np.flatnonzero(held)[-1]) if np.any(held) else -1
    for _ in range(NODE_ITERATIONS):
        nodes[top + 1:] = nodes[top] if top >= 0 else 0.0
        power = 10.0 ** (curve_db(nodes, freqs) / 10.0)
        measured = 10.0 * np.log10((power @ matrix)[held] / weight[held])
        nodes[held] += gains[held] - measured
    nodes[top + 1:] = nodes[top] if top >= 0 else 0.0
    return curve_db(nodes, freqs)


def fir_taps(sample_rate: int) -> int:
    return min(1 << math.ceil(math.log2(FIR_SECONDS * sample_rate)), MAX_FIR_TAPS)


def overlap_add_sizes(sample_rate: int) -> tuple[int, int]:
    """The overlap-add's transform and hop (frames) at ``sample_rate``. Blocks of a multiple of
    the hop give the same samples as one block (the segments fall in the same places)."""
    taps = fir_taps(sample_rate)
    size = max(OLA_FFT, 1 << math.ceil(math.log2(2 * taps)))
    return size, size - taps + 1


@lru_cache(maxsize=16)
def impulse_response(gains_db: tuple[float, ...], sample_rate: int) -> np.ndarray:
    """The minimum-phase FIR (float64 taps) for ``gains_db`` (31 band gains) at ``sample_rate``.

    Built by the real cepstrum (homomorphic) method on a fine grid, then cut to
    :func:`fir_taps` with a short fade-out."""
    n = 1 << math.ceil(math.log2(DESIGN_FFT_SECONDS * sample_rate))
    log_mag = design_db(gains_db, sample_rate, n) * (math.log(10.0) / 20.0)
    cepstrum = np.fft.irfft(log_mag, n)
    folded = np.zeros(n)
    folded[0] = cepstrum[0]
    folded[1: n // 2] = 2.0 * cepstrum[1: n // 2]
    folded[n // 2] = cepstrum[n // 2]
    h = np.fft.irfft(np.exp(np.fft.rfft(folded)), n)
    taps = fir_taps(sample_rate)
    h = h[:taps].copy()
    fade = taps // 8
    h[-fade:] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, math.pi, fade)))
    return h


class MatchEqFilter:
    """Streaming FIR: feed consecutive ``(channels, n)`` blocks of any size; the concatenated
    output equals the full convolution of the whole signal, cut to its length."""

    def __init__(self, gains_db, sample_rate: int):
        h = impulse_response(tuple(float(g) for g in gains_db), int(sample_rate))
        self._taps = h.size
        self._fft, self._hop = overlap_add_sizes(int(sample_rate))
        self._spectrum = fft.rfft(h.astype(np.float32), self._fft)
        self._tail: np.ndarray | None = None  # (channels, taps - 1): what earlier blocks still owe

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32)
        channels, n = x.shape
        if self._tail is None:
            self._tail = np.zeros((channels, self._taps - 1), dtype=np.float32)
        out = np.empty((channels, n), dtype=np.float32)
        for start in range(0, n, self._hop):
            seg = x[:, start: start + self._hop]
            m = seg.shape[1]
            y = fft.irfft(fft.rfft(seg, self._fft, axis=1) * self._spectrum, self._fft, axis=1)[:, : m + self._taps - 1]
            y[:, : self._taps - 1] += self._tail
            out[:, start: start + m] = y[:, :m]
            self._tail = y[:, m:]
        return out
