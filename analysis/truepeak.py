"""True peak per ITU-R BS.1770-5 Annex 2: oversample with a polyphase FIR interpolator, take |max|.

The interpolator is a Kaiser-windowed sinc split into ``factor`` phases of ``TAPS_PER_PHASE``
taps each; phase p computes the samples at offset p/factor between input samples. Each
output is one dot product of the last ``TAPS_PER_PHASE`` inputs with one phase, done for all
phases at once as a small matrix product. Oversampling is 4x below 96 kHz, 2x below 192 kHz
and 1x at 192 kHz, as Annex 2 allows for higher input rates. Streaming: blocks of any size
give the same answer.

This module is a leaf (numpy only): every layer may use it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from mixbridge.analysis.blocks import chunks

TAPS_PER_PHASE = 16
KAISER_BETA = 8.0


_BLAS = ThreadpoolController()


def _one_blas_thread():
    """The interpolator's products are small: one BLAS thread is faster, and it never
    oversubscribes the cores when files are processed in parallel."""
    return _BLAS.limit(limits=1, user_api="blas")


def oversampling_factor(sample_rate: int) -> int:
    """4x below 96 kHz, 2x below 192 kHz, else 1x (BS.1770-5 Annex 2)."""
    if sample_rate < 96_000:
        return 4
    if sample_rate < 192_000:
        return 2
    return 1


@lru_cache(maxsize=8)
def polyphase_bank(factor: int, taps_per_phase: int = TAPS_PER_PHASE) -> np.ndarray:
    """Interpolator phases as a ``(taps_per_phase, factor)`` matrix.

    Column p holds the taps (oldest input first) that compute the value ``p/factor`` of a
    sample period after the centre of the tap window. Each phase is normalised to unity
    gain at DC.
    """
    n = factor * taps_per_phase
    # Centred on an upsampled sample, so phase p evaluates offset p/factor exactly
    # (phase 0 is the input sample itself), as in the BS.1770-5 Annex 2 interpolator.
    t = (np.arange(n) - n // 2) / factor
    h = np.sinc(t) * np.kaiser(n + 1, KAISER_BETA)[:n]
    # h[k*factor + p] multiplies x[m-k] for output (m, phase p); reorder to oldest-first.
    bank = h.reshape(taps_per_phase, factor)[::-1, :]
    bank = bank / bank.sum(axis=0, keepdims=True)
    return np.ascontiguousarray(bank, dtype=np.float32)


def amplitude_to_db(amplitude: float) -> float:
    """Linear amplitude -> dB (0 -> -inf)."""
    return float(20.0 * np.log10(amplitude)) if amplitude > 0 else -np.inf


class TruePeakMeter:
    """Streaming true-peak meter over ``(channels, n)`` blocks.

    The input is cut into rows of ``TAPS_PER_PHASE`` samples; every interpolated value of
    a row depends only on that row and the one before, so the interpolation is two matrix
    products per block (``rows @ A + previous_rows @ B``) with no copied windows.

    Only the rows that could raise the peak are interpolated, and the answer is exact: an
    interpolated value of row r is at most ``max|x|`` over rows r - 1 and r times the
    interpolator's largest absolute tap sum (:func:`_bound_gain`, 1.95 at 4x), so a row whose
    bound is under the peak found so far (at least the sample peak) cannot change it. Measured
    on music: 0.3–2 % of the rows of a mix or a gentle master are interpolated (a 3-minute
    mix: 0.60 → 0.18 s), 20 % of a dense mix, 40–44 % of a loud, limited master.
    """

    def __init__(self, sample_rate: int, channels: int):
        self.factor = oversampling_factor(sample_rate)
        self._row = TAPS_PER_PHASE
        self._current, self._previous = _row_matrices(self.factor, self._row)
        self._gain = _bound_gain(self.factor, self._row)
        self._prev_row = np.zeros((channels, self._row), dtype=np.float32)
        self._pending = np.zeros((channels, 0), dtype=np.float32)
        self.peak = np.zeros(channels)  # linear, per channel, interpolated
        self.sample_peak = np.zeros(channels)

    def process(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32)
        if block.shape[1] == 0:
            return
        self.sample_peak = np.maximum(self.sample_peak, np.abs(block).max(axis=1))
        if self.factor == 1:
            return
        buf = np.concatenate((self._pending, block), axis=1)
        channels, n = buf.shape
        rows = n // self._row
        if rows == 0:
            self._pending = buf
            return
        x = buf[:, : rows * self._row].reshape(channels, rows, self._row)
        with _one_blas_thread():
            self._interpolate(x)
        self._prev_row = x[:, -1, :].copy()
        self._pending = buf[:, rows * self._row :].copy()

    def _interpolate(self, x: np.ndarray) -> None:
        row_max = np.abs(x).max(axis=2)  # (channels, rows)
        before = np.abs(self._prev_row).max(axis=1)
        for c in range(x.shape[0]):
            reach = np.maximum(row_max[c], np.concatenate(([before[c]], row_max[c, :-1])))
            rows = np.flatnonzero(reach * self._gain > max(self.peak[c], self.sample_peak[c]))
            if rows.size == 0:
                continue
            previous = x[c, np.maximum(rows - 1, 0)]
            if rows[0] == 0:
                previous[0] = self._prev_row[c]
            y = x[c, rows] @ self._current + previous @ self._previous
            self.peak[c] = max(self.peak[c], float(y.max()), float(-y.min()))

    def finish(self) -> None:
        """Flush the interpolator: the last input samples also sit in later windows."""
        channels = self._prev_row.shape[0]
        peak = self.sample_peak.copy()
        self.process(np.zeros((channels, 2 * self._row), dtype=np.float32))
        self.sample_peak = peak

    @property
    def true_peak_dbtp(self) -> float:
        return amplitude_to_db(float(max(self.peak.max(), self.sample_peak.max())))


@lru_cache(maxsize=8)
def _bound_gain(factor: int, row: int) -> float:
    """The largest sum of absolute taps over the interpolated values of a row (rows r - 1 and
    r together), with a margin for float32 rounding: ``|y| <= max|x| * gain``."""
    current, previous = _row_matrices(factor, row)
    taps = np.abs(current.astype(np.float64)).sum(axis=0) + np.abs(previous.astype(np.float64)).sum(axis=0)
    return float(taps.max()) * (1.0 + 1e-4)


@lru_cache(maxsize=8)
def _row_matrices(factor: int, row: int) -> tuple[np.ndarray, np.ndarray]:
    """``A, B`` of shape ``(row, factor * row)`` so that ``y[r] = x[r] @ A + x[r-1] @ B``.

    ``y[r, p*row + i]`` is phase p of the window ending at sample i of row r (phase-major,
    so each phase is a contiguous run).
    """
    bank = polyphase_bank(factor, row)  # (taps, factor), oldest tap first
    taps = bank.shape[0]
    a = np.zeros((row, row * factor), dtype=np.float32)
    b = np.zeros((row, row * factor), dtype=np.float32)
    for i in range(row):
        for k in range(taps):
            j = i - (taps - 1) + k  # input index relative to the row start
            target = a if j >= 0 else b
            target[j % row, i::row] = bank[k]
    return a, b


def true_peak_dbtp(samples: np.ndarray, sample_rate: int) -> float:
    """True peak of a ``(channels, n)`` array in dBTP, max over channels (-inf for silence)."""
    samples = np.atleast_2d(samples)
    meter = TruePeakMeter(sample_rate, samples.shape[0])
    for part in chunks(samples, 10 * int(sample_rate)):
        meter.process(part)
    meter.finish()
    return meter.true_peak_dbtp


class PeakEnvelopeMeter:
    """Streaming :func:`peak_envelope`: feed ``(channels, n)`` chunks of any sizes; each call
    returns the block maxima it could complete. The interpolation around a sample needs
    ``margin`` samples on either side, so the output lags the input by up to ``margin + block``
    samples; :meth:`finish` flushes the rest (the signal counts as zero past its ends, as in
    :func:`peak_envelope`).
    """

    def __init__(self, sample_rate: int, channels: int, block: int = 1):
        self.block = int(block)
        self._factor = oversampling_factor(sample_rate)
        delay = int(np.ceil((TAPS_PER_PHASE * self._factor - 1) / (2 * self._factor)))
        self._margin = TAPS_PER_PHASE + delay + 1 if self._factor > 1 else 0
        # buffer = margin samples already reported (zeros before the start) + samples not yet reported
        self._buf = np.zeros((channels, self._margin), dtype=np.float32)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Maxima (linear, float32) of the blocks completed so far and not yet returned."""
        self._buf = np.concatenate((self._buf, np.asarray(chunk, dtype=np.float32)), axis=1)
        ready = self._buf.shape[1] - 2 * self._margin
        return self._report(ready - ready % self.block)

    def finish(self) -> np.ndarray:
        """Maxima of the remaining blocks, the last one possibly shorter."""
        channels = self._buf.shape[0]
        self._buf = np.concatenate((self._buf, np.zeros((channels, self._margin), np.float32)), axis=1)
        return self._report(self._buf.shape[1] - 2 * self._margin)

    def _report(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros(0, np.float32)
        start, stop = self._margin, self._margin + count
        env = np.abs(self._buf[:, start:stop]).max(axis=0)
        if self._factor > 1:  # phase 0 of the interval before each sample is the sample before it
            np.maximum(env, np.abs(self._buf[:, start - 1: stop - 1]).max(axis=0), out=env)
            with _one_blas_thread():
                _envelope_chunk(self._buf, env, start, stop, self._factor)
        self._buf = self._buf[:, count:].copy()
        pad = (-env.size) % self.block
        return np.concatenate((env, np.zeros(pad, np.float32))).reshape(-1, self.block).max(axis=1)


def peak_envelope(samples: np.ndarray, sample_rate: int, block: int = 1) -> np.ndarray:
    """Linked true-peak envelope: for each sample, the largest |value| over all channels at
    the sample itself and at the interpolated points within one sample period either side;
    the maximum over consecutive ``block``-sample blocks (``block=1``: per sample).

    Computed in chunks by a :class:`PeakEnvelopeMeter`, so temporary memory stays at one chunk.

    Returns
    -------
    np.ndarray, shape (ceil(n / block),), float32, linear amplitude
        What a true-peak limiter must keep under its ceiling.
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    meter = PeakEnvelopeMeter(sample_rate, samples.shape[0], block)
    out = [meter.process(part) for part in chunks(samples, block * max(1, (1 << 20) // block))]
    out.append(meter.finish())
    return np.concatenate(out)


def _envelope_chunk(samples: np.ndarray, env: np.ndarray, start: int, stop: int, factor: int) -> None:
    """Raise ``env`` (the envelope of samples[start:stop] and of the samples one before them) to
    the interpolated peaks next to each sample."""
    channels, n = samples.shape
    row = TAPS_PER_PHASE
    current, previous = _row_matrices(factor, row)
    # The window ending at sample m interpolates between samples m - delay and m - delay + 1.
    delay = int(np.ceil((row * factor - 1) / (2 * factor)))
    lo, hi = start - (row + delay + 1), stop + row + delay + 1
    seg = np.zeros((channels, hi - lo + (-(hi - lo)) % row), dtype=np.float32)
    seg[:, max(0, -lo) : min(n, hi) - lo] = samples[:, max(0, lo) : min(n, hi)]
    between = np.zeros(seg.shape[1], dtype=np.float32)  # between[i]: max |y| in (i, i+1)
    for c in range(channels):
        rows = seg[c].reshape(-1, row)
        peak = np.zeros(rows.shape, dtype=np.float32)  # per window end, max over phases
        for p in range(1, factor):  # phase 0 is the sample itself (:func:`polyphase_bank`): the caller has it
            y = rows @ current[:, p * row : (p + 1) * row]
            y[1:] += rows[:-1] @ previous[:, p * row : (p + 1) * row]
            np.maximum(peak, np.abs(y, out=y), out=peak)
        y = peak.reshape(-1)
        np.maximum(between[: y.size - delay], y[delay:], out=between[: y.size - delay])
    i = np.arange(start, stop) - lo
    np.maximum(env, np.maximum(between[i], between[i - 1]), out=env)
