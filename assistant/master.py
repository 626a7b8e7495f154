"""The master pipeline: analyze -> settings -> render -> finalize -> save -> report.

``master_file`` is the library entry point the CLI (and the batch engine) call. Every step's
result goes into a :class:`MasterReport`, whose JSON keys are documented in README.md.

``master_file`` streams, so memory stays bounded for any length (an hour of stereo 44.1 kHz
peaks near 0.7 GB RSS): the input is analysed in blocks; the settings engine sees a 30 s excerpt
(what the model's refinement renders anyway); pass 1 renders block by block into a float32
scratch file next to the output while measuring what the finalizer needs; pass 2 reads it
back, applies the finalizer's gain and limiter curve, dithers and writes the output to a
temporary name renamed at the end; the report re-measures the written file by streaming.
``master_audio`` is the in-memory form of the same render and finalizer.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.analyze import analyze, analyze_file, analyze_file_cached
from mixbridge.analysis.atomic import atomic_path, scratch_path, write_text
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.errors import InvalidAudioError, OutputError, UsageError
from mixbridge.analysis.features import Features
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, SpectrumAnalyzer, band_matrix, band_shape, shape_mask
from mixbridge.analysis.truepeak import true_peak_dbtp
from mixbridge.assistant.bridge import plugin_renderer, render_match
from mixbridge.assistant.judge import (
    Goal,
    JudgeOptions,
    Move,
    constrain,
    eq_layout,
    estimated_limiting_db,
    explain,
    goal_to_dict,
    judge,
    reach_goal,
    with_band_change,
)
from mixbridge.assistant.options import DEFAULT_ENGINE, ENGINES, MasterOptions
from mixbridge.assistant.profile_choice import with_profile_for
from mixbridge.assistant.targets import (
    AUTO_PROFILE,
    DEFAULT_CEILING_DBTP,
    DEFAULT_PROFILE,
    Target,
    load_profile,
    load_target,
    profile_from_features,
    reference_lufs,
    tonal_error_db,
)
from mixbridge.effects.finalize import (
    MAX_LIMITING_DB,
    BlockStatsMeter,
    FinalizePlan,
    FinalizeSpec,
    apply_stream,
    finalize,
    finalize_from_stats,
    limit_at_gain,
)
from mixbridge.effects.render import ChainRenderer, render
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, STAGE_LABELS, ChainSettings
from mixbridge.models.baseline import RESPONSE_FFT, fit_change, predict_dsp
from mixbridge.models.net import DESCRIPTOR, TargetDescriptor
from mixbridge.models.predict import ASPECTS, anchored_eq, excerpt, excerpt_spans, fit_compressor, predict_model
from mixbridge.models.predict import refine as refine_loop

log = logging.getLogger(__name__)

REPORT_VERSION = 1
DEFAULT_TARGET = "spotify"  # when neither --target, --reference nor --lufs is given
MIN_MASTER_S = 1.0
DC_HIGHPASS_DBFS = -50.0  # a DC offset above this is removed by the high-pass...
DC_HIGHPASS_HZ = 20.0  # ...at this cutoff (two first-order sections: no audible bass loss)
LIMITER_SHAPE_MIN_DB = 1.0  # less limiting than this leaves the band shape alone
DELIVERED_ITERATIONS = 2  # closed-loop rounds of the EQ against the finalizer's limiter
DELIVERED_HEADROOM_DB = 2.0  # an EQ gain may exceed its limit by this much for what the limiter takes back
STREAM_BLOCK_FRAMES = audio_io.DITHER_BLOCK_FRAMES  # ~24 s at 44.1 kHz; dither as in master_audio


@dataclass(frozen=True)
class MasterReport:
    input_path: str
    output_path: str
    target: Target
    engine: str
    settings: ChainSettings
    input_features: Features
    output_features: Features
    gain_db: float
    limiting_db: float
    bit_depth: str
    tonal_error_before_db: float
    tonal_error_after_db: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    plugins: dict | None = None  # with --plugins: the map, the chain on the plugins, the match figures
    goal: Goal | None = None  # the judgment behind the settings (None for --chain)
    moves: tuple[Move, ...] = ()  # one evidence line per stage or measurement
    notes: tuple[str, ...] = ()  # the judgment's notes (as delivered, DC high-pass, boosts scaled)

    def to_dict(self) -> dict:
        t = self.target
        return {
            "report_version": REPORT_VERSION,
            "input": {"path": self.input_path, "features": self.input_features.to_dict()},
            "target": {"name": t.name, "lufs": t.lufs, "ceiling_dbtp": t.ceiling_dbtp,
                       "profile": t.profile.name, "profile_description": t.profile.description},
            "engine": self.engine,
            "settings": self.settings.to_dict(),
            "finalizer": {"gain_db": round(self.gain_db, 3), "limiting_db": round(self.limiting_db, 3)},
            "output": {"path": self.output_path, "bit_depth": self.bit_depth,
                       "features": self.output_features.to_dict()},
            "tonal_error_db": {"before": round(self.tonal_error_before_db, 3),
                               "after": round(self.tonal_error_after_db, 3)},
            "warnings": list(self.warnings),
            "judgment": judgment_dict(self.goal, self.moves, self.notes),
        } | ({"plugins": self.plugins} if self.plugins else {})


def judgment_dict(goal: Goal | None, moves: Sequence[Move], notes: Sequence[str] = ()) -> dict | None:
    """The report's ``judgment``: the goal's evidence, one record per move (with its text), notes."""
    if goal is None:
        return None
    return goal_to_dict(goal) | {"moves": [m.to_dict() for m in moves], "notes": list(notes)}


def resolve_target(target: str | None = None, references: Sequence[str] = (), lufs: float | None = None,
                   ceiling_dbtp: float | None = None, profile: str | None = None,
                   progress: Callable[[str], None] | None = None) -> Target:
    """Turn the CLI's target options into one Target.

    ``--target`` gives LUFS, ceiling and a default profile; ``--reference`` tracks give the
    profile (and, without ``--target``/``--lufs``, the loudness); ``--lufs``/``--ceiling``
    override the delivery figures; ``--profile`` names a shipped profile or a TOML file.
    """
    if references and profile:
        raise UsageError("use either --reference or --profile, not both")
    if target is None and not references and lufs is None:
        target = DEFAULT_TARGET
        log.info("no target given: using %s", DEFAULT_TARGET)
    base = load_target(target) if target else None
    chosen_profile = base.profile if base else None
    ref_lufs = None
    if references:
        feats = []
        for ref in references:
            if progress:
                progress(f"analysing reference {ref}")
            feats.append(analyze_file_cached(ref))
        chosen_profile = profile_from_features(
            feats, name="reference", description="measured from " + ", ".join(Path(r).name for r in references),
            reference=True)
        ref_lufs = reference_lufs(feats)
    elif profile == AUTO_PROFILE:
        chosen_profile = load_profile(DEFAULT_PROFILE)  # replaced per mix by with_profile_for
    elif profile:
        chosen_profile = load_profile(profile)
    if chosen_profile is None:
        chosen_profile = load_profile(DEFAULT_PROFILE)
    out_lufs = lufs if lufs is not None else base.lufs if base else ref_lufs
    out_ceiling = ceiling_dbtp if ceiling_dbtp is not None else base.ceiling_dbtp if base else DEFAULT_CEILING_DBTP
    assert out_lufs is not None  # a target, a level or references: the default target otherwise (above)
    if not -70.0 <= out_lufs <= 0.0:
        raise UsageError(f"--lufs {out_lufs} is outside -70..0 LUFS")
    if not -20.0 <= out_ceiling <= 0.0:
        raise UsageError(f"--ceiling {out_ceiling} is outside -20..0 dBTP")
    name = base.name if base and lufs is None and ceiling_dbtp is None else "custom"
    if references and not base and lufs is None:
        name = "reference"
    return Target(name, float(out_lufs), float(out_ceiling), chosen_profile,
                  base.description if base else "", auto_profile=profile == AUTO_PROFILE and not references)


@dataclass(frozen=True)
class Decision:
    """The settings for a mix, the judgment behind them and its evidence, one line per move."""

    settings: ChainSettings
    goal: Goal
    moves: tuple[Move, ...]
    notes: tuple[str, ...] = ()


def suggest_settings(audio: Audio, features: Features, target: Target, engine: str = DEFAULT_ENGINE,
                     refine: bool = True, judgment: JudgeOptions = JudgeOptions(),
                     max_limiting_db: float = MAX_LIMITING_DB) -> Decision:
    """The judgment (:func:`assistant.judge.judge`) and the chain that carries it out.

    ``audio`` is the excerpt the closed loops render (the whole track when it is short);
    ``features`` describe the whole track. The engine sizes the moves the goal asks for:
    ``model``: the shipped learned model (numpy) given the in-range target, optionally refined
    in a closed loop; ``dsp``: the signal-processing baseline. The chain is then held to the
    goal (:func:`assistant.judge.constrain`), a compressor is sized in closed loop when the
    goal asks for one, and EQ boosts are scaled back if they would cost the limiting the
    delivery needs. A DC offset switches the high-pass on. The mix is judged as delivered
    (:func:`as_delivered`): with the finalizer's limiting, when it needs much.
    """
    notes: list[str] = []
    reference = target.profile.is_reference
    judged = features if reference else as_delivered(audio, features, target, max_limiting_db)
    if judged is not features:
        change = band_shape(judged.mid_band_db) - band_shape(features.mid_band_db)
        notes.append(f"judged as delivered: at the target loudness the peaks stand "
                     f"{estimated_limiting_db(features, target):.1f} dB over the ceiling, and the finalizer's "
                     f"limiting changes the band shape by up to {np.max(np.abs(change[shape_mask(features.sample_rate)])):.1f} dB")
    goal = judge(judged, target, judgment)
    settings = ChainSettings.create()  # every stage neutral: the finalizer alone delivers the target
    if not goal.empty:
        settings = constrain(_engine_settings(audio, judged, goal, engine, refine), goal)
    settings = _dc_highpass(features, target, settings, notes)
    if not reference:  # the loop sees the high-pass too (it trims the lowest bands a little)
        goal, settings = reach_goal(goal, judged, target.profile, settings)
        if not settings.is_on("highpass"):  # the loop's low shelf may carry the DC over the threshold
            settings = _dc_highpass(features, target, settings, notes)
            if settings.is_on("highpass"):
                goal, settings = reach_goal(goal, judged, target.profile, settings)
        goal, settings = _reach_as_delivered(audio, features, judged, target, goal, settings, max_limiting_db,
                                             notes)
    if goal.active("dynamics"):
        settings = _fit_compressor(audio, judged, goal, settings)
    if goal.active("space"):
        goal, settings = _reach_space(audio, judged, goal, settings)
    if not goal.empty:
        settings = _within_limiting_budget(audio, features, target, settings, max_limiting_db, notes)
    return Decision(settings, goal, explain(goal, settings), tuple(notes))


def as_delivered(audio: Audio, features: Features, target: Target, max_limiting_db: float) -> Features:
    """``features`` with the band spectrum and width the finalizer will deliver: when the
    input needs more than LIMITER_SHAPE_MIN_DB of limiting, the limiter (which acts on the
    loud, dense passages) reshapes the spectrum; measured on ``audio``, the excerpt, at the
    whole track's gain. The judgment judges the mix as it will be heard, so a second pass,
    which needs no limiting, finds it where the first left it. This is the judgment's view,
    measured without the chain (re-judging behind the chain's EQ was tried: a second pass
    moved on 7 of 84 tracks against 4); what the limiter then does to the EQ's moves is
    corrected by :func:`_reach_as_delivered`, which keeps the goal and refits the EQ."""
    if estimated_limiting_db(features, target) < LIMITER_SHAPE_MIN_DB:
        return features
    source = excerpt(audio.samples, audio.sample_rate)  # what the refinement renders too
    source_lufs = measure_loudness(source, audio.sample_rate).integrated_lufs
    limited, _ = _finalized_excerpt(source, audio.sample_rate, source_lufs + target.lufs - features.integrated_lufs,
                                    target, max_limiting_db)
    (mid0, side0), (mid1, side1) = _bands_db(source, audio.sample_rate), _bands_db(limited, audio.sample_rate)
    with np.errstate(invalid="ignore"):  # -inf - -inf in empty bands: no change
        mid, side = np.nan_to_num(mid1 - mid0), np.nan_to_num(side1 - side0)
    return with_band_change(features, mid, side)  # the level is removed where the shape is judged


DELIVERED_LOUDNESS_TOLERANCE_LU = 0.1


def _finalized_excerpt(samples: np.ndarray, sample_rate: int, lufs: float, target: Target,
                       max_limiting_db: float) -> tuple[np.ndarray, float]:
    """``samples`` (an excerpt) brought to ``lufs`` through the finalizer's limiter, as the
    finalizer brings the whole track to the target: limiting takes loudness away, so the gain
    rises until the limited excerpt is as loud as asked (within
    DELIVERED_LOUDNESS_TOLERANCE_LU, a few rounds), or the limiting reaches its budget.
    Returns the limited samples and the limiting (dB)."""
    level = measure_loudness(samples, sample_rate).integrated_lufs
    if not (math.isfinite(level) and math.isfinite(lufs)):
        return samples, 0.0
    gain_db = lufs - level
    for _ in range(4):
        limited, limiting_db = limit_at_gain(samples, sample_rate, gain_db, target.ceiling_dbtp)
        short_lu = lufs - measure_loudness(limited, sample_rate).integrated_lufs
        if abs(short_lu) < DELIVERED_LOUDNESS_TOLERANCE_LU or (short_lu > 0.0 and limiting_db >= max_limiting_db):
            break
        gain_db += short_lu
    return limited, limiting_db


def _bands_db(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mid and side band levels (dB) of ``samples``."""
    meter = SpectrumAnalyzer(sample_rate, samples.shape[0])
    meter.process(samples)
    result = meter.result()
    return np.asarray(result.mid_band_db), np.asarray(result.side_band_db)


def _reach_as_delivered(audio: Audio, features: Features, judged: Features, target: Target, goal: Goal,
                        settings: ChainSettings, max_limiting_db: float,
                        notes: list[str]) -> tuple[Goal, ChainSettings]:
    """:func:`assistant.judge.reach_goal` again, on the mix as the finalizer will deliver it
    behind the chain's EQ. Where the finalizer limits much (for the input, or for the EQ's
    boosts), it does not carry an EQ move through unchanged: a cut of the dense low end
    lowers the peaks, so the low end is limited less and comes partly back; a boost is
    limited harder. A second pass, which needs no limiting, would find the region where the
    limiter left it and move it again. So the loop's linear prediction is corrected by what
    the limiter adds to the EQ, measured on the excerpt: the chain's linear stages with and
    without their EQ gains, each limited at the gain the finalizer will use. The EQ limit
    then holds for the move as delivered: a gain may exceed it by up to DELIVERED_HEADROOM_DB
    (with a note giving the delivered move). A region the EQ cannot bring inside as
    delivered is kept as character."""
    sr = audio.sample_rate
    source = excerpt(audio.samples, sr)
    lufs = measure_loudness(source, sr).integrated_lufs + target.lufs - features.integrated_lufs
    linear = ("highpass", *EQ_STAGES)

    def delivered(trial: ChainSettings) -> tuple[np.ndarray, np.ndarray, float]:
        """Mid and side band levels of the trial's linear stages, finalized, and the limiting."""
        limited, limiting_db = _finalized_excerpt(render(source, sr, trial.only(linear)), sr, lufs, target,
                                                  max_limiting_db)
        return (*_bands_db(limited, sr), limiting_db)

    def eq_active(trial: ChainSettings) -> bool:
        return any(trial.active(s) for s in EQ_STAGES)

    if not eq_active(settings):
        return goal, settings
    flat_mid, flat_side, flat_limiting_db = delivered(settings.replace({f"{s}.gain_db": 0.0 for s in EQ_STAGES}))
    matrix = band_matrix(RESPONSE_FFT, sr)
    for _ in range(DELIVERED_ITERATIONS):
        mid, side, limiting_db = delivered(settings)
        if max(limiting_db, flat_limiting_db) < LIMITER_SHAPE_MIN_DB:
            return goal, settings
        eq_db = eq_band_response_db(settings, sr, matrix)
        with np.errstate(invalid="ignore"):  # -inf - -inf in empty bands: no change
            extra_mid = np.nan_to_num(mid - flat_mid - eq_db)
            extra_side = np.nan_to_num(side - flat_side - eq_db)
        goal, settings = reach_goal(goal, with_band_change(judged, extra_mid, extra_side), target.profile, settings,
                                    DELIVERED_HEADROOM_DB)
        if not eq_active(settings):
            return goal, settings
    over = [s for s in EQ_STAGES if settings.is_on(s) and abs(settings[f"{s}.gain_db"]) > goal.limits.max_eq_db]
    if over:
        mid = delivered(settings)[0]
        with np.errstate(invalid="ignore"):
            got = np.nan_to_num(mid - flat_mid)
        mask = shape_mask(sr)
        got = got - np.median((got - eq_band_response_db(settings, sr, matrix))[mask])  # the EQ's level
        centres = np.asarray(BAND_CENTRES_HZ)
        said = ", ".join(f"{STAGE_LABELS[s]} {settings[f'{s}.gain_db']:+.1f} dB delivers "
                         f"{got[int(np.argmin(np.abs(centres - settings[f'{s}.freq_hz'])))]:+.1f} dB"
                         for s in over)
        notes.append(f"the finalizer's limiting takes part of the EQ back, so the EQ limit "
                     f"(±{goal.limits.max_eq_db:g} dB) holds for the move as delivered: {said}")
    return goal, settings


def _dc_highpass(features: Features, target: Target, settings: ChainSettings, notes: list[str]) -> ChainSettings:
    """``settings`` with the high-pass on when the DC offset, as delivered behind the chain,
    is over DC_HIGHPASS_DBFS (and a note saying so)."""
    dc_dbfs = delivered_dc_offset_dbfs(features, target, settings)
    if dc_dbfs <= DC_HIGHPASS_DBFS or settings.is_on("highpass"):
        return settings
    notes.append(f"DC offset {dc_dbfs:.0f} dBFS at the delivered level (over {DC_HIGHPASS_DBFS:.0f}) "
                 f"→ high-pass at {DC_HIGHPASS_HZ:.0f} Hz")
    return settings.replace({"highpass.cutoff_hz": DC_HIGHPASS_HZ}, {"highpass": True})


def delivered_dc_offset_dbfs(features: Features, target: Target, settings: ChainSettings | None = None) -> float:
    """The DC offset at the target's loudness, behind the chain's low shelf (a shelf's gain
    holds down to 0 Hz): judged where it will be, so that neither the finalizer's gain nor
    the EQ can carry a master across the threshold on a second pass."""
    shelf_db = settings["low_shelf.gain_db"] if settings is not None and settings.is_on("low_shelf") else 0.0
    if not math.isfinite(features.integrated_lufs):
        return features.dc_offset_dbfs + shelf_db
    return features.dc_offset_dbfs + shelf_db + target.lufs - features.integrated_lufs


def _engine_settings(audio: Audio, features: Features, goal: Goal, engine: str, refine: bool) -> ChainSettings:
    descriptor = TargetDescriptor(goal.target_shape_db(features),
                                  *(goal.goal_value(key, features) for key in DESCRIPTOR))
    anchors, layout = goal.anchor_bands(features.sample_rate), eq_layout(goal)
    if engine == "dsp":
        settings = predict_dsp(features, descriptor)
        if goal.active("tone"):  # the EQ fitted to the goal's change, with the kept bands as the level reference
            settings = settings.replace(fit_change(np.asarray(goal.band_change_db), features.sample_rate, anchors,
                                                   goal.limits.max_eq_db, layout, goal.band_weights()))
        return settings
    if engine == "model":
        settings = predict_model(features, descriptor)
        if goal.active("tone"):  # the model's EQ on the goal's layout, without a common offset
            settings = anchored_eq(settings, features.sample_rate, anchors, goal.limits.max_eq_db, layout,
                                   goal.band_weights())
        if refine:
            lim = goal.limits
            # the compressor is sized by _fit_compressor, not by the refinement
            aspects = frozenset(a for a in ASPECTS if a != "dynamics" and goal.active(a))
            settings = refine_loop(audio.samples, audio.sample_rate, features, descriptor, constrain(settings, goal),
                                   lambda x, sr: analyze(Audio(x, sr)), aspects=aspects,
                                   eq_limit_db=lim.max_eq_db,
                                   width_bounds=(lim.width_min_percent, lim.width_max_percent),
                                   max_wet=lim.max_reverb_wet,
                                   anchor_bands=anchors, layout=layout, band_weights=goal.band_weights())
        return settings
    raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")


def _reach_space(audio: Audio, features: Features, goal: Goal, settings: ChainSettings) -> tuple[Goal, ChainSettings]:
    """The reverb checked in closed loop on the excerpt: what it adds to the post-onset tail
    (rendered with and without it) must bring the mix inside the trigger, or a second pass
    would add reverb again. If even the largest wet level the limits allow falls short, the
    dryness is the production's character (a master) or the largest reverb stays (a reference)."""
    check, lim = goal.check("tail_level_db"), goal.limits
    x = excerpt(audio.samples, audio.sample_rate)
    dry = analyze(Audio(render(x, audio.sample_rate, settings.replace(enabled={"reverb": False})),
                        audio.sample_rate)).tail_level_db

    def reached(trial: ChainSettings) -> float:
        wet = analyze(Audio(render(x, audio.sample_rate, trial), audio.sample_rate)).tail_level_db
        return features.tail_level_db + (wet - dry if math.isfinite(wet) and math.isfinite(dry) else 0.0)

    tail = reached(settings)
    if tail >= check.low - lim.space_trigger_db / 2.0 or tail >= check.goal:
        return goal, settings
    widest = settings.replace({"reverb.wet": lim.max_reverb_wet})
    widest_tail = reached(widest)
    if widest_tail >= check.low - lim.space_trigger_db / 2.0 or lim.partial_moves:
        return goal, widest
    note = (f"the largest reverb a master gets (wet {lim.max_reverb_wet:.2f}) raises it only to "
            f"{widest_tail:.1f} dB")
    checks = tuple(replace(c, status="character", goal=c.measured, note=note) if c is check else c for c in goal.checks)
    return replace(goal, checks=checks), settings.replace(enabled={"reverb": False})


def _fit_compressor(audio: Audio, features: Features, goal: Goal, settings: ChainSettings) -> ChainSettings:
    crest, lra = goal.check("crest_factor_db"), goal.check("loudness_range_lu")
    crest_db = max(0.0, features.crest_factor_db - crest.goal) if crest.status == "corrected" else 0.0
    lra_lu = max(0.0, lra.measured - lra.goal) if lra.status == "corrected" else 0.0
    fitted = fit_compressor(audio.samples, audio.sample_rate, settings, crest_db, lra_lu, goal.limits.max_ratio,
                            lambda x, sr: measure_loudness(x, sr).loudness_range_lu)
    return fitted if fitted is not None else settings.replace(enabled={"compressor": False})


def _within_limiting_budget(audio: Audio, features: Features, target: Target, settings: ChainSettings,
                            max_limiting_db: float, notes: list[str]) -> ChainSettings:
    """EQ boosts raise peaks more than loudness; if the chain would push the finalizer past
    its limiting budget when the input alone stays inside it, scale the boosts back (in
    quarters) until it fits, measured on the excerpt."""
    alone = estimated_limiting_db(features, target)
    boost = max([settings[f"{s}.gain_db"] for s in EQ_STAGES if settings.is_on(s)] + [0.0])
    if alone > max_limiting_db or alone + boost <= max_limiting_db:
        return settings

    def plr(x: np.ndarray) -> float:
        return true_peak_dbtp(x, audio.sample_rate) - measure_loudness(x, audio.sample_rate).integrated_lufs

    base = plr(audio.samples)
    full = None
    for scale in (1.0, 0.75, 0.5, 0.25, 0.0):
        # boosts only: min() keeps a cut (negative gain) as it is
        trial = settings.replace({f"{s}.gain_db": round(min(settings[f"{s}.gain_db"],
                                                            settings[f"{s}.gain_db"] * scale), 2)
                                  for s in EQ_STAGES})
        needed = alone + plr(render(audio.samples, audio.sample_rate, trial)) - base
        full = needed if full is None else full
        if needed <= max_limiting_db or scale == 0.0:
            break
    if scale < 1.0:
        notes.append(f"EQ boosts scaled to {scale:.0%}: at full size they would need {full:.1f} dB of limiting, "
                     f"over the {max_limiting_db:.1f} dB budget the delivery needs")
    return trial


def master_audio(audio: Audio, target: Target, settings: ChainSettings, bit_depth: str = "24",
                 max_limiting_db: float = MAX_LIMITING_DB) -> tuple[Audio, float, float, tuple[str, ...]]:
    """Render and finalize in memory; returns (output at its written precision, gain, limiting, warnings)."""
    rendered = render(audio.samples, audio.sample_rate, settings)
    if not np.isfinite(rendered).all():
        raise OutputError("the effect chain produced NaN/Inf samples", audio.source)
    result = finalize(rendered, audio.sample_rate,
                      FinalizeSpec(target.lufs, target.ceiling_dbtp, max_limiting_db), audio.source)
    del rendered  # keep at most three copies of the audio alive
    # Dither and rounding add at most 2 LSB (< 0.001 dB at 16 bits near full scale), far inside
    # the finalizer's ceiling margin; the report's output analysis re-measures the written samples.
    written = audio_io.quantize(result.samples, bit_depth)
    return (Audio(written, audio.sample_rate, audio.source), result.gain_db, result.limiting_db,
            result.warnings)


@dataclass(frozen=True)
class Suggestion:
    features: Features
    decision: Decision  # the settings, the judgment and its evidence
    excerpt: Audio  # the part of the track the settings were refined on
    target: Target  # with --profile auto: the profile chosen for this mix

    @property
    def settings(self) -> ChainSettings:
        return self.decision.settings


def suggest_file(path: str | Path, target: Target, *, engine: str = DEFAULT_ENGINE, refine: bool = True,
                 judgment: JudgeOptions = JudgeOptions(), max_limiting_db: float = MAX_LIMITING_DB,
                 progress: Callable[[str], None] | None = None) -> Suggestion:
    """Analyse ``path`` and suggest the chain that moves it toward ``target`` (no rendering)."""
    step = progress or (lambda message: None)
    step("analysing")
    features = analyze_file(path)
    if not math.isfinite(features.integrated_lufs):
        raise InvalidAudioError("is silent (no measurable loudness); nothing to suggest", path)
    step("choosing settings")
    excerpt = excerpt_of(path)
    target = with_profile_for(target, features)
    decision = suggest_settings(excerpt, features, target, engine, refine, judgment, max_limiting_db)
    return Suggestion(features, decision, excerpt, target)


def master_file(input_path: str | Path, output_path: str | Path, target: Target,
                options: MasterOptions = MasterOptions(), *, progress: Callable[[str], None] | None = None,
                plugins: str | None = None, plugin_dirs: Sequence[str | Path] = ()) -> MasterReport:
    """Master one file to ``target`` as ``options`` say; see the module docstring.

    ``plugins``: render the chain through the VST3 plugins of this map (see
    :mod:`effects.plugins`); the report then says how closely they match the built-in render.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    o = options
    if output_path.exists() and output_path.resolve() == input_path.resolve() and not o.overwrite:
        raise OutputError("is the input file; choose another output or pass --overwrite", output_path)
    if output_path.exists() and not o.overwrite:
        raise OutputError("already exists; pass --overwrite to replace it", output_path)
    audio_io.output_format(output_path, o.bit_depth)  # refuse before any work
    step = progress or (lambda message: None)
    meta = audio_io.info(input_path)
    if meta.duration_s < MIN_MASTER_S:
        raise InvalidAudioError(f"is {meta.duration_s:.3f} s long; mastering needs at least {MIN_MASTER_S:.0f} s",
                         input_path)
    step("analysing")
    before = analyze_file(input_path)
    if not math.isfinite(before.integrated_lufs):
        raise InvalidAudioError("is silent (no measurable loudness); nothing to master", input_path)
    sr = meta.sample_rate
    target = with_profile_for(target, before)
    # the excerpt the model refines on is also what plugins are calibrated and compared on
    excerpt = excerpt_of(input_path) if o.chain is None or plugins else None
    decision = None
    if o.chain is None:
        step("choosing settings")
        assert excerpt is not None  # read above whenever settings are suggested
        decision = suggest_settings(excerpt, before, target, o.engine, o.refine, o.judgment, o.max_limiting_db)
        settings = decision.settings
    else:
        settings = o.chain
    spec = FinalizeSpec(target.lufs, target.ceiling_dbtp, o.max_limiting_db)
    renderer, plugin_report = None, None
    if plugins:
        step("loading and setting the plugins")
        assert excerpt is not None  # read above whenever plugins are used
        renderer = plugin_renderer(settings, excerpt, plugins, plugin_dirs)
        plugin_report = {"map": plugins, "chain": renderer.describe(),
                         "match": render_match(renderer, settings, excerpt)}
    del excerpt
    plan = _render_and_finalize(input_path, output_path, meta, renderer or ChainRenderer(settings, sr), spec,
                                o.bit_depth, step)
    warnings = plan.warnings
    step("measuring the output")
    after = analyze_file(output_path)
    if after.true_peak_dbtp > target.ceiling_dbtp:
        warnings += (f"output true peak {after.true_peak_dbtp:.2f} dBTP is over the "
                     f"{target.ceiling_dbtp:.1f} dBTP ceiling",)
    if not warnings and abs(after.integrated_lufs - target.lufs) > 0.1:
        warnings += (f"output reads {after.integrated_lufs:.2f} LUFS, not {target.lufs:.1f}",)
    return MasterReport(
        input_path=str(input_path), output_path=str(output_path), target=target,
        engine="chain-file" if o.chain is not None else o.engine, settings=settings,
        input_features=before, output_features=after, gain_db=plan.gain_db, limiting_db=plan.limiting_db,
        bit_depth=o.bit_depth,
        tonal_error_before_db=tonal_error_db(before.mid_band_db, target.profile, sr),
        tonal_error_after_db=tonal_error_db(after.mid_band_db, target.profile, sr),
        warnings=tuple(warnings) + tuple(before.notes),
        plugins=plugin_report, goal=decision.goal if decision else None,
        moves=decision.moves if decision else (), notes=decision.notes if decision else (),
    )


def _render_and_finalize(input_path: Path, output_path: Path, meta: audio_io.AudioInfo, renderer,
                         spec: FinalizeSpec, bit_depth: str, step: Callable[[str], None]) -> FinalizePlan:
    """Pass 1: render the input block by block through ``renderer`` (a ``ChainRenderer`` or a
    ``PluginChainRenderer``: anything with ``process(block)``) into a scratch file, measuring the finalizer's
    block statistics. Pass 2 (repeated if the finalizer corrects): read it back, apply the
    plan, dither and write ``output_path`` atomically. Returns the finalizer's plan."""
    sr, channels = meta.sample_rate, meta.channels
    meter = BlockStatsMeter(sr, channels)
    sizes = []
    with scratch_path(output_path) as scratch:
        step("rendering")
        with open(scratch, "wb") as f:
            for block in audio_io.iter_blocks(input_path, STREAM_BLOCK_FRAMES):
                out = renderer.process(block)
                if not np.isfinite(out).all():
                    raise OutputError("the effect chain produced NaN/Inf samples", input_path)
                meter.process(out)
                out.tofile(f)  # (channels, n) float32, block after block
                sizes.append(out.shape[1])
        stats = meter.result()

        def rendered():
            with open(scratch, "rb") as f:
                for n in sizes:
                    yield np.fromfile(f, np.float32, channels * n).reshape(channels, n)

        with atomic_path(output_path) as tmp:
            def write_pass(gain_db: float, block_gain_db: np.ndarray) -> tuple[float, float]:
                step("finalizing and writing")
                with audio_io.BlockWriter(tmp, output_path, sr, channels, bit_depth) as writer:
                    return apply_stream(rendered(), sr, channels, gain_db, block_gain_db, stats.block,
                                        writer.write)

            return finalize_from_stats(stats, spec, write_pass, str(input_path))


def excerpt_of(path: str | Path) -> Audio:
    """The excerpt of ``path`` that settings are refined, and plugins calibrated, on (read from the file)."""
    meta = audio_io.info(path)
    return audio_io.load_spans(path, excerpt_spans(meta.frames, meta.sample_rate))


def write_report(report: MasterReport, path: str | Path) -> Path:
    return write_text(path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
