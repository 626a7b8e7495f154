"""The true-peak limiter and the finalizer: ceilings held on adversarial signals, loudness
targets met to +-0.05 LU by our meter and +-0.1 LU by libebur128 (pyebur128)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from conftest import ebur128_true_peak_dbtp, make_noise

from mixbridge.analysis.errors import InvalidAudioError
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.truepeak import peak_envelope, true_peak_dbtp
from mixbridge.effects.finalize import MAX_LIMITING_DB, FinalizeSpec, finalize
from mixbridge.effects.limiter import TruePeakLimiter, block_size

RATES = (8000, 44100, 48000, 96000)
INDEPENDENT_TP_TOLERANCE_DB = 0.2  # two BS.1770 interpolators may differ by this (EBU Tech 3341: +0.2/-0.4 dB)


def _limit(x: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> tuple[np.ndarray, np.ndarray]:
    """Run the limiter's plan on ``x``; return (limited samples, per-sample linear gain)."""
    block = block_size(sample_rate)
    env = peak_envelope(x, sample_rate, block)
    env_db = 20.0 * np.log10(np.maximum(env, 1e-12))
    limiter = TruePeakLimiter(ceiling_dbtp)
    ones = np.ones((1, x.shape[1]), dtype=np.float32)
    gain = TruePeakLimiter.apply(ones, limiter.block_gain_db(env_db, sample_rate), block)[0]
    return (x * gain).astype(np.float32), gain


def _lufs(x: np.ndarray, sample_rate: int) -> float:
    return measure_loudness(x, sample_rate).integrated_lufs


# ---- adversarial signals for the limiter ------------------------------------------------------
def _clicks(sr: int, rng) -> np.ndarray:
    """Isolated full-scale single-sample clicks, at the edges too, some in one channel only."""
    n = sr
    x = np.zeros((2, n), dtype=np.float32)
    for i, pos in enumerate((0, 1, 7, n // 3, n // 2 + 1, n - 2, n - 1)):
        x[i % 2 if i in (2, 3) else slice(None), pos] = -1.0 if i % 2 else 1.0
    return x


def _square(freq_hz: float):
    def make(sr: int, rng) -> np.ndarray:
        t = np.arange(sr) / sr
        return np.repeat(np.sign(np.sin(2 * np.pi * freq_hz * t + 0.1))[None], 2, axis=0).astype(np.float32)
    make.__name__ = f"square-{freq_hz:g}Hz"
    return make


def _square_near_quarter_rate(sr: int, rng) -> np.ndarray:
    return _square(sr / 4.0 - 1.0)(sr, rng)


def _quarter_rate_sine_45(sr: int, rng) -> np.ndarray:
    """fs/4 at 45 deg: every sample is +-0.707 while the waveform peaks at 1.0 (+3 dB over)."""
    n = np.arange(sr)
    return np.repeat(np.sin(np.pi / 2 * n + np.pi / 4)[None], 2, axis=0).astype(np.float32)


def _noise_12_db_over(sr: int, rng) -> np.ndarray:
    """Dense white noise whose true peak is 12 dB over a -1 dBTP ceiling."""
    x = rng.standard_normal((2, sr))
    return (x * 10.0 ** ((11.0 - true_peak_dbtp(x, sr)) / 20.0)).astype(np.float32)


def _burst_after_silence(sr: int, rng) -> np.ndarray:
    """Silence, then a 5 ms burst of full-scale-plus noise: the look-ahead must see it coming."""
    x = np.zeros((2, sr), dtype=np.float32)
    m = sr // 200
    x[:, sr // 2 : sr // 2 + m] = 2.0 * rng.standard_normal((2, m))
    return x


SIGNALS = (_clicks, _square(50.0), _square(997.0), _square_near_quarter_rate, _quarter_rate_sine_45,
           _noise_12_db_over, _burst_after_silence)


@pytest.mark.parametrize("sample_rate", RATES + (192000,))
@pytest.mark.parametrize("make", SIGNALS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("ceiling", (-1.0, -6.0))
def test_limiter_keeps_the_true_peak_under_the_ceiling(make, sample_rate, ceiling, rng):
    x = make(sample_rate, rng)
    y, gain = _limit(x, sample_rate, ceiling)
    assert y.shape == x.shape
    assert np.all(gain <= 1.0) and np.all(gain > 0.0)
    # the planned guarantee: the input's envelope times the gain stays under the ceiling
    planned = peak_envelope(x, sample_rate).astype(np.float64) * gain
    assert 20.0 * np.log10(planned.max()) <= ceiling + 1e-4
    # and the meter on the limited output agrees (gain modulation may add a few thousandths)
    out_tp = true_peak_dbtp(y, sample_rate)
    assert out_tp <= ceiling + 0.01, f"limited output reads {out_tp:.4f} dBTP over a {ceiling} ceiling"
    if true_peak_dbtp(x, sample_rate) > ceiling:  # limited to the ceiling, not far below it
        assert out_tp >= ceiling - 0.1


def test_limiter_leaves_a_signal_under_the_ceiling_untouched(noise):
    x = noise(48000, 1.0, -30.0, 2).astype(np.float32)
    y, gain = _limit(x, 48000, -1.0)
    np.testing.assert_array_equal(gain, 1.0)
    np.testing.assert_array_equal(y, x)


def test_limiter_is_linked_across_channels():
    sr = 48000
    x = np.zeros((2, sr), dtype=np.float32)
    x[0] = 0.25 * np.sin(2 * np.pi * 100.0 * np.arange(sr) / sr)
    x[1, sr // 2] = 1.0  # a click in the right channel only
    y, gain = _limit(x, sr, -6.0)
    np.testing.assert_allclose(y[0], x[0] * gain)  # the left channel ducks with it: image kept
    assert gain.min() < 10 ** (-5.0 / 20.0)


def test_limiter_gain_recovers_after_a_click():
    """Look-ahead 5 ms before, release at 40 dB/s after: 6 dB of reduction is gone in ~0.15 s."""
    sr = 48000
    x = np.zeros((1, 2 * sr), dtype=np.float32)
    x[0] = 0.01
    x[0, sr] = 1.0
    _, gain = _limit(x, sr, -6.0)
    assert np.all(gain[: sr - int(0.01 * sr)] == 1.0)  # nothing long before the click
    assert 20 * np.log10(gain[sr]) <= -6.0 + 1e-3
    assert np.all(gain[sr + int(0.2 * sr):] == 1.0)  # fully released 200 ms after


# ---- finalizer material ---------------------------------------------------------------------
def _pink(rng, sr: int, seconds: float, channels: int) -> np.ndarray:
    return make_noise(rng, sr, seconds, -20.0, channels, color="pink")


def _dynamic(rng, sr: int, channels: int) -> np.ndarray:
    """5 s: a quiet passage (pink noise bed at -40 dBFS RMS), then loud drum-like hits on it."""
    seconds = 5.0
    x = make_noise(rng, sr, seconds, -40.0, channels, color="pink")
    m = int(0.15 * sr)
    t = np.arange(m) / sr
    env = np.exp(-t / 0.03)
    for k, start in enumerate(np.arange(2.5, seconds - 0.3, 0.25)):
        i = int(start * sr)
        hit = 0.5 * env * np.sin(2 * np.pi * (60 + 40 * (k % 3)) * t) + 0.15 * env * rng.standard_normal(m)
        x[:, i : i + m] += hit
    return x


MATERIALS = {
    "dynamic": lambda rng, sr: _dynamic(rng, sr, 2),
    "dynamic-mono": lambda rng, sr: _dynamic(rng, sr, 1),
    "dense": lambda rng, sr: _pink(rng, sr, 4.0, 2),
}
TARGETS = ((-23.0, -1.0), (-16.0, -1.0), (-14.0, -1.0), (-9.0, -0.3))


def _check(result, x, sr, spec: FinalizeSpec, ebur128_lufs) -> None:
    """What every finalize result must satisfy."""
    out = result.samples
    assert out.shape == x.shape
    assert np.isfinite(out).all()
    measured = _lufs(out, sr)
    tp = true_peak_dbtp(out, sr)
    assert result.integrated_lufs == pytest.approx(measured, abs=1e-3)
    assert result.true_peak_dbtp == pytest.approx(tp, abs=1e-3)
    assert tp <= spec.ceiling_dbtp, f"true peak {tp:.3f} dBTP over the {spec.ceiling_dbtp} ceiling"
    independent = ebur128_true_peak_dbtp(out, sr)  # not the interpolator the limiter uses
    assert independent <= spec.ceiling_dbtp + INDEPENDENT_TP_TOLERANCE_DB, (
        f"libebur128 reads {independent:.3f} dBTP over the {spec.ceiling_dbtp} ceiling")
    assert result.limiting_db <= spec.max_limiting_db + 0.05, "limiting budget exceeded"

    # A target that plain gain reaches without crossing the ceiling needs no limiting at all.
    gain_only = _lufs(x, sr) + spec.ceiling_dbtp - true_peak_dbtp(x, sr)
    if spec.target_lufs <= gain_only - 0.1:
        assert not result.warnings, (
            f"target {spec.target_lufs} is reachable by gain alone (up to {gain_only:.2f} LUFS) "
            f"but the finalizer warned: {result.warnings}; it delivered {measured:.2f} LUFS with "
            f"{result.limiting_db:.1f} dB of limiting")
        assert result.limiting_db <= 0.1

    if result.warnings:
        assert measured < spec.target_lufs
        stopped = re.search(r"stopped at (-?\d+\.\d) LUFS", " ".join(result.warnings))
        assert stopped, result.warnings
        assert float(stopped.group(1)) == pytest.approx(measured, abs=0.15), "the warning misreports the result"
    else:
        assert measured == pytest.approx(spec.target_lufs, abs=0.05)
        assert ebur128_lufs(out, sr) == pytest.approx(spec.target_lufs, abs=0.1)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("material", sorted(MATERIALS))
@pytest.mark.parametrize("target,ceiling", TARGETS)
def test_finalize_meets_the_target(material, sample_rate, target, ceiling, rng, ebur128_lufs):
    x = MATERIALS[material](rng, sample_rate).astype(np.float32)
    spec = FinalizeSpec(target, ceiling)
    _check(finalize(x, sample_rate, spec), x, sample_rate, spec, ebur128_lufs)


def _quiet_verse_loud_chorus(rng, sr: int, channels: int) -> np.ndarray:
    """10 s: 8 s of a quiet pink-noise bed (-40 dBFS RMS), then a 2 s chorus of loud 80 Hz hits
    (8 per second) on top. Its loudness is the chorus's: the verse is under the relative gate."""
    seconds = 10.0
    x = make_noise(rng, sr, seconds, -40.0, channels, color="pink")
    m = int(0.1 * sr)
    t = np.arange(m) / sr
    for start in np.arange(seconds - 2.0, seconds - 0.1, 0.125):
        i = int(start * sr)
        x[:, i : i + m] += 0.9 * np.exp(-t / 0.02) * np.sin(2 * np.pi * 80.0 * t)
    return x.astype(np.float32)


@pytest.mark.parametrize("sample_rate,channels,below_lu",
                         [(44100, 1, 1.0), (48000, 2, 1.0), (44100, 2, 4.0), (96000, 1, 4.0)])
def test_a_target_below_the_input_is_met_by_gain_alone(below_lu, channels, sample_rate, rng, ebur128_lufs):
    """Turning a track down never needs limiting: the finalizer must not decide, from the
    loudness it would reach at its largest gain, that the target is out of reach (loudness
    is not monotone in gain once the limiter works: the quiet verse rises above the relative
    gate while the chorus is held at the ceiling)."""
    x = _quiet_verse_loud_chorus(rng, sample_rate, channels)
    assert true_peak_dbtp(x, sample_rate) < -1.5  # already under the ceiling
    target = round(_lufs(x, sample_rate) - below_lu, 1)
    spec = FinalizeSpec(target, -1.0)
    result = finalize(x, sample_rate, spec)
    measured = _lufs(result.samples, sample_rate)
    assert not result.warnings and result.limiting_db <= 0.01, (
        f"input {_lufs(x, sample_rate):.2f} LUFS at {true_peak_dbtp(x, sample_rate):.2f} dBTP, target {target}: "
        f"got {measured:.2f} LUFS with {result.limiting_db:.1f} dB of limiting and warnings {result.warnings}")
    assert result.gain_db == pytest.approx(-below_lu, abs=0.1)
    _check(result, x, sample_rate, spec, ebur128_lufs)


@pytest.mark.parametrize("sample_rate", RATES)
def test_dynamic_material_at_minus_9_needs_more_than_the_budget(sample_rate, rng, ebur128_lufs):
    """Hits 30 dB over a quiet bed: -9 LUFS would take far more than 10 dB of limiting."""
    x = _dynamic(rng, sample_rate, 2).astype(np.float32)
    spec = FinalizeSpec(-9.0, -0.3)
    result = finalize(x, sample_rate, spec)
    assert result.warnings and "limiting" in result.warnings[0]
    assert result.limiting_db <= MAX_LIMITING_DB + 0.05
    _check(result, x, sample_rate, spec, ebur128_lufs)


@pytest.mark.parametrize("budget", (3.0, 6.0))
def test_a_smaller_limiting_budget_is_respected(budget, rng, ebur128_lufs):
    x = _pink(rng, 48000, 4.0, 2).astype(np.float32)
    spec = FinalizeSpec(-9.0, -1.0, max_limiting_db=budget)
    result = finalize(x, 48000, spec)
    assert result.warnings
    assert result.limiting_db == pytest.approx(budget, abs=0.05)
    _check(result, x, 48000, spec, ebur128_lufs)


def test_very_quiet_input_is_brought_up(rng, ebur128_lufs):
    x = _pink(rng, 48000, 4.0, 2)
    x = (x * 10.0 ** ((-45.0 - _lufs(x, 48000)) / 20.0)).astype(np.float32)
    assert _lufs(x, 48000) == pytest.approx(-45.0, abs=0.01)
    spec = FinalizeSpec(-14.0, -1.0)
    result = finalize(x, 48000, spec)
    assert not result.warnings
    assert result.gain_db > 28.0
    _check(result, x, 48000, spec, ebur128_lufs)


@pytest.mark.parametrize("sample_rate", (44100, 96000))
def test_very_loud_input_is_turned_down_without_limiting(sample_rate, rng, ebur128_lufs):
    x = np.tanh(4.0 * _pink(rng, sample_rate, 4.0, 2) * 10.0)  # a squashed, -6 LUFS "master"
    x = (x * 10.0 ** ((-6.0 - _lufs(x, sample_rate)) / 20.0)).astype(np.float32)
    assert _lufs(x, sample_rate) == pytest.approx(-6.0, abs=0.01)
    spec = FinalizeSpec(-14.0, -1.0)
    result = finalize(x, sample_rate, spec)
    assert not result.warnings
    assert result.gain_db == pytest.approx(-8.0, abs=0.05)
    assert result.limiting_db <= 0.01
    _check(result, x, sample_rate, spec, ebur128_lufs)


def test_mono_stays_mono(rng, ebur128_lufs):
    x = _pink(rng, 44100, 4.0, 1).astype(np.float32)
    spec = FinalizeSpec(-16.0, -1.0)
    result = finalize(x, 44100, spec)
    assert result.samples.shape == (1, x.shape[1])
    _check(result, x, 44100, spec, ebur128_lufs)


def test_finalize_does_not_modify_its_input(rng):
    x = _pink(rng, 48000, 2.0, 2).astype(np.float32)
    before = x.copy()
    finalize(x, 48000, FinalizeSpec(-9.0, -1.0))
    np.testing.assert_array_equal(x, before)


# ---- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", (1, 2))
def test_silent_input_is_refused(channels):
    with pytest.raises(InvalidAudioError) as err:
        finalize(np.zeros((channels, 3 * 48000), dtype=np.float32), 48000, FinalizeSpec(-14.0, -1.0), "quiet.wav")
    assert "quiet.wav" in str(err.value) and err.value.exit_code == 5


def test_input_under_the_gate_is_refused():
    x = np.full((2, 3 * 48000), 1e-5, dtype=np.float32) * np.sin(np.arange(3 * 48000) / 7.0)
    assert not math.isfinite(_lufs(x, 48000))  # below -70 LUFS
    with pytest.raises(InvalidAudioError):
        finalize(x, 48000, FinalizeSpec(-14.0, -1.0))


@pytest.mark.parametrize("seconds", (0.2, 0.39))
def test_too_short_input_is_refused(seconds, noise):
    x = noise(48000, seconds, -20.0, 2).astype(np.float32)
    with pytest.raises(InvalidAudioError, match="0.4 s"):
        finalize(x, 48000, FinalizeSpec(-14.0, -1.0))
