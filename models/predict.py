"""Settings from the learned model, and the optional closed-loop refinement.

``predict_model`` maps (mix features, target descriptor) -> ChainSettings with the shipped
numpy weights (no torch). ``refine`` renders the prediction, measures it and corrects the EQ
(least-squares fit of the remaining band-shape error), the compressor threshold (remaining
frame-crest error), the reverb level (tail error) and the width, a few times; it touches only
the aspects it is given and keeps each within the bounds it is given (the judgment's limits).
``fit_compressor`` sizes a compressor in closed loop: the highest threshold that removes a
given crest factor and loudness range on the excerpt.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

from mixbridge.analysis.blocks import file_threads
from mixbridge.analysis.spectrum import side_mid_ratio, smooth_bands  # leaf module
from mixbridge.effects.render import render
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, ChainSettings, switched_on
from mixbridge.models.baseline import EQ_LAYOUT, _band_tools, fit_change, fit_eq, has_anchors
from mixbridge.models.data import DRAW_RANGES, learned_values, settings_from_learned
from mixbridge.models.net import SettingsModel, TargetDescriptor

log = logging.getLogger(__name__)

REFINE_STEPS = 2
THRESHOLD_DB_PER_CREST_DB = 2.0
WET_PER_TAIL_DB = 0.02
EXCERPT_S = 30.0  # refinement renders this much of a long track
ASPECTS = ("tone", "dynamics", "width", "space")  # what refine (and the judgment) may change
# The compressor fit_compressor sizes: fast enough to act on peaks, slow enough not to distort bass.
FIT_ATTACK_MS = 5.0
FIT_RELEASE_MS = 150.0
FIT_THRESHOLD_SPAN_DB = 30.0  # searched from the excerpt's peak down by this much
# One halving, then rounds of two thresholds at once (thirds of the interval, on two cores):
# 30 dB / (2 x 3**5), the threshold to 0.06 dB, finer than any engineer sets it, in 6 rounds of
# renders instead of 9 halvings.
FIT_ROUNDS = 5


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
           settings: ChainSettings, analyze_array: Callable, steps: int = REFINE_STEPS, *,
           aspects: frozenset[str] = frozenset(ASPECTS), eq_limit_db: float | None = None,
           width_bounds: tuple[float, float] = (50.0, 160.0), max_wet: float = 0.6,
           anchor_bands: np.ndarray | None = None,
           layout: Mapping[str, tuple[float, float]] = EQ_LAYOUT,
           band_weights: np.ndarray | None = None) -> ChainSettings:
    """Render, measure, correct, ``steps`` times; returns the corrected settings.

    Long tracks are refined on an excerpt (EXCERPT_S seconds from three places); the
    excerpt's own difference to the whole track is subtracted, so the loop aims the whole
    track, not the excerpt, at the target. ``samples`` may be the whole track or already
    that excerpt (e.g. read from a long file with :func:`excerpt_spans`); ``features``
    always describe the whole track.

    Only the ``aspects`` given are corrected ("tone": EQ, "dynamics": compressor threshold,
    "space": reverb level, "width": side gain); EQ gains stay within ``eq_limit_db`` (default:
    4 dB beyond the training range), the width within ``width_bounds`` and the wet level under
    ``max_wet``. ``anchor_bands`` (a band mask): bands the target keeps where they are; the
    remaining error is then measured against them instead of against the overall level, so
    the EQ corrects what is out of range without lifting or lowering everything else.
    ``layout``: the EQ's frequencies and Qs (stage -> (freq_hz, q)), kept throughout;
    ``band_weights``: how much each band's error counts in the EQ fit.
    """
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
        out = analyze_array(render(part, sample_rate, settings_from_learned(values, features.integrated_lufs,
                                                                             layout)), sample_rate)
        residual = goal - (band_shape(out.mid_band_db, mask) + shape_bias)
        anchored = has_anchors(anchor_bands, mask)
        if anchored:
            residual = residual - float(np.mean(residual[anchor_bands & mask]))
        smooth = smooth_bands(residual)
        if "tone" in aspects:
            for stage, delta in fit_eq(smooth, mask, sample_rate, bands, free_level=not anchored,
                                       layout=layout, weights=band_weights).items():
                lo, hi = DRAW_RANGES[f"{stage}.gain_db"]
                limit = (lo - 4, hi + 4) if eq_limit_db is None else (-eq_limit_db, eq_limit_db)
                values[f"{stage}.gain_db"] = float(np.clip(values[f"{stage}.gain_db"] + delta, *limit))
        crest_error = out.frame_crest_db + crest_bias - target.frame_crest_db
        if "dynamics" in aspects and switched_on("compressor", values):
            lo, hi = DRAW_RANGES["compressor.threshold_db"]
            values["compressor.threshold_db"] = float(np.clip(
                values["compressor.threshold_db"] - THRESHOLD_DB_PER_CREST_DB * crest_error, lo - 6, 0.0))
        if "space" in aspects:
            values["reverb.wet"] = float(np.clip(
                values["reverb.wet"] + WET_PER_TAIL_DB * (target.tail_level_db - out.tail_level_db - tail_bias),
                0.0, max_wet))
        if "width" in aspects and features.channels == 2 and 0.0 < out.width < 1.0 and 0.0 < target.width < 1.0:
            gain = side_mid_ratio(target.width) / side_mid_ratio(out.width)
            values["stereo.width_percent"] = float(np.clip(values["stereo.width_percent"] * gain, *width_bounds))
    return settings_from_learned(values, features.integrated_lufs, layout)


def crest_db(samples: np.ndarray) -> float:
    """Sample peak to RMS, in dB (as ``Features.crest_factor_db``)."""
    peak = float(np.max(np.abs(samples)))
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    return 20.0 * np.log10(max(peak, 1e-12)) - 10.0 * np.log10(max(mean_square, 1e-24))


def fit_compressor(samples: np.ndarray, sample_rate: int, settings: ChainSettings, crest_reduction_db: float,
                   lra_reduction_lu: float, ratio: float, loudness_range: Callable) -> ChainSettings | None:
    """``settings`` with a compressor that lowers the crest factor by ``crest_reduction_db`` and
    the loudness range by ``lra_reduction_lu`` on ``samples`` (the excerpt), at ``ratio``.

    The threshold is the highest that does both (searched by halving, then by thirds with two
    renders at a time; the reductions grow as the threshold falls), so the compressor works no
    harder than asked. ``loudness_range(x, rate)`` measures LRA (LU). Returns ``None`` when
    even the lowest threshold searched falls short.
    """
    pre = render(samples, sample_rate, settings.only(("trim", "highpass", *EQ_STAGES)))
    base_crest = crest_db(pre)
    base_lra = loudness_range(pre, sample_rate) if lra_reduction_lu > 0 else 0.0
    peak_db = 20.0 * np.log10(max(float(np.max(np.abs(pre))), 1e-9))

    def candidate(threshold_db: float) -> ChainSettings:
        return settings.replace({"compressor.threshold_db": float(np.clip(threshold_db, -60.0, 0.0)),
                                 "compressor.ratio": ratio, "compressor.attack_ms": FIT_ATTACK_MS,
                                 "compressor.release_ms": FIT_RELEASE_MS, "compressor.makeup_db": 0.0,
                                 "compressor.amount_percent": 100.0}, {"compressor": True})

    def enough(threshold_db: float) -> bool:
        out = render(pre, sample_rate, candidate(threshold_db).only(("compressor",)), threads=1)  # trials side by side
        if base_crest - crest_db(out) < crest_reduction_db:
            return False
        return lra_reduction_lu <= 0 or base_lra - loudness_range(out, sample_rate) >= lra_reduction_lu

    high, low = min(peak_db, 0.0), max(peak_db - FIT_THRESHOLD_SPAN_DB, -60.0)
    with ThreadPoolExecutor(file_threads(), thread_name_prefix="mixbridge-fit") as pool:  # renders release the GIL
        mid = (high + low) / 2.0
        low_ok, mid_ok = pool.map(enough, (low, mid))
        if not low_ok:
            return None
        low, high = (mid, high) if mid_ok else (low, mid)
        for _ in range(FIT_ROUNDS):  # enough(low) holds throughout; the reductions grow as the threshold falls
            a, b = low + (high - low) / 3.0, low + 2.0 * (high - low) / 3.0
            a_ok, b_ok = pool.map(enough, (a, b))
            low, high = (b, high) if b_ok else (a, b) if a_ok else (low, a)
    return candidate(round(low, 2))


def anchored_eq(settings: ChainSettings, sample_rate: int, anchor_bands: np.ndarray,
                limit_db: float, layout: Mapping[str, tuple[float, float]] = EQ_LAYOUT,
                band_weights: np.ndarray | None = None) -> ChainSettings:
    """``settings`` with its EQ re-fitted so that the ``anchor_bands`` stay where they are.

    The model sees level-removed band shapes, so its EQ gains are known only up to a common
    offset: "+2 dB everywhere and +4 dB at 6 kHz" sounds like "+2 dB at 6 kHz" after the
    finalizer, but it spends headroom and reads as a move. The EQ's response is fitted again
    on ``layout`` (stage -> (freq_hz, q)) by :func:`models.baseline.fit_change`: relative to the
    anchors when there are enough, else up to a level.
    """
    bands, _, _ = _band_tools(sample_rate)
    response = eq_band_response_db(settings.only(EQ_STAGES), sample_rate, bands)
    return settings.replace(fit_change(response, sample_rate, anchor_bands, limit_db, layout, band_weights))
