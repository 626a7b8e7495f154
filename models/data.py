"""Self-supervised training data: (features of x, target descriptor of y = chain(x; theta)) -> theta.

For each source clip, a random *starting balance* is applied first (tilt, boom, harshness,
squash, reverb, width, level) so the model sees dull, harsh, boomy, thin, squashed, dynamic,
dry and wet mixes; then chain settings theta are drawn from the learned ranges (seeded) and
rendered. Randomness (drawing) is separate from the deterministic transform (rendering), so
every example is reproducible from its seed.

The model learns the parameters in :data:`LEARNED` only; EQ frequencies and Qs, compressor
timing and reverb room are fixed to :data:`models.baseline.EQ_LAYOUT` / the constants below,
which makes the mapping identifiable (many EQ layouts give the same spectrum).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from mixbridge.analysis.audio import READ_EXTENSIONS, load
from mixbridge.analysis.features import Features
from mixbridge.effects.render import render
from mixbridge.effects.schema import EQ_STAGES, PARAM_INDEX, ChainSettings, ParamSpec, switched_on
from mixbridge.models.baseline import EQ_LAYOUT, nominal_trim_db
from mixbridge.models.foreign import FAMILIES, degrade

log = logging.getLogger(__name__)

LEARNED = (
    "low_shelf.gain_db", "peak1.gain_db", "peak2.gain_db", "peak3.gain_db", "peak4.gain_db",
    "high_shelf.gain_db", "compressor.threshold_db", "compressor.ratio", "reverb.wet",
    "stereo.width_percent",
)
EQ_DRAW_DB = 8.0  # EQ gains are drawn (and learned) within ±this
# The training distribution of each learned parameter (a sub-range of its ParamSpec).
DRAW_RANGES = {
    **{f"{s}.gain_db": (-EQ_DRAW_DB, EQ_DRAW_DB) for s in EQ_STAGES},
    "compressor.threshold_db": (-36.0, -8.0),
    "compressor.ratio": (1.0, 8.0),
    "reverb.wet": (0.0, 0.4),
    "stereo.width_percent": (70.0, 140.0),
}
FIXED = {
    "compressor.attack_ms": 20.0, "compressor.release_ms": 200.0, "compressor.makeup_db": 0.0,
    "compressor.amount_percent": 100.0, "reverb.room_size": 0.6, "reverb.damping": 0.5,
    "reverb.width": 1.0,
}
P_COMPRESSOR_OFF = 0.35
P_REVERB_OFF = 0.5
CLIP_S = 12.0


def learned_specs() -> dict[str, ParamSpec]:
    """Each learned parameter's schema entry narrowed to its training range: the model's
    outputs are normalised with it (the schema's scale, e.g. log for the ratio)."""
    return {name: replace(PARAM_INDEX[name], min=DRAW_RANGES[name][0], max=DRAW_RANGES[name][1]) for name in LEARNED}


def learned_ranges() -> dict[str, tuple[float, float]]:
    """Normalisation range of each learned parameter (the drawing range)."""
    return {name: DRAW_RANGES[name] for name in LEARNED}


def settings_from_learned(values: dict[str, float], input_lufs: float,
                          layout: Mapping[str, tuple[float, float]] = EQ_LAYOUT) -> ChainSettings:
    """A full chain from the learned values: the EQ ``layout`` (stage -> (freq_hz, q); the
    model's fixed one by default), trim to the nominal level.

    A compressor with ratio 1 and a reverb with wet 0 are switched off.
    """
    chain = {"trim.gain_db": nominal_trim_db(input_lufs), **FIXED}
    for stage, (freq, q) in layout.items():
        chain[f"{stage}.freq_hz"], chain[f"{stage}.q"] = freq, q
    for name in LEARNED:
        spec = PARAM_INDEX[name]
        chain[name] = float(np.clip(values[name], spec.min, spec.max))
    enabled = {"trim": True, "stereo": True, **{s: True for s in EQ_STAGES},
               "compressor": switched_on("compressor", chain), "reverb": switched_on("reverb", chain),
               "highpass": False}
    if not enabled["compressor"]:
        chain["compressor.ratio"] = 1.0
    return ChainSettings.create(chain, enabled)


def learned_values(settings: ChainSettings) -> dict[str, float]:
    """The learned parameters of a chain (an off compressor reads ratio 1, off reverb wet 0)."""
    out = {name: settings[name] for name in LEARNED}
    if not settings.is_on("compressor"):
        out["compressor.ratio"] = 1.0
        out["compressor.threshold_db"] = DRAW_RANGES["compressor.threshold_db"][1]
    if not settings.is_on("reverb"):
        out["reverb.wet"] = 0.0
    for stage in EQ_STAGES:
        if not settings.is_on(stage):
            out[f"{stage}.gain_db"] = 0.0
    if not settings.is_on("stereo"):
        out["stereo.width_percent"] = 100.0
    return out


def draw_learned(rng: np.random.Generator) -> dict[str, float]:
    """Random learned values from the training distribution."""
    values = {}
    for stage in EQ_STAGES:
        lo, hi = DRAW_RANGES[f"{stage}.gain_db"]
        # Most real corrections are small: half the draws within +-3 dB.
        values[f"{stage}.gain_db"] = float(rng.uniform(lo, hi) if rng.random() < 0.5 else rng.uniform(-3, 3))
    if rng.random() < P_COMPRESSOR_OFF:
        values["compressor.ratio"] = 1.0
        values["compressor.threshold_db"] = DRAW_RANGES["compressor.threshold_db"][1]
    else:
        values["compressor.ratio"] = float(math.exp(rng.uniform(math.log(1.5), math.log(8.0))))
        values["compressor.threshold_db"] = float(rng.uniform(*DRAW_RANGES["compressor.threshold_db"]))
    values["reverb.wet"] = 0.0 if rng.random() < P_REVERB_OFF else float(rng.uniform(0.02, 0.4))
    values["stereo.width_percent"] = float(rng.uniform(*DRAW_RANGES["stereo.width_percent"]))
    return values


def starting_balance(rng: np.random.Generator) -> ChainSettings:
    """A random 'how the mix came out' chain: dull/bright, boomy/thin, squashed/dynamic, dry/wet."""
    values = {
        "low_shelf.freq_hz": float(rng.uniform(60, 250)), "low_shelf.gain_db": float(rng.uniform(-8, 8)),
        "high_shelf.freq_hz": float(rng.uniform(3000, 10000)), "high_shelf.gain_db": float(rng.uniform(-9, 6)),
        "peak2.freq_hz": float(rng.uniform(200, 2000)), "peak2.gain_db": float(rng.uniform(-6, 6)),
        "peak2.q": float(rng.uniform(0.5, 3)),
        "peak3.freq_hz": float(rng.uniform(1500, 6000)), "peak3.gain_db": float(rng.uniform(-5, 6)),
        "trim.gain_db": float(rng.uniform(-12, 6)),
        "stereo.width_percent": float(rng.uniform(40, 150)),
    }
    enabled = {"low_shelf": True, "high_shelf": True, "peak2": True, "peak3": True, "trim": True,
               "stereo": True, "peak1": False, "peak4": False}
    if rng.random() < 0.35:  # squashed
        values.update({"compressor.threshold_db": float(rng.uniform(-30, -12)),
                       "compressor.ratio": float(rng.uniform(3, 12)), "compressor.attack_ms": 2.0,
                       "compressor.release_ms": 80.0})
        enabled["compressor"] = True
    if rng.random() < 0.3:  # wet
        values.update({"reverb.wet": float(rng.uniform(0.05, 0.35)),
                       "reverb.room_size": float(rng.uniform(0.3, 0.9))})
        enabled["reverb"] = True
    return ChainSettings.create(values, enabled)


@dataclass(frozen=True)
class Example:
    """One training example: the input and target features and the learned values."""

    features_x: Features
    features_y: Features
    values: dict[str, float]
    source: str
    seed: int
    x: np.ndarray  # the input clip (channels, n)
    y: np.ndarray  # the rendered target


def _peak_safe(samples: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return samples / peak * 0.9 if peak > 0.9 else samples


def make_examples(samples: np.ndarray, sample_rate: int, source: str, seed: int, variants: int,
                  analyze_array) -> Iterator[Example]:
    """``variants`` examples from one clip; ``analyze_array(samples, rate) -> Features``."""
    rng = np.random.default_rng(seed)
    for v in range(variants):
        x = _peak_safe(render(samples, sample_rate, starting_balance(rng)))
        fx = analyze_array(x, sample_rate)
        if not math.isfinite(fx.integrated_lufs) or fx.integrated_lufs < -60:
            continue
        values = draw_learned(rng)
        y = render(x, sample_rate, settings_from_learned(values, fx.integrated_lufs))
        if not np.isfinite(y).all():
            continue
        y = _peak_safe(y)
        yield Example(fx, analyze_array(y, sample_rate), values, source, seed * 1000 + v, x, y)


def foreign_examples(samples: np.ndarray, sample_rate: int, source: str, seed: int, variants: int,
                     analyze_array) -> Iterator[Example]:
    """``variants`` examples from one real clip degraded by foreign processors
    (:mod:`mixbridge.models.foreign`, the families in turn), the clip itself as the target.
    The label undoes what the chain can undo; the compressor and reverb are off."""
    rng = np.random.default_rng(seed)
    y = _peak_safe(samples)
    fy = analyze_array(y, sample_rate)
    if not math.isfinite(fy.integrated_lufs) or fy.integrated_lufs < -60:
        return
    for v in range(variants):
        x, undo, _ = degrade(y, sample_rate, rng, FAMILIES[v % len(FAMILIES)],
                             eq_limit_db=EQ_DRAW_DB)
        if not np.isfinite(x).all():
            continue
        x = _peak_safe(x)
        fx = analyze_array(x, sample_rate)
        if not math.isfinite(fx.integrated_lufs) or fx.integrated_lufs < -60:
            continue
        values = {"compressor.ratio": 1.0, "compressor.threshold_db": DRAW_RANGES["compressor.threshold_db"][1],
                  "reverb.wet": 0.0}
        values.update({name: float(np.clip(value, *DRAW_RANGES[name])) for name, value in undo.items()})
        yield Example(fx, fy, values, source, seed * 1000 + 500 + v, x, y)


def clips_from_file(path: Path, clip_s: float = CLIP_S, max_clips: int = 4) -> list[tuple[np.ndarray, int]]:
    """Up to ``max_clips`` evenly spaced stereo clips of ``clip_s`` seconds from a file."""
    audio = load(path).as_stereo()
    n = int(clip_s * audio.sample_rate)
    if audio.frames < n:
        return [(audio.samples.copy(), audio.sample_rate)]
    starts = np.linspace(0, audio.frames - n, num=min(max_clips, max(1, audio.frames // n))).astype(int)
    return [(audio.samples[:, s : s + n].copy(), audio.sample_rate) for s in starts]


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in READ_EXTENSIONS and p.is_file())


SCORE_CLIPS_DIR = "score-clips"  # the folder rendered score clips are cached in (models.synth)


def is_score_clip(path: Path | str) -> bool:
    """Whether ``path`` is a clip rendered from a score (not a real recording)."""
    return SCORE_CLIPS_DIR in Path(path).parts


def split_by_source(paths: Sequence[Path], holdout_every: int = 5) -> tuple[list[Path], list[Path]]:
    """Deterministic train/held-out split by file (every n-th file held out)."""
    paths = sorted(paths)
    held = [p for i, p in enumerate(paths) if i % holdout_every == holdout_every - 1]
    return [p for p in paths if p not in held], held
