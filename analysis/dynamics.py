"""Dynamics and ambience descriptors from the analyzer's frame series.

All inputs come from one pass (see :mod:`analysis.spectrum`): per-frame mid band levels,
per-hop sample peak and mean square, hop length in seconds. Frames more than
``ACTIVE_RANGE_DB`` below the loudest frame are ignored, so fades and silence don't count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVE_RANGE_DB = 40.0
ONSET_THRESHOLD_DB = 6.0  # spectral flux (mean positive dB rise per band) of an onset
ONSET_MIN_GAP_S = 0.05
TAIL_WINDOW_S = (0.15, 0.45)  # where a reverb tail is read after an onset


@dataclass(frozen=True)
class DynamicsResult:
    frame_crest_db: float  # median over active frames of (hop peak / hop RMS)
    transient_density_per_s: float  # onsets per second, leading/trailing silence excluded
    onset_strength_db: float  # median flux of detected onsets
    decay_rate_db_per_s: float  # typical fastest level fall (negative; slower = more ambient)
    tail_level_db: float  # level 150-450 ms after onsets relative to the onset frame (higher = wetter)


def _frame_levels_db(frame_mean_square: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(frame_mean_square, 1e-20))


def describe_dynamics(frame_band_db: np.ndarray, frame_peak: np.ndarray,
                      frame_mean_square: np.ndarray, hop_s: float) -> DynamicsResult:
    """Dynamics/ambience descriptors; neutral values (0) when there is no active audio."""
    level_db = _frame_levels_db(frame_mean_square)
    if level_db.size == 0 or frame_mean_square.max() <= 1e-20:
        return DynamicsResult(0.0, 0.0, 0.0, 0.0, 0.0)
    active = level_db > level_db.max() - ACTIVE_RANGE_DB
    on = np.flatnonzero(active)
    active_s = (on[-1] - on[0] + 1) * hop_s  # from the first to the last active frame

    crest = 20.0 * np.log10(np.maximum(frame_peak, 1e-10)) - level_db
    frame_crest = float(np.median(crest[active]))

    onsets, strength = _onsets(frame_band_db, active, hop_s)
    density = onsets.size / active_s

    # Falls are read down to 60 dB under the loudest frame (as an RT60 would), from active frames.
    floored = np.maximum(level_db, level_db.max() - 60.0)
    smooth = np.convolve(np.pad(floored, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    slope = np.diff(smooth) / hop_s
    falling = slope[(slope < 0) & active[:-1]]
    decay = float(np.percentile(falling, 10)) if falling.size else 0.0

    lo, hi = (int(round(t / hop_s)) for t in TAIL_WINDOW_S)
    tails = [np.mean(level_db[i + lo : i + hi]) - level_db[i] for i in onsets if i + hi <= level_db.size]
    tail = float(np.median(tails)) if tails else 0.0
    return DynamicsResult(frame_crest, float(density), strength, decay, tail)


def _onsets(frame_band_db: np.ndarray, active: np.ndarray, hop_s: float) -> tuple[np.ndarray, float]:
    """Frames where the band spectrum rises sharply (positive spectral flux peaks)."""
    if frame_band_db.shape[0] < 3:
        return np.zeros(0, dtype=int), 0.0
    # Floor each band 60 dB under the loudest frame so noise-floor flicker is not flux.
    floor = frame_band_db.max() - 60.0
    bands = np.maximum(frame_band_db, floor)
    flux = np.concatenate(([0.0], np.maximum(np.diff(bands, axis=0), 0.0).mean(axis=1)))
    gap = max(1, int(round(ONSET_MIN_GAP_S / hop_s)))
    local_max = np.lib.stride_tricks.sliding_window_view(np.pad(flux, gap, mode="edge"), 2 * gap + 1).max(axis=1)
    peaks = flux == local_max
    picked = np.flatnonzero(peaks & (flux >= ONSET_THRESHOLD_DB) & active)
    strength = float(np.median(flux[picked])) if picked.size else 0.0
    return picked, strength
