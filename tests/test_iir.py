"""analysis.iir.sosfilt: scipy's compiled loop loaded without scipy.signal's package import,
equal sample for sample to the public ``scipy.signal.sosfilt``, in blocks with the state carried."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import butter
from scipy.signal import sosfilt as public_sosfilt

from mixbridge.analysis import iir
from mixbridge.analysis.loudness import k_weighting_sos


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_scipy_in_blocks(dtype):
    sos = np.vstack([k_weighting_sos(48000), butter(4, 1000, fs=48000, output="sos")]).astype(dtype)
    x = np.random.default_rng(1).standard_normal((2, 10_000)).astype(dtype)
    expected, expected_zf = public_sosfilt(sos, x, axis=1, zi=np.zeros((sos.shape[0], 2, 2), dtype))
    state = np.zeros((2, sos.shape[0], 2), dtype)
    parts = []
    for block in np.split(x, [1, 1000, 1000, 7777], axis=1):  # an empty block and a 1-sample one too
        y, state = iir.sosfilt(sos, block, state)
        assert y.dtype == dtype and y.shape == block.shape
        parts.append(y)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), expected)
    np.testing.assert_array_equal(state, np.moveaxis(expected_zf, 0, 1))


def test_inputs_are_not_modified():
    x = np.ones((1, 8))
    state = np.zeros((1, 1, 2))
    iir.sosfilt(np.array([[0.5, 0.0, 0.0, 1.0, -0.5, 0.0]]), x, state)
    assert np.all(x == 1.0) and np.all(state == 0.0)


def test_public_fallback_gives_the_same():
    sos = k_weighting_sos(44100)
    x = np.random.default_rng(2).standard_normal((2, 5000))
    fast_y, fast_zf = x.copy(), np.zeros((2, 2, 2))
    iir._kernel()(sos, fast_y, fast_zf)
    slow_y, slow_zf = x.copy(), np.zeros((2, 2, 2))
    iir._public_kernel(sos, slow_y, slow_zf)
    np.testing.assert_array_equal(fast_y, slow_y)
    np.testing.assert_array_equal(fast_zf, slow_zf)


def test_filtering_does_not_import_scipy_signal():
    """The point of the module: a meter runs without scipy.signal's ~1 s package import."""
    code = ("import sys, numpy as np; from mixbridge.analysis.iir import sosfilt, _kernel, _public_kernel; "
            "sosfilt(np.array([[1.0, 0, 0, 1, -0.5, 0]]), np.ones((1, 4)), np.zeros((1, 1, 2))); "
            "assert _kernel() is not _public_kernel; "
            "assert 'scipy.signal' not in sys.modules, 'scipy.signal imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
