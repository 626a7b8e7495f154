"""Targets: a delivery spec (LUFS, true-peak ceiling) plus a sound profile with normal ranges.

A profile says, for every 1/3-octave band of the level-removed mid spectrum and for every
scalar descriptor (loudness range, crest, width, tail...), a **normal range** (``low``..``high``,
e.g. the 10th-90th percentile of real references) and its centre. The judgment
(:mod:`assistant.judge`) corrects only what lies outside the range, toward the range.

Shipped targets and profiles live in ``presets/`` as versioned TOML, read through this one
loader. A profile can also be measured from reference tracks (:func:`profile_from_features`),
so "master to a profile" and "match these references" are the same thing downstream.
"""

from __future__ import annotations

import math
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

import numpy as np
import tomli_w

from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.errors import InvalidAudioError, SettingsError, UsageError
from mixbridge.analysis.features import Features
from mixbridge.analysis.spectrum import (
    BAND_CENTRES_HZ,
    band_shape,
    held_bands,
    shape_mask,
    side_mid_ratio,
    side_share,
    smooth_bands,
)

PRESETS_SCHEMA_VERSION = 1  # presets/targets.toml
PROFILE_SCHEMA_VERSION = 2  # presets/profiles/*.toml: 2 added the normal ranges
DEFAULT_PROFILE = "balanced"
AUTO_PROFILE = "auto"  # --profile auto: the nearest shipped profile (assistant.judge.choose_profile)
# What a profile holds besides the band shape: all measured the same way as Features fields.
PROFILE_SCALARS = ("loudness_range_lu", "short_term_spread_lu", "crest_factor_db", "psr_db", "frame_crest_db",
                   "width", "tail_level_db")
DEFAULT_CEILING_DBTP = -1.0
# A profile of several tracks: the normal range is this percentile span across them...
RANGE_PERCENTILES = (10.0, 90.0)
# ...smoothed across this many neighbouring bands (a moving average of the band edges)...
RANGE_SMOOTHING_BANDS = 3
# ...and never narrower than centre +- these half-widths (a handful of tracks can agree by chance).
MIN_BAND_HALF_WIDTH_DB = 1.0
MIN_SCALAR_HALF_WIDTH = MappingProxyType({
    "loudness_range_lu": 1.0, "short_term_spread_lu": 0.5, "crest_factor_db": 1.0, "psr_db": 1.0,
    "frame_crest_db": 0.5, "width": 0.02, "tail_level_db": 1.0,
})
# One reference track: its own values +- these tolerances. Its spread over time is not used: in
# real music it measures verse against chorus (several dB), and a range that wide would stop a
# reference from being matched at all; the user asked for *that* track's sound.
REFERENCE_BAND_HALF_WIDTH_DB = 0.25
REFERENCE_SCALAR_HALF_WIDTH = MappingProxyType({
    "loudness_range_lu": 0.5, "short_term_spread_lu": 0.25, "crest_factor_db": 0.5, "psr_db": 0.5,
    "frame_crest_db": 0.25, "tail_level_db": 0.5,
})
# Its width: the side/mid amplitude ratio within this fraction either side of the reference's
# (±0.26 dB of side level). A fixed side share (±0.01) was ±42 % of the side of a narrow mix
# (share 0.024), so a width move stopped far short of the reference's (restoration: 24 % off).
REFERENCE_WIDTH_TOLERANCE = 0.03


@dataclass(frozen=True)
class Profile:
    """A sound to aim for: normal ranges and centres of the band shape and of each descriptor.

    ``band_shape_db`` (the centre), ``band_low_db`` and ``band_high_db`` hold 31 values in dB
    with the mean over :data:`analysis.spectrum.SHAPE_RANGE_HZ` of the centre removed. The
    scalar fields are the centres; ``scalar_ranges`` maps each of :data:`PROFILE_SCALARS` to
    its ``(low, high)``.
    """

    name: str
    band_shape_db: tuple[float, ...]
    band_low_db: tuple[float, ...]
    band_high_db: tuple[float, ...]
    loudness_range_lu: float
    short_term_spread_lu: float
    crest_factor_db: float
    psr_db: float
    frame_crest_db: float
    width: float
    tail_level_db: float
    scalar_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    description: str = ""
    derivation: str = ""
    tracks: int = 0  # how many tracks it was measured from
    is_reference: bool = False  # measured from --reference tracks (a match, not a genre)

    def __post_init__(self) -> None:
        n = len(BAND_CENTRES_HZ)
        for key in ("band_shape_db", "band_low_db", "band_high_db"):
            values = getattr(self, key)
            if len(values) != n or any(math.isinf(v) for v in values):
                raise ValueError(f"{key} needs {n} values (finite, or NaN for a band left open), got {len(values)}")
        bands = zip(self.band_low_db, self.band_shape_db, self.band_high_db)
        if len({tuple(math.isnan(v) for v in band) for band in bands} - {(True,) * 3, (False,) * 3}):
            raise ValueError("a band left open (NaN) must be open in its centre, low and high alike")
        if not any(math.isfinite(c) for c in self.band_shape_db):
            raise ValueError("the profile holds no band at all")
        if any(lo > c + 1e-9 or c > hi + 1e-9
               for lo, c, hi in zip(self.band_low_db, self.band_shape_db, self.band_high_db)):
            raise ValueError("every band needs low <= centre <= high")
        missing = [k for k in PROFILE_SCALARS if k not in self.scalar_ranges]
        if missing:
            raise ValueError(f"no range for {', '.join(missing)}")
        for key in PROFILE_SCALARS:
            lo, hi = self.scalar_ranges[key]
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= getattr(self, key) + 1e-9
                    and getattr(self, key) <= hi + 1e-9):
                raise ValueError(f"{key}: the range {lo}..{hi} must hold the centre {getattr(self, key)}")
        object.__setattr__(self, "scalar_ranges",
                           {k: (float(lo), float(hi)) for k, (lo, hi) in self.scalar_ranges.items()})

    def scalar_range(self, key: str) -> tuple[float, float]:
        return self.scalar_ranges[key]


@dataclass(frozen=True)
class Target:
    """Delivery spec plus profile."""

    name: str
    lufs: float
    ceiling_dbtp: float
    profile: Profile
    description: str = ""
    auto_profile: bool = False  # --profile auto: the profile is chosen per mix (assistant.profile_choice)
    profile_choice: str = ""  # why that profile was chosen


def known_bands(profile: Profile) -> np.ndarray:
    """The bands the profile has a value for: a track sampled at a low rate holds nothing above
    0.45 x its rate, and a profile made from it leaves those bands open (NaN), never judged."""
    return np.isfinite(profile.band_shape_db) & np.isfinite(profile.band_low_db) & np.isfinite(profile.band_high_db)


def tonal_error_db(band_db: Sequence[float], profile: Profile, sample_rate: int) -> float:
    """Mean absolute band difference to the profile's centre, overall level removed (dB), over
    the tonal bands both the audio and the profile hold."""
    mask = shape_mask(sample_rate) & known_bands(profile)
    a = band_shape(band_db, mask)[mask]
    b = band_shape(profile.band_shape_db, mask)[mask]
    return float(np.mean(np.abs(a - b)))


def profile_from_features(features: Sequence[Features], name: str, description: str = "",
                          derivation: str = "", reference: bool = False) -> Profile:
    """The profile of one or more tracks, with normal ranges.

    Several tracks: centre = median, range = the :data:`RANGE_PERCENTILES` span across the
    tracks (band edges smoothed over :data:`RANGE_SMOOTHING_BANDS` bands), never narrower than
    the minimum half-widths. One track: its own values +- the reference tolerances.
    ``reference``: the tracks are ``--reference`` tracks (recorded in the profile, so the
    judgment may reach further for them, see :mod:`assistant.judge`).
    """
    if not features:
        raise UsageError("a profile needs at least one track")
    for f in features:
        if not math.isfinite(f.integrated_lufs) or f.duration_s < 3.0:
            raise InvalidAudioError("is silent or shorter than 3 s: it cannot serve as a reference", f.source)
    # the level is taken over the tonal bands every track holds; the bands a track cannot hold
    # (above 0.45 x its rate) are open for it (NaN), and for the profile where no track holds them
    common = np.logical_and.reduce([shape_mask(f.sample_rate) for f in features])
    holds = [held_bands(f.sample_rate) for f in features]
    shapes = np.array([np.where(h, band_shape(f.mid_band_db, common), np.nan) for f, h in zip(features, holds)])
    scalars = {key: np.array([_finite_or(getattr(f, key), 0.0) for f in features]) for key in PROFILE_SCALARS}
    if len(features) == 1:
        centre = shapes[0]
        low, high = centre - REFERENCE_BAND_HALF_WIDTH_DB, centre + REFERENCE_BAND_HALF_WIDTH_DB
        centres = {k: float(v[0]) for k, v in scalars.items()}
        ranges = {k: (centres[k] - REFERENCE_SCALAR_HALF_WIDTH[k], centres[k] + REFERENCE_SCALAR_HALF_WIDTH[k])
                  for k in PROFILE_SCALARS if k != "width"}
        ratio = side_mid_ratio(centres["width"])
        ranges["width"] = (side_share(ratio * (1.0 - REFERENCE_WIDTH_TOLERANCE)),
                           side_share(ratio * (1.0 + REFERENCE_WIDTH_TOLERANCE)))
    else:
        lo_p, hi_p = RANGE_PERCENTILES
        with warnings.catch_warnings():  # a band no track holds: all-NaN, left open
            warnings.simplefilter("ignore", RuntimeWarning)
            centre = np.nanmedian(shapes, axis=0)
            low = np.minimum(smooth_bands(np.nanpercentile(shapes, lo_p, axis=0), RANGE_SMOOTHING_BANDS),
                             centre - MIN_BAND_HALF_WIDTH_DB)
            high = np.maximum(smooth_bands(np.nanpercentile(shapes, hi_p, axis=0), RANGE_SMOOTHING_BANDS),
                              centre + MIN_BAND_HALF_WIDTH_DB)
        centres = {k: float(np.median(v)) for k, v in scalars.items()}
        ranges = {k: (min(float(np.percentile(v, lo_p)), centres[k] - MIN_SCALAR_HALF_WIDTH[k]),
                      max(float(np.percentile(v, hi_p)), centres[k] + MIN_SCALAR_HALF_WIDTH[k]))
                  for k, v in scalars.items()}
    # a band open in any of the three (the range smoothing spreads an open band to its neighbours) is open in all
    open_band = np.isnan(centre) | np.isnan(low) | np.isnan(high)
    centre, low, high = (np.where(open_band, np.nan, v) for v in (centre, low, high))
    ranges["width"] = (max(ranges["width"][0], 0.0), min(ranges["width"][1], 1.0))
    r2 = lambda values: tuple(round(float(v), 2) for v in values)  # noqa: E731
    digits = {k: 5 if k == "width" else 3 for k in PROFILE_SCALARS}  # a narrow mix's side share is ~0.02
    return Profile(
        name=name, band_shape_db=r2(centre), band_low_db=r2(np.minimum(low, centre)),
        band_high_db=r2(np.maximum(high, centre)),
        **{k: round(float(centres[k]), digits[k]) for k in PROFILE_SCALARS},
        scalar_ranges={k: (round(float(lo), digits[k]), round(float(hi), digits[k])) for k, (lo, hi) in ranges.items()},
        description=description, derivation=derivation, tracks=len(features), is_reference=reference,
    )


def _finite_or(value: float, fallback: float) -> float:
    return float(value) if math.isfinite(value) else fallback


def reference_lufs(features: Sequence[Features]) -> float:
    """Loudness of the references: the power mean of their integrated loudness."""
    return float(10.0 * np.log10(np.mean([10.0 ** (f.integrated_lufs / 10.0) for f in features])))


# ---- presets/ loader -------------------------------------------------------------------------

def _preset_file(*parts: str):
    return resources.files("mixbridge.presets").joinpath(*parts)


def _read_toml(resource, what: str, version: int = PRESETS_SCHEMA_VERSION) -> dict:
    try:
        data = tomllib.loads(resource.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read {what} ({exc})", str(resource)) from None
    found = data.get("schema_version")
    if found != version:
        hint = ""
        if what == "profile" and found == 1:
            hint = ("; version 1 profiles have no normal ranges, which the judgment needs: make it again "
                    "with `mixbridge profile TRACK... -o FILE.toml --name NAME`")
        raise SettingsError(f"{what} has schema_version {found!r}, expected {version}{hint}", str(resource))
    return data


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_file("profiles").iterdir() if p.name.endswith(".toml"))


def shipped_profiles() -> list[Profile]:
    """Every shipped profile (the library ``--profile auto`` chooses from)."""
    return [load_profile(name) for name in profile_names()]


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a profile TOML file by path (schema version 2, with ranges)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        resource = path
    elif name_or_path in profile_names():
        resource = _preset_file("profiles", f"{name_or_path}.toml")
    else:
        valid = ", ".join([*profile_names(), AUTO_PROFILE])
        raise UsageError(f"unknown profile {name_or_path!r}; valid: {valid}, or a .toml file")
    data = _read_toml(resource, "profile", PROFILE_SCHEMA_VERSION)
    try:
        bands, scalars = data["bands"], data["scalars"]
        if [round(float(f), 1) for f in bands["centres_hz"]] != [round(f, 1) for f in BAND_CENTRES_HZ]:
            raise ValueError("bands.centres_hz are not the 31 third-octave bands of this version")
        return Profile(
            name=str(data["name"]),
            band_shape_db=tuple(float(v) for v in bands["centre_db"]),
            band_low_db=tuple(float(v) for v in bands["low_db"]),
            band_high_db=tuple(float(v) for v in bands["high_db"]),
            **{key: float(scalars[key]["centre"]) for key in PROFILE_SCALARS},
            scalar_ranges={key: (float(scalars[key]["low"]), float(scalars[key]["high"])) for key in PROFILE_SCALARS},
            description=str(data.get("description", "")), derivation=str(data.get("derivation", "")),
            tracks=int(data.get("tracks", 0)), is_reference=bool(data.get("reference", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"invalid profile ({type(exc).__name__}: {exc})", str(resource)) from None


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write a profile as TOML (atomically)."""
    data = {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "name": profile.name,
        "description": profile.description,
        "derivation": profile.derivation,
        "tracks": profile.tracks,
        "reference": profile.is_reference,
        "scalars": {key: {"low": profile.scalar_ranges[key][0], "centre": getattr(profile, key),
                          "high": profile.scalar_ranges[key][1]} for key in PROFILE_SCALARS},
        "bands": {"centres_hz": [round(f, 1) for f in BAND_CENTRES_HZ], "low_db": list(profile.band_low_db),
                  "centre_db": list(profile.band_shape_db), "high_db": list(profile.band_high_db)},
    }
    return write_text(path, tomli_w.dumps(data, multiline_strings=False))


def _targets_table() -> dict:
    return _read_toml(_preset_file("targets.toml"), "targets")["targets"]


def target_names() -> list[str]:
    return sorted(_targets_table())


def load_target(name: str, profile: str | None = None) -> Target:
    """A shipped delivery target, with its default profile or the one named."""
    table = _targets_table()
    if name not in table:
        raise UsageError(f"unknown target {name!r}; valid: {', '.join(sorted(table))}")
    entry = table[name]
    return Target(name=name, lufs=float(entry["lufs"]), ceiling_dbtp=float(entry["ceiling_dbtp"]),
                  profile=load_profile(profile or entry.get("profile", DEFAULT_PROFILE)),
                  description=str(entry.get("description", "")))
