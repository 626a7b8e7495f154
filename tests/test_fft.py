"""analysis.fft: scipy's compiled pocketfft loaded without scipy.fft's package import, equal to
``scipy.fft`` (the same kernel), with its fallback; and a master's analysis imports neither
scipy.fft nor scipy.signal."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import fft as scipy_fft

from mixbridge.analysis import fft


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [None, 4096, 6000, 1000])
def test_rfft_and_irfft_equal_scipys(dtype, n):
    x = np.random.default_rng(3).standard_normal((2, 3, 5000)).astype(dtype)
    for axis in (-1, 2, 1):
        size = n if axis != 1 else (n and 7)
        ours, theirs = fft.rfft(x, size, axis=axis), scipy_fft.rfft(x, size, axis=axis)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)
        length = size or x.shape[axis]
        back, scipy_back = fft.irfft(ours, length, axis=axis), scipy_fft.irfft(theirs, length, axis=axis)
        assert back.dtype == scipy_back.dtype
        np.testing.assert_array_equal(back, scipy_back)


def test_the_fallback_gives_the_same(monkeypatch):
    x = np.random.default_rng(4).standard_normal((2, 4096)).astype(np.float32)
    fast = fft.rfft(x, 8192, axis=1)
    monkeypatch.setattr(fft, "_pocketfft", lambda: None)
    np.testing.assert_array_equal(fft.rfft(x, 8192, axis=1), fast)
    np.testing.assert_array_equal(fft.irfft(fast, 8192, axis=1), scipy_fft.irfft(fast, 8192, axis=1))


def test_analysing_imports_neither_scipy_fft_nor_scipy_signal():
    """The point: a command's start-up skips scipy.fft's (~0.3 s) and scipy.signal's (~1 s) imports."""
    code = ("import sys, numpy as np\n"
            "from mixbridge.analysis.analyze import analyze\n"
            "from mixbridge.analysis.audio import Audio\n"
            "from mixbridge.analysis import fft\n"
            "import mixbridge.assistant.master\n"
            "t = np.arange(48000 * 4) / 48000\n"
            "x = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.3\n"
            "analyze(Audio(x, 48000))\n"
            "assert fft._pocketfft() is not None\n"
            "leaked = [m for m in ('scipy.fft', 'scipy.signal') if m in sys.modules]\n"
            "assert not leaked, leaked\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loads_are_one_at_a_time(monkeypatch):
    """The input is analysed beside the reference, so two threads make their first FFT or filter
    call at once. A module being initialised can already sit in sys.modules; a second thread
    that took it half-made fell back to scipy.signal's 1-2 s import in about half the runs of a
    master. So a load waits for the one under way."""
    import threading
    import time

    from mixbridge.analysis import native

    inside, most = [0], [0]

    def slow_load(name):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        inside[0] -= 1
        return name

    monkeypatch.setattr(native, "_load", slow_load)
    threads = [threading.Thread(target=native.scipy_extension, args=("scipy.x",)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert most[0] == 1
