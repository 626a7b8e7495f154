"""``--profile auto``: the shipped profile nearest to a mix's own measured character.

Each profile and the mix become one vector: the level-removed band shape over the tonal
bands, plus crest factor (as delivered: after the limiting the finalizer will apply to reach
the target, so that our own master, which needs none, is placed where its mix was), loudness
range, width and tail level. Every dimension is divided by
the mean half-width of the profiles' normal ranges in it, so one unit means "one typical
range" whatever the unit; a scikit-learn nearest-neighbour search over the profile centres
then picks the closest. The choice and its evidence (the distances, the aspects that decided
it) are reported.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Sequence

import numpy as np

from assistant.errors import UsageError
from assistant.features import Features
from assistant.spectrum import band_shape, shape_mask
from assistant.targets import Profile, Target, shipped_profiles

log = logging.getLogger(__name__)

CHOICE_SCALARS = ("crest_factor_db", "loudness_range_lu", "width", "tail_level_db")


def _vector(shape_db: Sequence[float], scalars: Sequence[float], mask: np.ndarray) -> np.ndarray:
    return np.concatenate((band_shape(shape_db, mask)[mask], np.asarray(scalars, dtype=np.float64)))


def choose_profile(features: Features, profiles: Sequence[Profile],
                   limiting_db: float = 0.0) -> tuple[Profile, str]:
    """The profile of ``profiles`` nearest to ``features`` (whose crest factor the finalizer will
    lower by ``limiting_db``), and one sentence saying why."""
    if not profiles:
        raise UsageError("--profile auto: the profile library is empty (no presets/profiles/*.toml)")
    mask = shape_mask(features.sample_rate)
    centres = np.array([_vector(p.band_shape_db, [getattr(p, k) for k in CHOICE_SCALARS], mask) for p in profiles])
    half = np.array([np.concatenate((
        ((np.asarray(p.band_high_db) - np.asarray(p.band_low_db)) / 2.0)[mask],
        [(p.scalar_range(k)[1] - p.scalar_range(k)[0]) / 2.0 for k in CHOICE_SCALARS])) for p in profiles])
    scale = np.maximum(half.mean(axis=0), 1e-3)
    delivered = {"crest_factor_db": _finite(features.crest_factor_db) - limiting_db}
    mine = _vector(features.mid_band_db, [delivered.get(k, _finite(getattr(features, k))) for k in CHOICE_SCALARS],
                   mask)
    # lazy: scikit-learn takes about 1 s to import, and only --profile auto needs it (mixbridge master starts fast)
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=min(2, len(profiles))).fit(centres / scale)
    distances, indices = search.kneighbors((mine / scale)[None, :])
    # the distance is the root of a sum over dimensions: report it per dimension (RMS, in ranges)
    per_dim = distances[0] / np.sqrt(len(scale))
    best = profiles[int(indices[0][0])]
    bands = int(mask.sum())
    tone = float(np.sqrt(np.mean(((mine - centres[indices[0][0]]) / scale)[:bands] ** 2)))
    rest = float(np.sqrt(np.mean(((mine - centres[indices[0][0]]) / scale)[bands:] ** 2)))
    why = (f"nearest profile to this mix's measured band shape, crest, loudness range, width and tail: "
           f"{per_dim[0]:.2f} typical ranges away (tone {tone:.2f}, dynamics/stereo/space {rest:.2f})")
    if len(profiles) > 1:
        runner = profiles[int(indices[0][1])]
        why += f"; next: {runner.name} at {per_dim[1]:.2f}"
    return best, why


def _finite(value: float) -> float:
    return float(value) if np.isfinite(value) else 0.0


def with_profile_for(target: Target, features: Features, profiles: Sequence[Profile] | None = None) -> Target:
    """``target`` itself, or with ``--profile auto`` the profile chosen for this mix."""
    if not target.auto_profile:
        return target
    from assistant.judge import estimated_limiting_db

    profile, why = choose_profile(features, shipped_profiles() if profiles is None else profiles,
                                  estimated_limiting_db(features, target))
    log.info("%s: --profile auto chose %s (%s)", features.source, profile.name, why)
    return replace(target, profile=profile, auto_profile=False, profile_choice=f"auto: {profile.name}, {why}")
