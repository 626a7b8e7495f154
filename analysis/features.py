"""The ``Features`` hand-over object: named measurements with units, and their JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from mixbridge.analysis.errors import SettingsError
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ

FEATURE_VERSION = 1


@dataclass(frozen=True)
class Features:
    """What the analyzer measured in one piece of audio. Undefined values are ``-inf``.

    Loudness per ITU-R BS.1770-5 / EBU R128; band values over the 31 third-octave bands of
    :data:`analysis.spectrum.BAND_CENTRES_HZ`; levels in dB re full scale (mean square).
    """

    source: str
    sample_rate: int
    channels: int
    duration_s: float
    # loudness
    integrated_lufs: float
    max_momentary_lufs: float
    max_short_term_lufs: float
    loudness_range_lu: float
    short_term_spread_lu: float
    # peaks and level
    sample_peak_dbfs: float
    true_peak_dbtp: float
    rms_dbfs: float
    crest_factor_db: float
    plr_db: float
    psr_db: float
    clipped_samples: int
    dc_offset_dbfs: float
    # spectrum
    mid_band_db: tuple[float, ...]
    side_band_db: tuple[float, ...]
    tilt_db_per_octave: float
    centroid_hz: float
    # stereo
    correlation: float
    width: float
    correlation_band: tuple[float, ...]
    width_band: tuple[float, ...]
    # dynamics and ambience
    frame_crest_db: float
    transient_density_per_s: float
    onset_strength_db: float
    decay_rate_db_per_s: float
    tail_level_db: float
    # series (for plots) and notes
    short_term_lufs: tuple[float, ...]
    series_hop_s: float
    notes: tuple[str, ...] = ()

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready dict: ``-inf``/NaN become ``None``; a ``feature_version`` key is added."""
        out = {"feature_version": FEATURE_VERSION, "band_centres_hz": [round(f, 1) for f in BAND_CENTRES_HZ]}
        for key, value in asdict(self).items():
            out[key] = _jsonable(value)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict) -> "Features":
        """Inverse of :meth:`to_dict` (``None`` back to ``-inf``)."""
        if data.get("feature_version") != FEATURE_VERSION:
            raise SettingsError(f"feature_version {data.get('feature_version')} is not {FEATURE_VERSION}")
        kwargs = {}
        for f in fields(cls):
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(-math.inf if v is None else v for v in value)
            elif value is None:
                value = -math.inf
            kwargs[f.name] = value
        return cls(**kwargs)

    # ---- model vector --------------------------------------------------------------


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value
