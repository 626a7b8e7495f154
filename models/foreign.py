"""Foreign degradations for training: real recordings degraded by processors outside
Mixbridge's chain, with the original recording as the target (issue 11).

The self-supervised examples of :mod:`mixbridge.models.data` are renders of the chain's own
stages, so the model only ever saw differences the chain can make. Here a real clip ``y`` is
degraded into ``x`` by one of three families, and the example is (features of ``x``, the
original's descriptor) -> the settings that undo what the chain can undo:

- ``curve``: a random smooth tonal curve (gains at log-spaced nodes, interpolated in log
  frequency), applied as a zero-phase FFT filter, and a mid/side width change half the time;
- ``dynamics``: pedalboard's ``Compressor`` with drawn threshold, ratio and timing, a
  ``Limiter`` after it half the time, and a milder curve;
- ``space``: pedalboard's ``Delay`` (an echo) or a ``Reverb`` of drawn room and damping, a
  width change, and a milder curve.

None of them is the chain with its fixed layout (the reverb is pedalboard's algorithm, as the
chain's, but with drawn room and damping, applied as damage), and none is a family of the
out-of-family evaluation (ffmpeg, sox, ZAM VST3s: :mod:`mixbridge.assistant.restoration`).

The label is the correction the chain can make: the EQ that inverts the curve (the curve's
band response, negated, fitted on the model's fixed layout with a free level, as the trim
sets the level), the side gain that undoes the width change, and the compressor and reverb
off: the chain cannot expand or de-reverberate, so these labels teach the model not to add
either when the target is more dynamic or drier than the mix.
"""

from __future__ import annotations

import math

import numpy as np
import pedalboard

from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import band_matrix, band_power_db, shape_mask
from mixbridge.models.baseline import EQ_LAYOUT, RESPONSE_FFT, fit_eq

FAMILIES = ("curve", "dynamics", "space")
CURVE_NODES_HZ = np.geomspace(40.0, 16000.0, 7)
CURVE_DB = {"curve": 8.0, "dynamics": 4.0, "space": 4.0}  # the largest node gain per family
WIDTH_RANGE = (0.5, 1.6)  # side gain of a width change
PAD_S = 0.5  # zero padding around the clip for the FFT filter (no wrap-around)


def curve_db(freqs_hz: np.ndarray, node_gains_db: np.ndarray) -> np.ndarray:
    """The tonal curve (dB) at ``freqs_hz``: node gains interpolated in log frequency, flat
    beyond the outer nodes."""
    log_f = np.log2(np.maximum(np.asarray(freqs_hz, np.float64), 1.0))
    return np.interp(log_f, np.log2(CURVE_NODES_HZ), node_gains_db)


def apply_curve(samples: np.ndarray, sample_rate: int, node_gains_db: np.ndarray) -> np.ndarray:
    """``samples`` (channels, n) through the curve, zero phase."""
    pad = int(PAD_S * sample_rate)
    n = samples.shape[1] + 2 * pad
    spectrum = np.fft.rfft(np.pad(samples.astype(np.float64), ((0, 0), (pad, pad))), axis=1)
    gain = 10.0 ** (curve_db(np.fft.rfftfreq(n, 1.0 / sample_rate), node_gains_db) / 20.0)
    return np.fft.irfft(spectrum * gain, n, axis=1)[:, pad:pad + samples.shape[1]].astype(np.float32)


def curve_band_db(sample_rate: int, node_gains_db: np.ndarray) -> np.ndarray:
    """The curve's gain per analysis band (power-averaged over each band's bins)."""
    power = 10.0 ** (curve_db(np.fft.rfftfreq(RESPONSE_FFT, 1.0 / sample_rate), node_gains_db) / 10.0)
    return band_power_db(power, band_matrix(RESPONSE_FFT, sample_rate))


def inverse_eq_gains(sample_rate: int, node_gains_db: np.ndarray, limit_db: float) -> dict[str, float]:
    """The model's EQ gains (stage -> dB, on its fixed layout, within ±``limit_db``) that best
    undo the curve."""
    mask = shape_mask(sample_rate)
    gains = fit_eq(-curve_band_db(sample_rate, node_gains_db), mask, sample_rate,
                   band_matrix(RESPONSE_FFT, sample_rate), free_level=True, limit_db=limit_db,
                   layout=EQ_LAYOUT)
    return {f"{stage}.gain_db": gain for stage, gain in gains.items()}


def _width(samples: np.ndarray, side_gain: float) -> np.ndarray:
    if samples.shape[0] != 2:
        return samples
    mid, side = (samples[0] + samples[1]) / 2.0, (samples[0] - samples[1]) / 2.0 * side_gain
    return np.stack([mid + side, mid - side]).astype(np.float32)


def degrade(samples: np.ndarray, sample_rate: int, rng: np.random.Generator, family: str,
            eq_limit_db: float) -> tuple[np.ndarray, dict[str, float], str]:
    """``samples`` degraded by ``family``: (degraded samples, the EQ gains (within
    ±``eq_limit_db``) and stereo width that undo it, a description). The caller completes the
    label (compressor and reverb off)."""
    nodes = rng.uniform(-CURVE_DB[family], CURVE_DB[family], CURVE_NODES_HZ.size)
    x = apply_curve(samples, sample_rate, nodes)
    side_gain = 1.0
    said = [f"curve {' '.join(f'{g:+.1f}' for g in nodes)} dB"]
    if family == "dynamics":
        lufs = measure_loudness(x, sample_rate).integrated_lufs
        lufs = lufs if math.isfinite(lufs) else -20.0
        threshold_db = float(lufs + rng.uniform(-12.0, 0.0))
        ratio = float(math.exp(rng.uniform(math.log(2.0), math.log(10.0))))
        attack_ms, release_ms = float(rng.uniform(0.5, 30.0)), float(rng.uniform(30.0, 400.0))
        board: list[pedalboard.Plugin] = [pedalboard.Compressor(threshold_db=threshold_db, ratio=ratio, attack_ms=attack_ms,
                                       release_ms=release_ms)]
        said.append(f"compressor {threshold_db:.0f} dB {ratio:.1f}:1 {attack_ms:.1f}/{release_ms:.0f} ms")
        if rng.random() < 0.5:
            limit_db = float(rng.uniform(3.0, 10.0))
            board.append(pedalboard.Limiter(threshold_db=threshold_db + 6.0 - limit_db,
                                            release_ms=float(rng.uniform(20.0, 200.0))))
            said.append(f"limiter at {threshold_db + 6.0 - limit_db:.0f} dB")
        x = pedalboard.Pedalboard(board)(x, sample_rate)
    elif family == "space":
        if rng.random() < 0.5:
            delay_s, feedback, mix = float(rng.uniform(0.04, 0.25)), float(rng.uniform(0.0, 0.35)), \
                float(rng.uniform(0.1, 0.35))
            x = pedalboard.Delay(delay_seconds=delay_s, feedback=feedback, mix=mix)(x, sample_rate)
            said.append(f"echo {delay_s * 1000:.0f} ms feedback {feedback:.2f} mix {mix:.2f}")
        else:
            room, damping, wet = float(rng.uniform(0.2, 0.95)), float(rng.uniform(0.0, 1.0)), \
                float(rng.uniform(0.05, 0.35))
            x = pedalboard.Reverb(room_size=room, damping=damping, wet_level=wet, dry_level=1.0 - wet / 2.0,
                                  width=float(rng.uniform(0.5, 1.0)))(x, sample_rate)
            said.append(f"reverb room {room:.2f} damping {damping:.2f} wet {wet:.2f}")
    if family == "space" or rng.random() < 0.5:
        side_gain = float(rng.uniform(*WIDTH_RANGE))
        x = _width(x, side_gain)
        said.append(f"side gain {side_gain:.2f}")
    undo = {**inverse_eq_gains(sample_rate, nodes, eq_limit_db), "stereo.width_percent": 100.0 / side_gain}
    return np.asarray(x, np.float32), undo, ", ".join(said)
