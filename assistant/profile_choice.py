"""``--profile auto``: the shipped profile whose normal ranges the mix already fits best.

Each profile and the mix become one vector: the level-removed band shape over the tonal
bands, plus crest factor (as delivered: after the limiting the finalizer will apply to reach
the target, so that our own master, which needs none, is placed where its mix was), loudness
range, width and tail level. Every dimension is divided by the mean half-width of the
profiles' normal ranges in it, so one unit means "one typical range" whatever the unit.

The choice is the profile the mix lies least *outside* of (the judgment's own measure: the
smoothed, aligned band shape against the band ranges, and each scalar against its range):
the one that asks for the fewest moves. Among profiles that fit about equally well, a
scikit-learn nearest-neighbour search over their centres picks the closest. This is stable
under mastering: the master lies inside the chosen profile's ranges, so a second pass picks
it again, or another profile it also lies inside (which then asks for nothing either). The
choice and its evidence are reported.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Sequence

import numpy as np

from mixbridge.analysis.errors import UsageError
from mixbridge.analysis.features import Features
from mixbridge.analysis.spectrum import band_shape, shape_mask
from mixbridge.assistant.judge import estimated_limiting_db, tone_bands_db, tone_excess_db
from mixbridge.assistant.targets import Profile, Target, shipped_profiles

log = logging.getLogger(__name__)

CHOICE_SCALARS = ("crest_factor_db", "loudness_range_lu", "width", "tail_level_db")


def _vector(shape_db: Sequence[float] | np.ndarray, scalars: Sequence[float], mask: np.ndarray) -> np.ndarray:
    return np.concatenate((band_shape(shape_db, mask)[mask], np.asarray(scalars, dtype=np.float64)))


FIT_TIE = 0.05  # outside scores (typical ranges) closer than this count as an equal fit


def choose_profile(features: Features, profiles: Sequence[Profile],
                   limiting_db: float = 0.0) -> tuple[Profile, str]:
    """The profile of ``profiles`` that ``features`` (whose crest factor the finalizer will
    lower by ``limiting_db``) fit best, and one sentence saying why."""
    if not profiles:
        raise UsageError("--profile auto: the profile library is empty (no presets/profiles/*.toml)")
    mask = shape_mask(features.sample_rate)
    centres = np.array([_vector(p.band_shape_db, [getattr(p, k) for k in CHOICE_SCALARS], mask) for p in profiles])
    half = np.array([np.concatenate((
        ((np.asarray(p.band_high_db) - np.asarray(p.band_low_db)) / 2.0)[mask],
        [(p.scalar_range(k)[1] - p.scalar_range(k)[0]) / 2.0 for k in CHOICE_SCALARS])) for p in profiles])
    scale = np.maximum(half.mean(axis=0), 1e-3)
    scalars = [_finite(features.crest_factor_db) - limiting_db if k == "crest_factor_db" else
               _finite(getattr(features, k)) for k in CHOICE_SCALARS]
    mine = _vector(tone_bands_db(features), scalars, mask)

    def outside(p: Profile) -> float:  # RMS distance outside the ranges, in typical ranges
        tone = tone_excess_db(features, p)[mask]
        rest = [max(lo - v, v - hi, 0.0) for v, (lo, hi) in zip(scalars, map(p.scalar_range, CHOICE_SCALARS))]
        return float(np.sqrt(np.mean((np.concatenate((tone, rest)) / scale) ** 2)))

    fits = np.array([outside(p) for p in profiles])
    equal = np.flatnonzero(fits <= fits.min() + FIT_TIE)
    # lazy: scikit-learn takes about 1 s to import, and only --profile auto needs it (mixbridge master starts fast)
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=1).fit(centres[equal] / scale)
    _, nearest = search.kneighbors((mine / scale)[None, :])
    k = int(equal[nearest[0][0]])
    best = profiles[k]
    distance = float(np.sqrt(np.mean(((mine - centres[k]) / scale) ** 2)))
    why = (f"the profile this mix's band shape, crest (as delivered), loudness range, width and tail fit best: "
           f"{fits[k]:.2f} typical ranges outside its normal ranges, {distance:.2f} from its centre")
    if len(equal) > 1:
        why += f" (the nearest of {len(equal)} that fit equally well)"
    if len(profiles) > 1:
        runner = min((i for i in range(len(profiles)) if i != k), key=lambda i: (fits[i], i))
        why += f"; next: {profiles[runner].name}, {fits[runner]:.2f} outside"
    return best, why


def _finite(value: float) -> float:
    return float(value) if np.isfinite(value) else 0.0


def with_profile_for(target: Target, features: Features, profiles: Sequence[Profile] | None = None) -> Target:
    """``target`` itself, or with ``--profile auto`` the profile chosen for this mix."""
    if not target.auto_profile:
        return target
    profile, why = choose_profile(features, shipped_profiles() if profiles is None else profiles,
                                  estimated_limiting_db(features, target))
    log.info("%s: --profile auto chose %s (%s)", features.source, profile.name, why)
    return replace(target, profile=profile, auto_profile=False, profile_choice=f"auto: {profile.name}, {why}")
