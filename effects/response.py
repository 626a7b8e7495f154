"""Measured frequency response of a chain's EQ stages, per third-octave band.

An impulse is rendered through the very filters the renderer builds, so what the EQ fitting
assumes is exactly what is rendered. Band values are power-averaged over each
band (as the analyzer's band spectrum is).
"""

from __future__ import annotations

import numpy as np

from mixbridge.analysis.spectrum import band_power_db
from mixbridge.effects.render import render
from mixbridge.effects.schema import EQ_STAGES, ChainSettings


def eq_band_response_db(settings: ChainSettings, sample_rate: int, band_matrix: np.ndarray) -> np.ndarray:
    """Gain in dB per band of the high-pass, EQ and match EQ stages (other stages switched off).

    Parameters
    ----------
    band_matrix : np.ndarray, shape (bins, bands)
        Bin-to-band weights for an FFT of ``2 * (bins - 1)`` points at ``sample_rate``
        (see :func:`analysis.spectrum.band_matrix`).
    """
    n_fft = 2 * (band_matrix.shape[0] - 1)
    impulse = np.zeros((1, n_fft), dtype=np.float32)
    impulse[0, 0] = 1.0
    response = render(impulse, sample_rate, settings.only(("highpass", *EQ_STAGES, "match_eq")))[0]
    return band_power_db(np.abs(np.fft.rfft(response.astype(np.float64))) ** 2, band_matrix)
