"""Targets: a delivery spec (LUFS, true-peak ceiling) plus a sound profile to aim for.

Shipped targets and profiles live in ``presets/`` as versioned TOML, read through this one
loader. A profile can also be measured from reference tracks (:func:`profile_from_features`),
so "master to a profile" and "match this reference" are the same thing downstream.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from assistant.atomic import write_text
from assistant.errors import SettingsError, UsageError
from assistant.features import Features
from assistant.spectrum import BAND_CENTRES_HZ, band_shape, shape_mask

PRESETS_SCHEMA_VERSION = 1
DEFAULT_PROFILE = "balanced"
# What a profile holds besides the band shape: all measured the same way as Features fields.
PROFILE_SCALARS = ("loudness_range_lu", "short_term_spread_lu", "crest_factor_db", "psr_db", "frame_crest_db",
                   "width", "tail_level_db")
DEFAULT_CEILING_DBTP = -1.0


@dataclass(frozen=True)
class Profile:
    """A sound to aim for: band-spectrum shape (dB, level removed) and dynamics/stereo/ambience."""

    name: str
    band_shape_db: tuple[float, ...]  # 31 values, mean over SHAPE_RANGE_HZ removed
    loudness_range_lu: float
    short_term_spread_lu: float
    crest_factor_db: float
    psr_db: float
    frame_crest_db: float
    width: float
    tail_level_db: float
    description: str = ""
    derivation: str = ""


@dataclass(frozen=True)
class Target:
    """Delivery spec plus profile."""

    name: str
    lufs: float
    ceiling_dbtp: float
    profile: Profile
    description: str = ""


def tonal_error_db(band_db: Sequence[float], profile: Profile, sample_rate: int) -> float:
    """Mean absolute band difference to the profile, overall level removed (dB)."""
    mask = shape_mask(sample_rate)
    a = band_shape(band_db, mask)[mask]
    b = band_shape(profile.band_shape_db, mask)[mask]
    return float(np.mean(np.abs(a - b)))


def profile_from_features(features: Sequence[Features], name: str, description: str = "",
                          derivation: str = "") -> Profile:
    """The profile of one or more tracks: mean band shape and mean descriptors."""
    if not features:
        raise UsageError("a profile needs at least one track")
    for f in features:
        if not math.isfinite(f.integrated_lufs) or f.duration_s < 3.0:
            raise UsageError("is silent or shorter than 3 s: it cannot serve as a reference", f.source)
    shapes = np.array([band_shape(f.mid_band_db) for f in features])
    return Profile(
        name=name,
        band_shape_db=tuple(round(float(v), 2) for v in shapes.mean(axis=0)),
        **{key: round(float(np.mean([getattr(f, key) for f in features])), 3) for key in PROFILE_SCALARS},
        description=description,
        derivation=derivation,
    )


def reference_lufs(features: Sequence[Features]) -> float:
    """Loudness of the references: the power mean of their integrated loudness."""
    return float(10.0 * np.log10(np.mean([10.0 ** (f.integrated_lufs / 10.0) for f in features])))


# ---- presets/ loader -------------------------------------------------------------------------

def _preset_file(*parts: str):
    return resources.files("presets").joinpath(*parts)


def _read_toml(resource, what: str) -> dict:
    try:
        data = tomllib.loads(resource.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read {what} ({exc})", str(resource)) from None
    if data.get("schema_version") != PRESETS_SCHEMA_VERSION:
        raise SettingsError(f"{what} has schema_version {data.get('schema_version')!r}, "
                            f"expected {PRESETS_SCHEMA_VERSION}", str(resource))
    return data


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_file("profiles").iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a profile TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        resource = path
    elif name_or_path in profile_names():
        resource = _preset_file("profiles", f"{name_or_path}.toml")
    else:
        raise UsageError(f"unknown profile {name_or_path!r}; valid: {', '.join(profile_names())}")
    data = _read_toml(resource, "profile")
    try:
        shape = tuple(float(v) for v in data["band_shape_db"])
        if len(shape) != len(BAND_CENTRES_HZ):
            raise ValueError(f"band_shape_db has {len(shape)} values, expected {len(BAND_CENTRES_HZ)}")
        return Profile(
            name=str(data["name"]), band_shape_db=shape,
            **{key: float(data[key]) for key in PROFILE_SCALARS},
            description=str(data.get("description", "")), derivation=str(data.get("derivation", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SettingsError(f"invalid profile ({exc})", str(resource)) from None


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write a profile as TOML (atomically)."""
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'

    lines = [
        f"schema_version = {PRESETS_SCHEMA_VERSION}",
        f"name = {q(profile.name)}",
        f"description = {q(profile.description)}",
        f"derivation = {q(profile.derivation)}",
        *(f"{key} = {getattr(profile, key)}" for key in PROFILE_SCALARS),
        "# third-octave bands " + ", ".join(f"{f:.0f}" for f in BAND_CENTRES_HZ) + " Hz",
        "band_shape_db = [" + ", ".join(f"{v:.2f}" for v in profile.band_shape_db) + "]",
    ]
    return write_text(path, "\n".join(lines) + "\n")


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
