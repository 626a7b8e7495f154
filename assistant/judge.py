"""The mastering judgment: what to change, by how much, and why.

``judge(features, target, options) -> Goal``. The profile of the target gives a **normal
range** for every band and descriptor; the judgment corrects only what lies outside it, and
only up to the range's edge (a dead zone inside), scaled by the per-aspect amounts and held
to mastering-sized limits. A mix already in range gets an empty Goal, so mastering our own
master again changes nothing (idempotence by construction, not by recognising our files):

- a move is triggered only when the measurement lies outside its range by more than a
  *trigger* (hysteresis); when it is made, it goes all the way to the range's edge, so the
  result lies inside the trigger and a second pass leaves it alone;
- a move that the limits cannot complete (a finished master that sits further from the
  profile than a mastering move reaches: a darker production, a drier room, a wider image)
  is not made half-way: the measurement is treated as the production's character and the
  report says so. A half move would be repeated by every further pass;
- EQ gains under ``min_eq_move_db`` are dropped, as is anything an amount of 0 % switches off;
- :func:`reach_goal` closes the loop: the chain's EQ and side gain are corrected until the
  judgment of the mix *as the chain's linear stages will leave it* finds nothing more to
  move (what a second pass would see), and a region it cannot bring inside its tolerance
  within the limits is kept as character after all.

Aspects: ``tone`` (the EQ), ``dynamics`` (the compressor), ``width`` (side gain), ``space``
(reverb). Loudness is not an aspect: the finalizer always delivers the target LUFS and ceiling.

:func:`explain` turns a Goal and the final chain into :class:`Move` records, one per stage
or measurement, each with the measured value, its range and what the chain does. The text,
the report JSON and the printed table are all rendered from those records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from mixbridge.analysis.errors import UsageError
from mixbridge.analysis.features import Features
from mixbridge.analysis.spectrum import (
    BAND_CENTRES_HZ,
    band_matrix,
    band_shape,
    held_bands,
    shape_mask,
    side_mid_ratio,
    side_share,
    smooth_bands,
)
from mixbridge.assistant.targets import Profile, Target, known_bands
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, MATCH_EQ_PARAMS, PARAM_INDEX, ChainSettings
from mixbridge.models.baseline import EQ_LAYOUT, RESPONSE_FFT, eq_values, fit_eq
from mixbridge.models.predict import ASPECTS

MATCH_NAMES = (*ASPECTS, "loudness")  # --match accepts loudness too: it is always delivered
ASPECT_STAGES = {"tone": EQ_STAGES, "dynamics": ("compressor", "expander"), "width": ("stereo",),
                 "space": ("reverb",)}
OUT_OF_PHASE_WIDTH = 0.5  # side share over which the channels are more opposed than alike (correlation < 0)
POLARITY_CORRELATION = -0.7  # at or under this, one channel's polarity is taken as inverted
NEAR_MONO_WIDTH = 0.005  # side share of power under which a track counts as mono: never widened
KEPT_BAND_WEIGHT = 0.3  # in the EQ fit, against 1 for a band being corrected
EXCESS_SMOOTHING_BANDS = 3  # a one-band peak is the music (a bass note), not the balance


# ---- options ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Amounts:
    """How much of each measured change to make, in percent (0 = leave that aspect alone)."""

    tone: float = 100.0
    dynamics: float = 100.0
    width: float = 100.0
    space: float = 100.0

    def __post_init__(self) -> None:
        for aspect in ASPECTS:
            _check_percent(f"--{aspect}", getattr(self, aspect))

    def fraction(self, aspect: str) -> float:
        return getattr(self, aspect) / 100.0

    @classmethod
    def from_options(cls, amount: float | None = None, match: str | None = None,
                     **per_aspect: float | None) -> "Amounts":
        """The CLI's ``--amount``, ``--match`` and ``--tone/--dynamics/--width/--space``.

        ``--amount`` sets every aspect; a per-aspect option overrides it for that aspect;
        ``--match a,b`` keeps the listed aspects at ``--amount`` and sets the others to 0.
        """
        unknown = sorted(set(per_aspect) - set(ASPECTS))
        if unknown:
            raise UsageError(f"unknown aspect(s) {', '.join(unknown)}; valid: {', '.join(ASPECTS)}")
        base = 100.0 if amount is None else _check_percent("--amount", amount)
        given = {k: v for k, v in per_aspect.items() if v is not None}
        if match is not None:
            if given:
                flags = ", ".join(f"--{k}" for k in sorted(given))
                raise UsageError(f"--match cannot be combined with {flags}: use either a match list or "
                                 "per-aspect amounts")
            names = [n.strip() for n in match.split(",") if n.strip()]
            bad = [n for n in names if n not in MATCH_NAMES]
            if bad or not names:
                raise UsageError(f"--match {match!r}: unknown aspect(s) {', '.join(bad) or '(none given)'}; "
                                 f"valid: {', '.join(MATCH_NAMES)}")
            return cls(**{a: base if a in names else 0.0 for a in ASPECTS})
        return cls(**{a: _check_percent(f"--{a}", given.get(a, base)) for a in ASPECTS})


def _check_percent(option: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 100.0):
        raise UsageError(f"{option} {value:g} is outside 0-100 (percent of the measured change)")
    return value


@dataclass(frozen=True)
class Limits:
    """The largest moves the judgment makes, and the triggers (hysteresis) that start them."""

    max_eq_db: float  # largest gain of any EQ stage
    min_eq_move_db: float  # EQ gains smaller than this are dropped
    tone_trigger_db: float  # a band region must lie this far outside its range to be corrected
    width_min_percent: float  # side gain bounds
    width_max_percent: float
    width_trigger: float  # relative side/mid amplitude outside the range that starts a width move
    max_ratio: float  # compressor ratio
    max_compression_db: float  # largest crest reduction the compressor is asked for
    max_lra_reduction_lu: float
    max_expansion_db: float  # loudness range (LU) an upward expander is asked to add (0: never)
    dynamics_trigger_db: float  # crest dB / LRA LU outside the range that starts the compressor or expander
    max_reverb_wet: float
    space_trigger_db: float  # tail level below the range that starts the reverb
    max_tail_increase_db: float
    tone_aim_inside_db: float  # a corrected region is aimed this far inside its range's edge
    max_match_eq_db: float  # largest gain of a match EQ band (0: no match EQ)
    partial_moves: bool  # out of reach: the largest move the limits allow (True) or kept as character (False)
    context: str

    def __post_init__(self) -> None:
        spec = PARAM_INDEX["peak1.gain_db"]
        if not (math.isfinite(self.max_eq_db) and 0.0 < self.max_eq_db <= spec.max):
            raise UsageError(f"--max-eq-db {self.max_eq_db:g} is outside 0-{spec.max:g} dB")

    def with_max_eq_db(self, max_eq_db: float | None) -> "Limits":
        return self if max_eq_db is None else replace(self, max_eq_db=float(max_eq_db))


# A finished master: moves a mastering engineer would sign (issue 10's brief).
MASTER_LIMITS = Limits(
    max_eq_db=4.0, min_eq_move_db=0.5, tone_trigger_db=1.0, width_min_percent=82.0, width_max_percent=118.0,
    width_trigger=0.06, max_ratio=2.0, max_compression_db=3.0, max_lra_reduction_lu=3.0, max_expansion_db=0.0,
    dynamics_trigger_db=1.0,
    max_reverb_wet=0.06, space_trigger_db=3.0, max_tail_increase_db=6.0, tone_aim_inside_db=0.5,
    max_match_eq_db=0.0, partial_moves=False, context="master",
)
# A master has no match EQ: a profile is a range, which the parametric bands reach in closed loop;
# a fine match to its centre would move every finished master. Nor an expander: a master denser than
# a genre's range is the production's choice.
# --reference: the user asked for that track's sound, so its measured difference is the instruction:
# small triggers, moves up to the trained ranges of the model (restoration of a damaged mix), and what
# lies further than that is moved as far as the limits allow rather than kept as character; the
# match EQ then closes the band shape the parametric bands leave between them, and an upward
# expander gives back a loudness range a compressor took, where the mix's is shorter than the reference's.
REFERENCE_LIMITS = Limits(
    max_eq_db=9.0, min_eq_move_db=0.2, tone_trigger_db=0.25, width_min_percent=60.0, width_max_percent=160.0,
    width_trigger=0.02, max_ratio=6.0, max_compression_db=8.0, max_lra_reduction_lu=8.0, max_expansion_db=6.0,
    dynamics_trigger_db=0.5,
    max_reverb_wet=0.3, space_trigger_db=1.0, max_tail_increase_db=12.0, tone_aim_inside_db=0.25,
    max_match_eq_db=12.0, partial_moves=True, context="reference",
)


@dataclass(frozen=True)
class JudgeOptions:
    """What the user asked of the judgment: amounts per aspect and, optionally, a wider EQ limit."""

    amounts: Amounts = field(default_factory=Amounts)
    max_eq_db: float | None = None

    def __post_init__(self) -> None:
        if self.max_eq_db is not None:
            MASTER_LIMITS.with_max_eq_db(self.max_eq_db)  # validates

    def limits_for(self, profile: Profile) -> Limits:
        base = REFERENCE_LIMITS if profile.is_reference else MASTER_LIMITS
        return base.with_max_eq_db(self.max_eq_db)


# ---- the goal -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One scalar measured against its normal range."""

    aspect: str
    key: str  # the Features / Profile field
    label: str
    unit: str
    measured: float
    low: float
    high: float
    goal: float  # the value the chain aims at (= measured when nothing is to change)
    status: str  # "within", "inside-trigger", "corrected", "character", "amount-0", "cannot", "n/a"
    note: str = ""
    expands: bool = False  # a loudness range goal over the measure: the upward expander's, not the compressor's


@dataclass(frozen=True)
class Goal:
    """The change to make: per-band target change, scalar goals, and the evidence for them."""

    profile: str
    context: str
    amounts: Amounts
    limits: Limits
    band_centres_hz: tuple[float, ...]
    band_measured_db: tuple[float, ...]  # the mix's band shape (3-band smoothed), aligned to the profile's level
    band_low_db: tuple[float, ...]
    band_high_db: tuple[float, ...]
    band_excess_db: tuple[float, ...]  # smoothed distance outside the range (0 inside)
    band_change_db: tuple[float, ...]  # the target change per band (0 = keep), after amounts and limits
    band_status: tuple[str, ...]  # per band: within, inside-trigger, corrected, character, amount-0
    tone_status: str
    checks: tuple[Check, ...]
    estimated_limiting_db: float  # the finalizer's limiting for the input alone (delivery needs it)
    side_gain: float  # the width goal: side/mid amplitude factor (1 = keep)
    # the match EQ's evidence (:func:`reach_match`): the mean band difference to its aim, predicted
    # behind the parametric EQ, before and after the match EQ (NaN: no match was tried)
    match_before_db: float = math.nan
    match_after_db: float = math.nan

    def active(self, aspect: str) -> bool:
        if aspect == "tone":
            return self.tone_status == "corrected"
        return any(c.aspect == aspect and c.status == "corrected" for c in self.checks)

    @property
    def empty(self) -> bool:
        return not any(self.active(a) for a in ASPECTS)

    def check(self, key: str) -> Check:
        return next(c for c in self.checks if c.key == key)

    def goal_value(self, key: str, features: Features) -> float:
        """The value a descriptor should reach: the goal of its check, else the mix's own."""
        for c in self.checks:
            if c.key == key:
                return c.goal
        value = getattr(features, key)
        return float(value) if math.isfinite(value) else 0.0

    def target_shape_db(self, features: Features) -> np.ndarray:
        """The in-range band shape to aim at: the mix's own shape plus the band change."""
        mask = shape_mask(features.sample_rate)
        return band_shape(features.mid_band_db, mask) + np.asarray(self.band_change_db)

    def band_weights(self) -> np.ndarray:
        """EQ-fit weight per band: corrected bands count fully, kept bands less (they may move
        a little inside their range)."""
        return np.where(np.asarray(self.band_status) == "corrected", 1.0, KEPT_BAND_WEIGHT)

    def anchor_bands(self, sample_rate: int) -> np.ndarray:
        """Tonal bands the goal keeps where they are (the level reference of the EQ fit)."""
        return shape_mask(sample_rate) & (np.asarray(self.band_status) != "corrected")


def _align(shape: np.ndarray, centre: np.ndarray) -> float:
    """The level offset that puts ``shape`` on the profile's ``centre``: the median band
    difference. A median, so that correcting a minority of bands does not move the level
    the others are judged at (a second pass measures them where the first left them)."""
    return float(np.median(centre - shape)) if centre.size else 0.0


def _runs(signs: np.ndarray) -> list[np.ndarray]:
    """Index runs of equal, non-zero sign."""
    runs, start = [], None
    for i, v in enumerate(np.append(signs, 0)):
        if start is not None and v != signs[start]:
            runs.append(np.arange(start, i))
            start = None
        if start is None and v != 0 and i < len(signs):
            start = i
    return runs


def inverted_polarity(features: Features) -> bool:
    """One channel's polarity is inverted: the channels are strongly opposed (correlation at or
    under POLARITY_CORRELATION), so the mix cancels when summed to mono. No mix means that; a
    wire or a track exported with one channel flipped does. Inverting the right channel makes
    the channels as alike as they were opposed (the mid and side trade places)."""
    return features.channels == 2 and features.correlation <= POLARITY_CORRELATION


def _out_of_phase(features: Features) -> bool:
    return features.channels == 2 and features.width > OUT_OF_PHASE_WIDTH


def tone_bands_db(features: Features) -> np.ndarray:
    """The band levels the tone is judged on: the mid, or, when the channels are out of
    phase (the mid is what cancels, the music is in the side), mid and side together."""
    bands = np.asarray(features.mid_band_db, dtype=np.float64)
    if _out_of_phase(features):
        bands = 10.0 * np.log10(10.0 ** (bands / 10.0) + 10.0 ** (np.asarray(features.side_band_db) / 10.0))
    return bands


def _tone_measure(features: Features, profile: Profile) -> tuple[np.ndarray, ...]:
    """(aligned, low, high, excess): the band shape, smoothed over 3 bands and aligned to the
    profile's centre (:func:`_align`), the range, and the signed distance outside it (0 inside
    and outside the tonal bands)."""
    mask = shape_mask(features.sample_rate)
    shape = band_shape(tone_bands_db(features), mask)
    smooth = shape.copy()
    smooth[mask] = smooth_bands(shape[mask], EXCESS_SMOOTHING_BANDS)
    low, high = np.asarray(profile.band_low_db), np.asarray(profile.band_high_db)
    judged = mask & known_bands(profile)  # a band the profile leaves open is never judged
    aligned = smooth + _align(smooth[judged], np.asarray(profile.band_shape_db)[judged])
    excess = np.where(judged, aligned - np.clip(aligned, np.nan_to_num(low), np.nan_to_num(high)), 0.0)
    return aligned, low, high, excess


def tone_excess_db(features: Features, profile: Profile) -> np.ndarray:
    """Per band, how far the mix lies outside the profile's range, as the judgment measures it
    (signed dB; 0 inside the range and outside the tonal bands)."""
    return _tone_measure(features, profile)[3]


def _tone(features: Features, profile: Profile, amount: float, limits: Limits, trigger_margin_db: float = 0.0):
    """The band shape (:func:`_tone_measure`) against the profile's band ranges.

    Each run of neighbouring bands outside the range on the same side is one region: it is
    corrected to the range's edge when its worst band lies beyond the trigger (less
    ``trigger_margin_db``), and kept as the production's character when that band lies beyond
    the EQ limit plus the trigger (a half correction would be repeated by every later pass).
    ``change`` is the move each band outside the range would take, whatever its status.
    """
    aligned, low, high, excess = _tone_measure(features, profile)
    status = np.where(excess != 0.0, "inside-trigger", "within").astype(object)
    for run in _runs(np.sign(np.round(excess, 6))):
        worst = float(np.max(np.abs(excess[run])))
        if worst > limits.max_eq_db + limits.tone_trigger_db and not limits.partial_moves:
            status[run] = "character"
        elif worst > limits.tone_trigger_db - trigger_margin_db:
            status[run] = "corrected" if amount > 0.0 else "amount-0"
    # aim a little inside the edge (never past the centre), so a fit that falls a little short
    # still lands inside the trigger and a second pass leaves the region alone
    centre = np.asarray(profile.band_shape_db)
    room = np.maximum(np.where(excess > 0, high - centre, low - centre) * np.sign(excess), 0.0)
    aim = excess + np.sign(excess) * np.minimum(limits.tone_aim_inside_db, room)
    change = -aim * amount
    if np.any(status == "corrected"):
        overall = "corrected"
    else:
        overall = next((s for s in ("amount-0", "character", "inside-trigger") if np.any(status == s)), "within")
    return aligned, low, high, excess, change, tuple(str(v) for v in status), overall


def estimated_limiting_db(features: Features, target: Target) -> float:
    """Peak limiting the finalizer needs for the input alone: the gain to the target LUFS
    minus the headroom between the true peak and the ceiling."""
    if not math.isfinite(features.true_peak_dbtp):
        return 0.0
    return max(0.0, (target.lufs - features.integrated_lufs) + features.true_peak_dbtp - target.ceiling_dbtp)


def judge(features: Features, target: Target, options: JudgeOptions = JudgeOptions(),
          predicted: bool = False) -> Goal:
    """What to change in ``features`` to bring the mix into ``target.profile``'s ranges.
    ``predicted``: the features are a prediction (the mix as the finalizer will deliver it,
    measured on an excerpt), so a band region within REACH_MARGIN_DB of its trigger is
    corrected: delivered, it may land beyond the trigger, where a second pass would move it."""
    profile, amounts = target.profile, options.amounts
    limits = options.limits_for(profile)
    aligned, low, high, excess, change, band_status, tone_status = _tone(
        features, profile, amounts.fraction("tone"), limits, REACH_MARGIN_DB if predicted else 0.0)
    change = np.where(np.asarray(band_status) == "corrected", change, 0.0)
    limiting = estimated_limiting_db(features, target)
    checks = [*_dynamics(features, profile, amounts.fraction("dynamics"), limits, limiting),
              _width(features, profile, amounts.fraction("width"), limits),
              _space(features, profile, amounts.fraction("space"), limits)]
    width = next(c for c in checks if c.key == "width")
    side_gain = 1.0
    if width.status == "corrected":
        side_gain = side_mid_ratio(width.goal) / side_mid_ratio(width.measured)
    return Goal(
        profile=profile.name, context=limits.context, amounts=amounts, limits=limits,
        band_centres_hz=BAND_CENTRES_HZ, band_measured_db=_r(aligned), band_low_db=_r(low), band_high_db=_r(high),
        band_excess_db=_r(excess), band_change_db=_r(np.clip(change, -limits.max_eq_db, limits.max_eq_db)),
        band_status=band_status,
        tone_status=tone_status, checks=tuple(checks), estimated_limiting_db=round(limiting, 2),
        side_gain=side_gain,
    )


def corrected_within_trigger_hz(goal: Goal) -> list[float]:
    """The band centre (Hz) of each region the goal corrects although no band of it lies
    beyond the trigger: corrected within the margin of a predicted judgment."""
    excess = np.asarray(goal.band_excess_db)
    signs = np.where(np.asarray(goal.band_status) == "corrected", np.sign(np.round(excess, 6)), 0.0)
    return [goal.band_centres_hz[int(run[np.argmax(np.abs(excess[run]))])] for run in _runs(signs)
            if np.max(np.abs(excess[run])) <= goal.limits.tone_trigger_db]


def _r(values) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in values)


def _status(excess: float, trigger: float, reach: float, amount: float, limits: Limits) -> str:
    """Where a measurement ``excess`` (signed distance outside its range) leaves its aspect."""
    if excess == 0.0:
        return "within"
    if abs(excess) <= trigger:
        return "inside-trigger"
    if abs(excess) > reach and not limits.partial_moves:
        return "character"
    return "amount-0" if amount <= 0.0 else "corrected"


def _dynamics(features: Features, profile: Profile, amount: float, limits: Limits,
              limiting_db: float) -> list[Check]:
    """Crest factor (after the finalizer's own limiting, which lowers it anyway) and LRA.

    An excess is the compressor's. A denser mix than the range is noted ("cannot"), except a
    loudness range short of a reference's (``limits.max_expansion_db`` > 0): the upward
    expander is asked to give it back (``Check.expands``), sized as delivered in closed loop. A
    crest factor under the range is only noted: sample peaks are lost to clipping, limiting and
    EQ as often as to compression (an EQ-damaged, clipped mix expanded to its original's crest
    moved far from it). The compressor's work on the crest is the whole excess of the raw crest
    factor, since whatever it leaves the limiter would otherwise take.
    """
    out = []
    lo, hi = profile.scalar_range("crest_factor_db")
    crest = features.crest_factor_db
    if not math.isfinite(crest):
        out.append(Check("dynamics", "crest_factor_db", "crest factor", "dB", 0.0, lo, hi, 0.0, "n/a"))
    else:
        after = crest - limiting_db
        excess = after - min(max(after, lo), hi)
        status = "within" if excess == 0.0 else ("cannot" if excess < 0 else
                                               _status(excess, limits.dynamics_trigger_db,
                                                       limits.max_compression_db, amount, limits))
        work = crest - hi  # the compressor's reduction if it is to reach the range by itself
        if status == "corrected" and work > limits.max_compression_db:
            if limits.partial_moves:
                work = limits.max_compression_db
            else:
                status = "character"
        goal = crest - work * amount if status == "corrected" else after
        note = f"{limiting_db:.1f} dB of it goes to the finalizer's limiting" if limiting_db > 0.05 else ""
        out.append(Check("dynamics", "crest_factor_db", "crest factor", "dB", round(after, 2), lo, hi,
                         round(goal, 2), status, note))
    lo, hi = profile.scalar_range("loudness_range_lu")
    lra = features.loudness_range_lu
    if not math.isfinite(lra):
        out.append(Check("dynamics", "loudness_range_lu", "loudness range", "LU", 0.0, lo, hi, 0.0, "n/a",
                         "too short to measure"))
    else:
        excess = lra - min(max(lra, lo), hi)
        expands = False
        if excess < 0:  # shorter than the range: the expander's, for a reference only
            status = ("cannot" if limits.max_expansion_db <= 0.0 else
                      _status(-excess, limits.dynamics_trigger_db, limits.max_expansion_db, amount, limits))
            expands = status == "corrected"
            goal = lra + min(-excess, limits.max_expansion_db) * amount if expands else lra
        else:
            status = "within" if excess == 0.0 else _status(excess, limits.dynamics_trigger_db,
                                                             limits.max_lra_reduction_lu, amount, limits)
            goal = lra - min(excess, limits.max_lra_reduction_lu) * amount if status == "corrected" else lra
        out.append(Check("dynamics", "loudness_range_lu", "loudness range", "LU", round(lra, 2), lo, hi,
                         round(goal, 2), status, "", expands))
    return out


def _width(features: Features, profile: Profile, amount: float, limits: Limits) -> Check:
    lo, hi = profile.scalar_range("width")
    w = features.width
    if features.channels < 2:
        return Check("width", "width", "stereo width (side share)", "", 0.0, lo, hi, 0.0, "n/a", "mono")
    if _out_of_phase(features):
        return Check("width", "width", "stereo width (side share)", "", round(w, 4), lo, hi, w, "n/a",
                     "the channels are out of phase (the side outweighs the mid): check one channel's polarity; "
                     "a width move would not fix it")
    if w < NEAR_MONO_WIDTH:
        return Check("width", "width", "stereo width (side share)", "", round(w, 4), lo, hi, w, "n/a",
                     "essentially mono: widening would only raise noise and phase artefacts")
    edge = min(max(w, lo), hi)
    if edge == w:
        return Check("width", "width", "stereo width (side share)", "", round(w, 4), lo, hi, w, "within")
    needed = side_mid_ratio(edge) / side_mid_ratio(w)  # side gain that reaches the edge
    status = "inside-trigger" if abs(needed - 1.0) <= limits.width_trigger else "corrected"
    bounds = (limits.width_min_percent / 100.0, limits.width_max_percent / 100.0)
    if status == "corrected" and not bounds[0] <= needed <= bounds[1]:
        if limits.partial_moves:
            needed = min(max(needed, bounds[0]), bounds[1])
        else:
            status = "character"
    if status == "corrected" and amount <= 0.0:
        status = "amount-0"
    goal = side_share(side_mid_ratio(w) * needed ** amount) if status == "corrected" else w
    return Check("width", "width", "stereo width (side share)", "", round(w, 4), lo, hi, goal, status)


def _space(features: Features, profile: Profile, amount: float, limits: Limits) -> Check:
    """Reverb only when the mix is clearly drier than the range (never to make it drier: no tool can)."""
    lo, hi = profile.scalar_range("tail_level_db")
    tail = features.tail_level_db
    if not math.isfinite(tail):
        return Check("space", "tail_level_db", "post-onset tail level", "dB", 0.0, lo, hi, 0.0, "n/a",
                     "no onsets to measure a tail after")
    if tail >= lo:
        return Check("space", "tail_level_db", "post-onset tail level", "dB", round(tail, 2), lo, hi, tail,
                     "within" if tail <= hi else "cannot")
    deficit = lo - tail
    status = _status(deficit, limits.space_trigger_db, limits.max_tail_increase_db, amount, limits)
    goal = tail + min(deficit, limits.max_tail_increase_db) * amount if status == "corrected" else tail
    return Check("space", "tail_level_db", "post-onset tail level", "dB", round(tail, 2), lo, hi, round(goal, 2),
                 status)


# ---- the chain within the goal ---------------------------------------------------------------

SHELF_BELOW_HZ = 90.0  # a region centred below this is corrected with the low shelf...
SHELF_ABOVE_HZ = 9000.0  # ...above this with the high shelf, otherwise with a bell at its centre
BELL_Q_RANGE = (0.5, 3.0)


def eq_layout(goal: Goal) -> dict[str, tuple[float, float]]:
    """The EQ's frequencies and Qs (stage -> (freq_hz, q)) for the goal: each corrected region
    gets its own band, a bell centred on it (its excess-weighted log-frequency centre, Q from
    its width in octaves) or a shelf at its edge; the other stages keep the model's layout.
    The largest corrections are placed first."""
    layout = dict(EQ_LAYOUT)
    centres = np.asarray(goal.band_centres_hz)
    change = np.asarray(goal.band_change_db)
    corrected = np.asarray(goal.band_status) == "corrected"
    runs = sorted(_runs(np.where(corrected, np.sign(np.round(change, 6)), 0.0)),
                  key=lambda r: -float(np.max(np.abs(change[r]))))
    free = ["peak1", "peak2", "peak3", "peak4"]
    taken: set[str] = set()
    for run in runs:
        weight = np.abs(change[run])
        centre = float(np.exp(np.sum(weight * np.log(centres[run])) / max(float(np.sum(weight)), 1e-9)))
        if centre < SHELF_BELOW_HZ and "low_shelf" not in taken:
            stage, freq, q = "low_shelf", centres[run[-1]] * 2.0 ** (1 / 6), EQ_LAYOUT["low_shelf"][1]
        elif centre > SHELF_ABOVE_HZ and "high_shelf" not in taken:
            stage, freq, q = "high_shelf", centres[run[0]] / 2.0 ** (1 / 6), EQ_LAYOUT["high_shelf"][1]
        else:
            fits = [p for p in free if p not in taken
                    and PARAM_INDEX[f"{p}.freq_hz"].min <= centre <= PARAM_INDEX[f"{p}.freq_hz"].max]
            if not fits:
                continue
            stage = min(fits, key=lambda p: abs(math.log(centre / EQ_LAYOUT[p][0])))
            octaves = max(len(run) / 3.0, 1.0 / 3.0)
            freq, q = centre, float(np.clip(1.0 / (2.0 * math.sinh(math.log(2.0) / 2.0 * octaves)), *BELL_Q_RANGE))
        spec = PARAM_INDEX[f"{stage}.freq_hz"]
        layout[stage] = (round(float(np.clip(freq, spec.min, spec.max)), 1), round(q, 3))
        taken.add(stage)
    return layout


def constrain(settings: ChainSettings, goal: Goal) -> ChainSettings:
    """The engine's chain held to the goal: stages of aspects the goal leaves alone are
    neutral, EQ gains are within the limits and small ones dropped, the compressor's ratio,
    the reverb's level and the side gain within theirs. The high-pass is off: no aspect asks
    for it (the DSP baseline's sub-bass rule would be an unexplained move); the master's DC
    rule switches it on, with its reason."""
    lim = goal.limits
    values: dict[str, float] = {}
    enabled: dict[str, bool] = {"highpass": False}
    for stage in EQ_STAGES:
        gain = float(np.clip(settings[f"{stage}.gain_db"], -lim.max_eq_db, lim.max_eq_db))
        if not goal.active("tone") or not settings.is_on(stage) or abs(gain) < lim.min_eq_move_db:
            gain = 0.0
        values[f"{stage}.gain_db"] = round(gain, 2)
    if goal.active("dynamics") and settings.is_on("compressor"):
        values["compressor.ratio"] = min(settings["compressor.ratio"], lim.max_ratio)
    else:
        enabled["compressor"] = False
    enabled["expander"] = False  # no engine proposes one: the expander is sized in closed loop
    if goal.active("space") and settings.is_on("reverb"):
        values["reverb.wet"] = min(settings["reverb.wet"], lim.max_reverb_wet)
    else:
        enabled["reverb"] = False
    width = settings["stereo.width_percent"] if settings.is_on("stereo") else 100.0
    values["stereo.width_percent"] = (round(float(np.clip(width, lim.width_min_percent, lim.width_max_percent)), 2)
                                      if goal.active("width") else 100.0)
    return settings.replace(values, enabled)


REACH_ITERATIONS = 6
REACH_ATTEMPTS = 8  # fits of the EQ: each drops the small stages or gives up the regions left short
REACH_TOLERANCE_DB = 0.1
# prediction error: a corrected region the fit leaves this close to its trigger counts as out of
# reach (given up), and a region a predicted judgment finds this close to it is corrected
REACH_MARGIN_DB = 0.25


def with_band_change(features: Features, mid_change_db: np.ndarray, side_change_db: np.ndarray,
                     side_gain: float = 1.0) -> Features:
    """``features`` with their mid and side band levels changed (dB per band) and the side
    scaled by ``side_gain``; the side share (width) follows. Other descriptors are kept."""
    mid = np.asarray(features.mid_band_db) + np.asarray(mid_change_db)
    side = np.asarray(features.side_band_db) + np.asarray(side_change_db)
    width = features.width
    if features.channels == 2 and 0.0 < width < 1.0:
        def power_change(before, after) -> float:
            return float(np.sum(10.0 ** (after / 10.0)) / max(np.sum(10.0 ** (np.asarray(before) / 10.0)), 1e-30))

        ratio = (side_mid_ratio(width) * side_gain) ** 2 * (power_change(features.side_band_db, side)
                                                            / max(power_change(features.mid_band_db, mid), 1e-30))
        width = ratio / (1.0 + ratio)
    return replace(features, mid_band_db=tuple(float(v) for v in mid), side_band_db=tuple(float(v) for v in side),
                   width=float(width))


def _eq_response_db(settings: ChainSettings, sample_rate: int) -> np.ndarray:
    return eq_band_response_db(settings, sample_rate, band_matrix(RESPONSE_FFT, sample_rate))


def predicted_features(features: Features, settings: ChainSettings) -> Features:
    """``features`` after the chain's linear stages: the high-pass and EQ's measured band
    response on mid and side, and the side gain. (The compressor and reverb are not linear:
    their share is left to the trigger's tolerance.)"""
    gain_db = _eq_response_db(settings, features.sample_rate)
    side_gain = settings["stereo.width_percent"] / 100.0 if settings.is_on("stereo") else 1.0
    return with_band_change(features, gain_db, gain_db, side_gain)


def reach_goal(goal: Goal, features: Features, profile: Profile, settings: ChainSettings,
               headroom_db: float = 0.0) -> tuple[Goal, ChainSettings]:
    """The chain's EQ and side gain corrected in a closed loop until the mix, as the judgment
    measures it (smoothed, aligned band shape; side share) after the chain's linear stages,
    lands where the goal aims, so that judging the result again finds nothing to move.

    The loop judges its own predicted output, as a second pass would: a bell fitted to the
    band change falls short of the smoothed measurement, the level alignment follows the
    corrected shape, and a correction can carry a neighbouring region out of its range; each
    is only seen by measuring again. A region that the EQ limits cannot bring inside its
    tolerance is, for a master, kept as character after all (a half move would be repeated
    by every later pass); with a reference it is moved as far as the limits allow.
    ``headroom_db`` lets an EQ gain exceed the limit by that much, for a prediction
    (``features``) in which something else, the finalizer's limiter, takes part of the
    EQ's move back: the limit holds for the move as delivered.
    Returns the goal as reached (statuses and changes updated) and the settings.
    """
    if goal.active("tone") or any(settings.is_on(s) for s in ("highpass", *EQ_STAGES)):
        goal, settings = _reach_tone(goal, features, profile, settings, headroom_db)
    return goal, _hold_width(goal, features, settings)


def _hold_width(goal: Goal, features: Features, settings: ChainSettings) -> ChainSettings:
    """The side gain that lands the mix's width, after the chain's EQ, where the goal aims.
    The EQ moves the side share too (side and mid have different spectra): a width the goal
    corrects reaches its aim, one it keeps is held where it was."""
    lim = goal.limits
    width = goal.check("width")
    if width.status in ("n/a", "amount-0") or goal.amounts.width <= 0.0:
        return settings
    after = predicted_features(features, settings)
    aim = width.goal if width.status == "corrected" else width.measured
    side_gain = settings["stereo.width_percent"] / 100.0 if settings.is_on("stereo") else 1.0
    side_gain *= side_mid_ratio(aim) / side_mid_ratio(after.width)
    if width.status != "corrected" and abs(side_gain - 1.0) <= lim.width_trigger / 2.0:
        side_gain = 1.0  # the EQ's side effect is small enough to stay
    side_gain = float(np.clip(side_gain, lim.width_min_percent / 100.0, lim.width_max_percent / 100.0))
    return settings.replace({"stereo.width_percent": round(100.0 * side_gain, 2)},
                            {"stereo": True} if side_gain != 1.0 else None)


def _with_tone(goal: Goal, status: np.ndarray, change: np.ndarray) -> Goal:
    overall = "corrected" if np.any(status == "corrected") else next(
        (s for s in ("amount-0", "character", "inside-trigger") if np.any(status == s)), "within")
    change = np.clip(change, -goal.limits.max_eq_db, goal.limits.max_eq_db)
    return replace(goal, band_status=tuple(str(v) for v in status), band_change_db=_r(change), tone_status=overall)


def _reach_tone(goal: Goal, features: Features, profile: Profile, settings: ChainSettings,
                headroom_db: float) -> tuple[Goal, ChainSettings]:
    lim = goal.limits
    # where each band is to land, in the range's frame: the aim itself, not the change the
    # EQ limit allows (what falls short of it is judged below)
    aligned, _, _, _, full_change, _, _ = _tone(features, profile, goal.amounts.fraction("tone"), lim)
    judged = np.asarray(goal.band_status, dtype=object)
    wanted = aligned + np.where(judged == "corrected", full_change, 0.0)
    locked = judged == "character"  # regions kept as character by the judgment
    reached, goal, settings, given_up = _give_up_until_reached(goal, features, profile, settings, aligned, judged,
                                                                wanted, locked, headroom_db)
    # a second look, as a second pass would take it: behind the chain the level alignment has
    # moved, and a region given up beside another (one the EQ cannot reach) may now be within
    # reach on its own, if its own move is within the EQ limit (it joins the loop if the
    # chain's output still lies beyond its trigger); the others stay given up
    retry = np.zeros_like(given_up)
    for run in _runs(np.where(given_up, np.sign(np.round(full_change, 6)), 0.0)):
        retry[run] = np.max(np.abs(full_change[run])) <= lim.max_eq_db + headroom_db
    if reached and np.any(retry):
        if not goal.active("tone"):  # nothing reached: the failed fits' gains are not a start
            settings = settings.replace({f"{s}.gain_db": 0.0 for s in EQ_STAGES})
        second = np.where(retry, "inside-trigger", np.where(given_up, "character", judged)).astype(object)
        again = _give_up_until_reached(goal, features, profile, settings, aligned, second,
                                       np.where(given_up, aligned, wanted), locked | (given_up & ~retry), headroom_db)
        if again[0]:  # a region not taken up again stays the character it was judged
            _, goal, settings, _ = again
            status = np.asarray(goal.band_status, dtype=object)
            status[given_up & (status != "corrected")] = "character"
            goal = _with_tone(goal, status, np.asarray(goal.band_change_db))
    if not goal.active("tone"):
        settings = settings.replace({f"{s}.gain_db": 0.0 for s in EQ_STAGES})
    return goal, settings


def _give_up_until_reached(goal: Goal, features: Features, profile: Profile, settings: ChainSettings,
                           aligned: np.ndarray, judged: np.ndarray, judged_wanted: np.ndarray,
                           judged_locked: np.ndarray, headroom_db: float
                           ) -> tuple[bool, Goal, ChainSettings, np.ndarray]:
    """The EQ fitted (:func:`_fit_tone`) to the regions ``judged`` corrected; the regions the
    fit leaves beyond (nearly) their trigger are given up as character, and the fit made again.
    Returns whether every corrected region was reached, the goal, the settings and the regions
    given up."""
    lim = goal.limits
    status, wanted, locked = judged.copy(), judged_wanted.copy(), judged_locked.copy()
    frozen: set[str] = set()  # stages held at 0 dB (their move was under the smallest mastering move)
    for _attempt in range(REACH_ATTEMPTS):
        goal, settings = _fit_tone(goal, features, profile, settings, status, wanted, aligned, locked, frozen,
                                   lim.max_eq_db + headroom_db)
        small = {s for s in EQ_STAGES if 0.0 < abs(settings[f"{s}.gain_db"]) < lim.min_eq_move_db} - frozen
        if small:  # drop them, and let the other stages make up for it
            frozen |= small
            settings = settings.replace({f"{s}.gain_db": 0.0 for s in small})
            continue
        if lim.partial_moves or not goal.active("tone"):
            return True, goal, settings, locked & ~judged_locked
        # what a second pass would see: a corrected region still beyond (nearly) its trigger
        # is out of reach, and is the production's character after all
        excess = _tone_measure(predicted_features(features, settings), profile)[3]
        short = (status == "corrected") & (np.abs(excess) > lim.tone_trigger_db - REACH_MARGIN_DB)
        if not np.any(short):
            return True, goal, settings, locked & ~judged_locked
        # the direction each corrected band moves in (a band the fit left short: back toward its range)
        moving = np.sign(np.round(wanted - aligned, 6))
        moving = np.where(moving != 0.0, moving, -np.sign(np.round(excess, 6)))
        # every region left short at once (given up one at a time, the furthest first, a finished
        # master got a 4 dB move that a second pass then answered with another: measured on whole
        # tracks, 4 of 84 moved in pass 2 against 2)
        for run in _runs(np.where(status == "corrected", moving, 0.0)):
            if np.any(short[run]):
                locked[run] = True
        # then the fit again from the judgment's own regions: one the given-up moves carried out
        # of its range is no longer carried
        status, wanted = judged.copy(), judged_wanted.copy()
        status[locked], wanted[locked] = "character", aligned[locked]
        goal = _with_tone(goal, status, wanted - aligned)
    return False, goal, settings, locked & ~judged_locked


def _fit_tone(goal: Goal, features: Features, profile: Profile, settings: ChainSettings, status: np.ndarray,
              wanted: np.ndarray, aligned: np.ndarray, locked: np.ndarray,
              frozen: set[str], max_gain_db: float) -> tuple[Goal, ChainSettings]:
    """The loop proper: judge the predicted output, refit the EQ stages not ``frozen`` on what
    is left, until the corrected bands land where ``wanted`` (updated in place, with
    ``status``, for regions the chain carries out of their range)."""
    lim, sr = goal.limits, features.sample_rate
    mask = shape_mask(sr)
    goal = _with_tone(goal, status, wanted - aligned)
    for _ in range(REACH_ITERATIONS):
        after, _, _, _, change, after_status, _ = _tone(predicted_features(features, settings), profile,
                                                        goal.amounts.fraction("tone"), lim)
        new = (np.asarray(after_status) == "corrected") & (status != "corrected") & ~locked
        if np.any(new):  # the chain carried a neighbouring region out of its range
            status[new], wanted[new] = "corrected", after[new] + change[new]
            goal = _with_tone(goal, status, wanted - aligned)
        corrected = status == "corrected"
        # corrected bands: to where the judgment will look for them; the others: no EQ at all
        # (their own measurement drifts with the alignment, which is no reason to move them)
        residual = np.where(mask, np.where(corrected, after - wanted, _eq_response_db(settings, sr)), 0.0)
        if not np.any(corrected) or (not np.any(new) and np.max(np.abs(residual[corrected])) < REACH_TOLERANCE_DB):
            break
        layout = {s: v for s, v in eq_layout(goal).items() if s not in frozen}
        if not layout:
            break
        step = eq_values(fit_eq(-residual, mask, sr, band_matrix(RESPONSE_FFT, sr), free_level=False,
                                limit_db=max_gain_db, layout=layout, weights=goal.band_weights()), layout)
        # a stage already moving keeps its frequency and Q (the step's own would reshape the gain
        # it has: a small residual could then flip the fit to another solution); a new one takes the step's
        values = {k: v for k, v in step.items()
                  if not k.endswith(".gain_db") and settings[k.split(".")[0] + ".gain_db"] == 0.0}
        for stage in layout:
            key = f"{stage}.gain_db"
            values[key] = round(float(np.clip(settings[key] + step[key], -max_gain_db, max_gain_db)), 2)
        settings = settings.replace(values, {s: True for s in layout})
    return goal, settings


NOTE_BANDS_BELOW_HZ = 1300.0  # where single notes' fundamentals stand out of a band spectrum


def note_guard(residual_db: np.ndarray, centres_hz: np.ndarray) -> np.ndarray:
    """``residual_db`` without single-band peaks and dips under NOTE_BANDS_BELOW_HZ: there a band
    that stands out of both neighbours is a note of the music (a bass line's root, a held
    chord), not the balance, so it takes the median of its three bands, held between 0 and its
    own value: the guard holds a move back, it never makes one (a comb's dip between two
    peaks would otherwise be raised to its neighbours' need, further from the aim). A step or
    a slope over two bands or more is kept as it is. Higher up a band holds the partials of
    many notes, and its level is the timbre."""
    residual_db = np.asarray(residual_db, dtype=np.float64)
    padded = np.pad(residual_db, 1, mode="edge")
    median = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    held = np.clip(median, np.minimum(residual_db, 0.0), np.maximum(residual_db, 0.0))
    return np.where(np.asarray(centres_hz) < NOTE_BANDS_BELOW_HZ, held, residual_db)


def reach_match(goal: Goal, features: Features, profile: Profile,
                settings: ChainSettings) -> tuple[Goal, ChainSettings]:
    """The match EQ (:mod:`mixbridge.effects.match_eq`) for a reference: the band shape the
    parametric bands leave between them, closed band by band.

    The aim is the mix's own band shape moved toward the reference's by the tone amount, on
    the tonal bands both hold, level removed. What the chain's linear stages leave of it
    (predicted from their measured response, as the judgment's loop does) goes through the
    note guard (:func:`note_guard`) and onto the match EQ, within ``max_match_eq_db`` per band
    (the stage measures its settings band by band, so no loop is needed). The bands outside
    the tonal range hold their nearest tonal band's gain, so the curve runs flat beyond it.
    A correction under the smallest EQ move leaves the stage off. Returns the goal with the
    mean band difference to the aim before and after."""
    lim, sr = goal.limits, features.sample_rate
    amount = goal.amounts.fraction("tone")
    mask = shape_mask(sr) & known_bands(profile)
    off = settings.replace({name: 0.0 for name in MATCH_EQ_PARAMS}, {"match_eq": False})
    if lim.max_match_eq_db <= 0.0 or amount <= 0.0 or np.count_nonzero(mask) < 3:
        return goal, off
    mix = band_shape(tone_bands_db(features), mask)
    aim = mix + amount * (band_shape(np.nan_to_num(profile.band_shape_db), mask) - mix)

    def residual(trial: ChainSettings) -> np.ndarray:
        left = aim - band_shape(tone_bands_db(predicted_features(features, trial)), mask)
        return left[mask] - np.mean(left[mask])

    before = residual(off)
    tonal = np.flatnonzero(mask)
    # The guard judges the mix's own difference to the aim: a single band the parametric bells
    # raised or cut is the chain's doing, not a note, and the match EQ takes it back.
    own = aim[mask] - mix[mask]
    chain = before - (own - np.mean(own))  # what the linear stages change, negated, level removed
    gains = np.zeros(len(BAND_CENTRES_HZ))
    gains[tonal] = np.clip(note_guard(own - np.mean(own), np.asarray(BAND_CENTRES_HZ)[tonal]) + chain,
                           -lim.max_match_eq_db, lim.max_match_eq_db)
    gains[: tonal[0]], gains[tonal[-1] + 1:] = gains[tonal[0]], gains[tonal[-1]]
    gains[~held_bands(sr)] = 0.0  # the file holds nothing there (the stage runs its top band on to Nyquist)
    if np.max(np.abs(gains)) < lim.min_eq_move_db:
        return (replace(goal, match_before_db=_mean_abs(before), match_after_db=_mean_abs(before)),
                _hold_width(goal, features, off))
    trial = settings.replace({n: round(float(g), 1) for n, g in zip(MATCH_EQ_PARAMS, gains)}, {"match_eq": True})
    # the width lands where the goal aims behind the whole EQ, the match EQ included
    trial = _hold_width(goal, features, trial)
    return replace(goal, match_before_db=_mean_abs(before), match_after_db=_mean_abs(residual(trial))), trial


def _mean_abs(values: np.ndarray) -> float:
    return round(float(np.mean(np.abs(values))), 3)


def measured_change(a: Features, b: Features) -> dict[str, float]:
    """What changed from ``a`` to ``b``, as a mastering engineer checks a master: the largest
    and the mean band-shape change over the tonal bands (level removed, on the bands the tone
    is judged on), the width change (side/mid amplitude ratio, %), the crest and LUFS change."""
    mask = shape_mask(min(a.sample_rate, b.sample_rate))
    diff = (band_shape(tone_bands_db(b), mask) - band_shape(tone_bands_db(a), mask))[mask]
    width = (side_mid_ratio(b.width) / side_mid_ratio(a.width) - 1.0) * 100.0 if a.channels == 2 else 0.0
    return {"band_max_db": float(np.max(np.abs(diff))), "band_mean_db": float(np.mean(np.abs(diff))),
            "width_pct": float(width), "crest_db": float(b.crest_factor_db - a.crest_factor_db),
            "lufs_change": float(b.integrated_lufs - a.integrated_lufs)}
