"""Shared test fixtures: seeded randomness, test signals at a given level, a file writer.

Level conventions used by every helper here:

- a sine "at X dBFS" has a *peak* amplitude of 10**(X/20) (EBU Tech 3341 convention: a
  0 dBFS sine peaks at 1.0 and has a mean square of 0.5, i.e. -3.01 dB);
- noise "at X dBFS" has an *RMS* of 10**(X/20) in every channel.

Signals are float64 arrays shaped ``(channels, n)``, the layout of :class:`analysis.audio.Audio`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

SEED = 20240611


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long test (the 1-hour file); deselect with -m 'not slow'"
    )


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def make_sine(freq_hz: float, sample_rate: int, duration_s: float, dbfs: float,
              channels: int = 2, phase_rad: float = 0.0) -> np.ndarray:
    """A sine of peak level ``dbfs``, the same in every channel, shaped ``(channels, n)``."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    x = db_to_amplitude(dbfs) * np.sin(2.0 * np.pi * freq_hz * t + phase_rad)
    return np.repeat(x[None, :], channels, axis=0)


def make_noise(rng: np.random.Generator, sample_rate: int, duration_s: float, dbfs: float,
               channels: int = 2, color: str = "white", correlated: bool = False) -> np.ndarray:
    """Gaussian noise with RMS ``dbfs`` per channel, shaped ``(channels, n)``.

    ``color`` is "white" (flat power per Hz) or "pink" (power per Hz ~ 1/f, made exactly by
    shaping the spectrum, DC removed). Channels are independent unless ``correlated``.
    """
    n = int(round(duration_s * sample_rate))
    rows = 1 if correlated else channels
    x = rng.standard_normal((rows, n))
    if color == "pink":
        spec = np.fft.rfft(x, axis=1)
        f = np.arange(spec.shape[1], dtype=np.float64)
        f[0] = np.inf  # no DC
        x = np.fft.irfft(spec / np.sqrt(f), n, axis=1)
    elif color != "white":
        raise ValueError(f"unknown noise color {color!r}")
    x -= x.mean(axis=1, keepdims=True)
    x *= db_to_amplitude(dbfs) / np.sqrt(np.mean(np.square(x), axis=1, keepdims=True))
    return np.repeat(x, channels, axis=0) if correlated else x


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(SEED)


@pytest.fixture
def sine() -> Callable[..., np.ndarray]:
    """:func:`make_sine`: ``sine(freq_hz, sample_rate, duration_s, dbfs, channels=2, phase_rad=0)``."""
    return make_sine


@pytest.fixture
def noise(rng) -> Callable[..., np.ndarray]:
    """:func:`make_noise` bound to the seeded ``rng``:
    ``noise(sample_rate, duration_s, dbfs, channels=2, color="white", correlated=False)``."""
    def _noise(sample_rate, duration_s, dbfs, channels=2, color="white", correlated=False):
        return make_noise(rng, sample_rate, duration_s, dbfs, channels, color, correlated)
    return _noise


@pytest.fixture
def write_audio(tmp_path: Path) -> Callable[..., Path]:
    """Write ``(channels, n)`` samples into ``tmp_path`` with soundfile, return the path.

    ``write_audio(name, samples, sample_rate, subtype=None, format=None)``; the format
    follows the file extension unless given (e.g. ``subtype="FLOAT"`` for 32-bit float WAV).
    """
    def _write(name: str, samples: np.ndarray, sample_rate: int,
               subtype: str | None = None, format: str | None = None) -> Path:
        path = tmp_path / name
        data = np.asarray(samples)
        sf.write(str(path), data.T if data.ndim == 2 else data, sample_rate,
                 subtype=subtype, format=format)
        return path
    return _write


def ebur128_integrated_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of ``(channels, n)`` samples by libebur128 (through pyebur128): an
    implementation independent of ours, for oracle checks."""
    import pyebur128

    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    state = pyebur128.R128State(data.shape[0], int(sample_rate), pyebur128.MeasurementMode.MODE_I)
    state.add_frames(np.ascontiguousarray(data.T).ravel(), data.shape[1])
    return float(pyebur128.get_loudness_global(state))


def ebur128_true_peak_dbtp(samples: np.ndarray, sample_rate: int) -> float:
    """True peak of ``(channels, n)`` samples by libebur128 (through pyebur128): its own
    BS.1770 oversampling interpolator, independent of the one our meter and limiter share."""
    import pyebur128

    data = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    state = pyebur128.R128State(data.shape[0], int(sample_rate), pyebur128.MeasurementMode.MODE_TRUE_PEAK)
    state.add_frames(np.ascontiguousarray(data.T).ravel(), data.shape[1])
    peak = max(float(pyebur128.get_true_peak(state, c)) for c in range(data.shape[0]))
    return 20.0 * np.log10(max(peak, 1e-12))


@pytest.fixture
def ebur128_lufs() -> Callable[[np.ndarray, int], float]:
    """:func:`ebur128_integrated_lufs`: ``ebur128_lufs(samples, sample_rate)`` by libebur128."""
    return ebur128_integrated_lufs


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Caches (reference analyses, rendered clips) go to a temporary folder, not ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXBRIDGE_CACHE", str(tmp_path_factory.mktemp("mixbridge-cache")))
    yield
    mp.undo()
