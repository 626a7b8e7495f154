"""Second-order-section IIR filtering with state carried across blocks: the meters' K-weighting
and the compressor's envelope smoother.

The kernel is scipy's compiled ``sosfilt`` loop. Importing ``scipy.signal`` to reach it costs
about 1.0 s on this machine (scipy 1.17: the package's import pulls in ``scipy.stats``,
``scipy.interpolate`` and ``scipy.optimize``), more than every meter of a 3-minute master
together; the compiled extension alone loads in about 25 ms. So :func:`sosfilt` loads the
extension module ``scipy/signal/_sosfilt`` by its file, without running ``scipy.signal``'s
package import (:mod:`analysis.native`), and calls it as scipy's own ``sosfilt`` does (in place on a C-ordered
``(signals, n)`` copy, state ``(signals, sections, 2)``). That kernel is private to scipy: if a
scipy release moves or changes it, the public ``scipy.signal.sosfilt`` is used instead (the
log says so once) and only the start-up time is lost. The tests compare both paths sample for
sample.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Callable

import numpy as np

from mixbridge.analysis.native import scipy_extension

log = logging.getLogger(__name__)

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray], None]  # (sos, x, zi), in place


def _public_kernel(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> None:
    # lazy: scipy.signal's package import takes about 1.0 s (see the module docstring)
    from scipy.signal import sosfilt as public

    y, zf = public(sos, x, axis=1, zi=np.moveaxis(zi, 1, 0))
    x[...], zi[...] = y, np.moveaxis(zf, 0, 1)


@cache
def _kernel() -> Kernel:
    """scipy's compiled loop, loaded by its file; the public function if that fails."""
    try:
        kernel = scipy_extension("scipy.signal._sosfilt")._sosfilt
        probe_x, probe_zi = np.ones((1, 4)), np.zeros((1, 1, 2))
        kernel(np.array([[0.5, 0.0, 0.0, 1.0, -0.5, 0.0]]), probe_x, probe_zi)  # y = 0.5 x + 0.5 y[-1]
        if not np.allclose(probe_x, [[0.5, 0.75, 0.875, 0.9375]]):
            raise ValueError(f"unexpected result {probe_x}")
        return kernel
    except Exception as exc:  # any failure means: use the public function
        log.info("scipy's compiled sosfilt could not be loaded by itself (%s); importing scipy.signal", exc)
        return _public_kernel


def sosfilt(sos: np.ndarray, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filter ``x`` through the second-order sections ``sos`` along its last axis.

    Parameters
    ----------
    sos : np.ndarray, shape (sections, 6)
        ``b0, b1, b2, a0, a1, a2`` per section (``a0`` = 1), as ``scipy.signal`` writes them.
    x : np.ndarray, shape (channels, n)
    state : np.ndarray, shape (channels, sections, 2)
        The transposed direct-form II state left by the previous block (zeros to start).

    Returns
    -------
    y, state : np.ndarray
        The filtered block, in ``x``'s float type (float32 stays float32), and the state to pass
        with the next block. ``x`` and ``state`` are not modified.
    """
    dtype = np.result_type(x.dtype, np.float32)
    y = np.array(x, dtype=dtype, order="C")  # the kernel filters in place
    zf = np.array(state, dtype=dtype, order="C")
    if y.shape[1]:
        _kernel()(np.ascontiguousarray(sos, dtype=dtype), y, zf)
    return y, zf
