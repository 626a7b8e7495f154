"""Settings from the learned model, and the optional closed-loop refinement.

``predict_model`` maps (mix features, target descriptor) -> ChainSettings with the shipped
numpy weights (no torch). ``refine`` renders the prediction, measures it and corrects the EQ
(least-squares fit of the remaining band-shape error), the compressor threshold (remaining
frame-crest error), the reverb level (tail error) and the width, a few times.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Callable

import numpy as np

from effects.render import render
from effects.schema import ChainSettings
from models.data import DRAW_RANGES, learned_values, settings_from_learned
from models.net import SettingsModel, TargetDescriptor

log = logging.getLogger(__name__)

REFINE_STEPS = 2
THRESHOLD_DB_PER_CREST_DB = 2.0
WET_PER_TAIL_DB = 0.02
EXCERPT_S = 30.0  # refinement renders this much of a long track


@lru_cache(maxsize=1)
def shipped_model() -> SettingsModel:
    return SettingsModel.load()


def predict_model(features, target: TargetDescriptor, model: SettingsModel | None = None) -> ChainSettings:
    """Chain settings predicted by the learned model."""
    values = (model or shipped_model()).predict(features, target)
    return settings_from_learned(values, features.integrated_lufs)


def excerpt_spans(frames: int, sample_rate: int, seconds: float = EXCERPT_S,
                  pieces: int = 3) -> list[tuple[int, int]]:
    """Frame ranges ``[start, stop)`` of :func:`excerpt` in a clip of ``frames`` frames, so a
    long file's excerpt can be read without decoding the rest."""
    n = int(seconds * sample_rate)
    if frames <= n:
        return [(0, frames)]
    length = n // pieces
    return [(int(s), int(s) + length) for s in np.linspace(0, frames - length, pieces).astype(int)]


def excerpt(samples: np.ndarray, sample_rate: int, seconds: float = EXCERPT_S, pieces: int = 3) -> np.ndarray:
    """``pieces`` evenly spaced segments, ``seconds`` long in total (the whole clip if shorter)."""
    spans = excerpt_spans(samples.shape[1], sample_rate, seconds, pieces)
    if len(spans) == 1:
        return samples
    return np.concatenate([samples[:, a:b] for a, b in spans], axis=1)


def refine(samples: np.ndarray, sample_rate: int, features, target: TargetDescriptor,
           settings: ChainSettings, analyze_array: Callable, steps: int = REFINE_STEPS) -> ChainSettings:
    """Render, measure, correct, ``steps`` times; returns the corrected settings.

    Long tracks are refined on an excerpt (EXCERPT_S seconds from three places); the
    excerpt's own difference to the whole track is subtracted, so the loop aims the whole
    track, not the excerpt, at the target. ``samples`` may be the whole track or already
    that excerpt (e.g. read from a long file with :func:`excerpt_spans`); ``features``
    always describe the whole track.
    """
    from models.baseline import _band_tools, fit_eq

    bands, band_shape, mask = _band_tools(sample_rate)
    part = excerpt(samples, sample_rate)
    whole = part.shape[1] == round(features.duration_s * sample_rate)
    part_features = features if whole else analyze_array(part, sample_rate)
    shape_bias = band_shape(features.mid_band_db, mask) - band_shape(part_features.mid_band_db, mask)
    crest_bias = features.frame_crest_db - part_features.frame_crest_db
    tail_bias = features.tail_level_db - part_features.tail_level_db
    values = learned_values(settings)
    goal = band_shape(target.band_shape_db, mask)
    for _ in range(steps):
        out = analyze_array(render(part, sample_rate, settings_from_learned(values, features.integrated_lufs)),
                            sample_rate)
        residual = goal - (band_shape(out.mid_band_db, mask) + shape_bias)
        smooth = np.convolve(np.pad(residual, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
        for stage, delta in fit_eq(smooth, mask, sample_rate, bands).items():
            lo, hi = DRAW_RANGES[f"{stage}.gain_db"]
            values[f"{stage}.gain_db"] = float(np.clip(values[f"{stage}.gain_db"] + delta, lo - 4, hi + 4))
        crest_error = out.frame_crest_db + crest_bias - target.frame_crest_db
        if values["compressor.ratio"] > 1.05:
            lo, hi = DRAW_RANGES["compressor.threshold_db"]
            values["compressor.threshold_db"] = float(np.clip(
                values["compressor.threshold_db"] - THRESHOLD_DB_PER_CREST_DB * crest_error, lo - 6, 0.0))
        values["reverb.wet"] = float(np.clip(
            values["reverb.wet"] + WET_PER_TAIL_DB * (target.tail_level_db - out.tail_level_db - tail_bias), 0.0, 0.6))
        if features.channels == 2 and 0.0 < out.width < 1.0 and 0.0 < target.width < 1.0:
            gain = np.sqrt((target.width / (1 - target.width)) / (out.width / (1 - out.width)))
            values["stereo.width_percent"] = float(np.clip(values["stereo.width_percent"] * gain, 50.0, 160.0))
    return settings_from_learned(values, features.integrated_lufs)
