"""The DSP baseline (``--engine dsp``): settings from plain signal-processing rules.

- **Trim** brings the mix to a nominal -18 LUFS into the chain, so thresholds mean the same
  thing for every input.
- **EQ**: the smoothed band-shape difference to the target, fitted by regularised least
  squares with the measured band responses of a low shelf (100 Hz), four peaking bands
  (200 Hz, 700 Hz, 2.5 kHz, 6 kHz) and a high shelf (10 kHz); one refinement pass corrects
  for the filters' non-linearity in gain. A high-pass at 30 Hz is added when the mix has
  more sub-bass than the target.
- **Compressor**: on when the mix is more dynamic than the target (loudness range or short-
  term crest); ratio grows with the excess, threshold near the mix's loud passages.
- **Reverb**: off unless the target is clearly more ambient (post-onset tail level).
- **Stereo width**: side gain that moves the side/mid balance toward the target's.

This is what the learned model must beat. Inputs are duck-typed: anything with the
``Features`` attributes used below, and a ``Profile``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from mixbridge.analysis.spectrum import band_matrix, band_shape, shape_mask, side_mid_ratio, smooth_bands  # leaf module
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, PARAM_INDEX, ChainSettings

NOMINAL_LUFS = -18.0
EQ_LAYOUT = {  # stage: (freq_hz, q)
    "low_shelf": (100.0, 0.707),
    "peak1": (200.0, 0.9),
    "peak2": (700.0, 0.9),
    "peak3": (2500.0, 0.9),
    "peak4": (6000.0, 0.9),
    "high_shelf": (10000.0, 0.707),
}
EQ_LIMIT_DB = 9.0
EQ_RIDGE = 0.3
DYNAMICS_DEADBAND_LU = 1.0
REVERB_TRIGGER_DB = 3.0
RESPONSE_FFT = 1 << 15


MIN_ANCHOR_BANDS = 4  # fewer kept bands than this: an EQ fit takes a free level term instead


def nominal_trim_db(input_lufs: float) -> float:
    """The input trim that brings a mix to NOMINAL_LUFS (where the model's chain works), within
    the schema's trim range."""
    spec = PARAM_INDEX["trim.gain_db"]
    return float(np.clip(NOMINAL_LUFS - input_lufs, spec.min, spec.max))


def _band_tools(sample_rate: int):
    return band_matrix(RESPONSE_FFT, sample_rate), band_shape, shape_mask(sample_rate)


def has_anchors(anchor_bands: np.ndarray | None, mask: np.ndarray) -> bool:
    """Whether enough tonal bands are to stay put to serve as the EQ fit's level reference."""
    return anchor_bands is not None and int(np.sum(anchor_bands & mask)) >= MIN_ANCHOR_BANDS


def eq_values(gains: Mapping[str, float], layout: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Schema values (gain, frequency, Q) of the EQ stages in ``gains`` on ``layout``."""
    values = {}
    for stage, gain in gains.items():
        freq, q = layout[stage]
        values.update({f"{stage}.freq_hz": freq, f"{stage}.q": q, f"{stage}.gain_db": round(float(gain), 2)})
    return values


def fit_change(change_db: np.ndarray, sample_rate: int, anchor_bands: np.ndarray | None, limit_db: float,
               layout: Mapping[str, tuple[float, float]] = EQ_LAYOUT,
               weights: np.ndarray | None = None) -> dict[str, float]:
    """EQ values (see :func:`eq_values`) whose response is ``change_db`` per band: absolute
    when enough ``anchor_bands`` stay put, else up to a level (a free level term)."""
    bands, _, mask = _band_tools(sample_rate)
    anchored = has_anchors(anchor_bands, mask)
    change = np.asarray(change_db, dtype=np.float64)
    if anchored:
        change = change - float(np.mean(change[anchor_bands & mask]))
    gains = fit_eq(change, mask, sample_rate, bands, free_level=not anchored, limit_db=limit_db, layout=layout,
                   weights=weights)
    return eq_values(gains, layout)


def fit_eq(difference_db: np.ndarray, mask: np.ndarray, sample_rate: int, bands: np.ndarray,
           free_level: bool = True, limit_db: float = EQ_LIMIT_DB,
           layout: Mapping[str, tuple[float, float]] = EQ_LAYOUT,
           weights: np.ndarray | None = None) -> dict[str, float]:
    """EQ gains (dB per stage of ``layout``: stage -> (freq_hz, q)) whose band response best
    matches ``difference_db``.

    ``free_level``: ``difference_db`` is defined up to a constant, which a free level term
    absorbs. Otherwise it is absolute (bands at 0 dB are to stay where they are), which keeps
    the gains from trading a common offset against the limit ``limit_db``. ``weights`` (per
    band, default 1): how much each band's error counts in the least-squares fit.
    """
    stages = list(layout)
    unit = 6.0
    basis = []
    for stage in stages:
        freq, q = layout[stage]
        probe = ChainSettings.create({f"{stage}.freq_hz": freq, f"{stage}.q": q, f"{stage}.gain_db": unit},
                                     {s: s == stage for s in EQ_STAGES})
        basis.append(eq_band_response_db(probe, sample_rate, bands) / unit)
    columns = basis + ([np.ones(len(difference_db))] if free_level else [])
    root_w = np.sqrt(np.ones(len(difference_db)) if weights is None else np.asarray(weights, np.float64))[mask]
    a = np.column_stack(columns)[mask] * root_w[:, None]
    target = np.asarray(difference_db)[mask] * root_w

    def solve(rhs):
        reg = EQ_RIDGE * np.eye(a.shape[1])
        if free_level:
            reg[-1, -1] = 0.0  # the level term is free
        solution = np.linalg.solve(a.T @ a + reg, a.T @ rhs)
        return solution[:-1] if free_level else solution

    gains = np.clip(solve(target), -limit_db, limit_db)
    # One refinement: the real response at these gains is not exactly linear in gain.
    actual = eq_band_response_db(_eq_settings(dict(zip(stages, gains)), layout), sample_rate, bands)[mask] * root_w
    residual = target - actual
    gains = np.clip(gains + solve(residual - residual.mean() if free_level else residual), -limit_db, limit_db)
    return {s: float(g) for s, g in zip(stages, gains)}


def _eq_settings(gains: dict[str, float], layout: Mapping[str, tuple[float, float]] = EQ_LAYOUT) -> ChainSettings:
    return ChainSettings.create(eq_values(gains, layout), {s: s in gains for s in EQ_STAGES})


def predict_dsp(features, profile) -> ChainSettings:
    """Baseline chain settings that move ``features`` toward ``profile``."""
    sr = features.sample_rate
    bands, band_shape, mask = _band_tools(sr)
    mine = band_shape(features.mid_band_db, mask)
    goal = band_shape(profile.band_shape_db, mask)
    diff = goal - mine
    smooth = smooth_bands(diff)
    gains = fit_eq(smooth, mask, sr, bands)
    settings = _eq_settings(gains)
    values: dict[str, float] = {}
    enabled: dict[str, bool] = {}

    values["trim.gain_db"] = nominal_trim_db(features.integrated_lufs)
    enabled["trim"] = True

    sub = np.asarray(features.mid_band_db[:3]) - np.mean(np.asarray(features.mid_band_db)[mask])
    sub_goal = np.asarray(profile.band_shape_db[:3])
    if np.mean(sub - sub_goal) > 3.0:
        values["highpass.cutoff_hz"] = 30.0
        enabled["highpass"] = True

    excess = max(features.loudness_range_lu - profile.loudness_range_lu,
                 features.frame_crest_db - profile.frame_crest_db)
    if excess > DYNAMICS_DEADBAND_LU:
        # Threshold a little under the loudest short-term level after trim.
        loud_after_trim = features.max_short_term_lufs + values["trim.gain_db"]
        values.update({
            "compressor.threshold_db": float(np.clip(loud_after_trim - 2.0 - 0.5 * excess, -40.0, -6.0)),
            "compressor.ratio": float(np.clip(1.0 + excess / 4.0, 1.5, 4.0)),
            "compressor.attack_ms": 20.0,
            "compressor.release_ms": 200.0,
            "compressor.makeup_db": 0.0,
            "compressor.amount_percent": 100.0,
        })
        enabled["compressor"] = True

    wetter = profile.tail_level_db - features.tail_level_db
    if wetter > REVERB_TRIGGER_DB:
        values.update({"reverb.wet": float(np.clip(0.04 * wetter / REVERB_TRIGGER_DB, 0.02, 0.25)),
                       "reverb.room_size": 0.6, "reverb.damping": 0.5, "reverb.width": 1.0})
        enabled["reverb"] = True

    if features.channels == 2 and 0.0 < features.width < 1.0:
        side_gain = side_mid_ratio(profile.width) / side_mid_ratio(features.width)
        side_gain = float(np.clip(side_gain, 0.8, 1.25))
        if abs(side_gain - 1.0) > 0.05:
            values["stereo.width_percent"] = 100.0 * side_gain
    return settings.replace(values, enabled)
