"""The judgment's evidence: one :class:`Move` per EQ stage, per dynamics measurement, for
width and for space, giving what was measured against which range and what the final chain
does about it, in producer terms; and the goal as the report records it. ``master``,
``suggest`` and ``stems`` print these lines and the report JSON records the same values."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from mixbridge.assistant.judge import ASPECT_STAGES, Goal
from mixbridge.effects.schema import (
    EQ_STAGES,
    MATCH_EQ_PARAMS,
    PARAM_INDEX,
    STAGE_LABELS,
    ChainSettings,
    format_value,
    stage_params,
)

# The band region each EQ stage acts on (Hz), for its evidence line.
STAGE_REGIONS_HZ: Mapping[str, tuple[float, float]] = {
    "low_shelf": (35.0, 141.0), "peak1": (141.0, 355.0), "peak2": (355.0, 1410.0),
    "peak3": (1410.0, 4470.0), "peak4": (4470.0, 8910.0), "high_shelf": (8910.0, 13000.0),
}
STATUS_TEXT = {
    "within": "within the normal range",
    "inside-trigger": "just outside the normal range, inside the tolerance",
    "corrected": "outside the normal range",
    "character": "far outside the normal range, beyond a mastering move: kept as the production's character",
    "amount-0": "outside the normal range, but its amount is 0 %",
    "cannot": "outside the range on the side no processor can undo",
    "n/a": "not measurable",
    "inverted": "the channels are opposed across the spectrum: one channel's polarity is inverted, and the mix "
                "cancels when summed to mono",
}


STATUS_SHORT = {
    "inside-trigger": "inside the tolerance",
    "character": "beyond a mastering move: kept as the production's character",
    "amount-0": "its amount is 0 %",
    "cannot": "no processor undoes that",
}


@dataclass(frozen=True)
class Move:
    """One line of evidence: what was measured against which range, and what the chain does."""

    aspect: str
    stage: str  # a schema stage
    measure: str
    measured: float | None
    low: float | None
    high: float | None
    unit: str
    status: str
    action: str  # what the chain does, in producer terms ("left alone" when nothing)
    values: Mapping[str, float] = field(default_factory=dict)  # the settings behind the action
    note: str = ""

    @property
    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.stage == "match_eq":  # one figure, not a range: the mean band difference left to match
            where = f"{_num(self.measured, self.unit)}{unit} mean per band"
        elif self.measured is None:
            where = STATUS_TEXT[self.status]
        elif self.low is None or self.high is None:  # a band the profile leaves open
            where = (f"{_num(self.measured, self.unit, self.aspect == 'tone')}{unit}, not judged: the "
                     "reference holds nothing there (its sample rate is lower)")
        else:
            signed = self.aspect == "tone"
            span = f"{_num(self.low, self.unit, signed)}…{_num(self.high, self.unit, signed)}{unit}"
            where = f"{_num(self.measured, self.unit, signed)}{unit}, {_deviation(self)} {span}"
            if self.status not in ("within", "corrected", "n/a"):
                where += f" ({STATUS_SHORT[self.status]})"
        note = f"; {self.note}" if self.note else ""
        return f"{self.measure}: {where}{note} → {self.action}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["values"] = dict(self.values)
        out["text"] = self.text
        return out


def _num(value: float | None, unit: str, signed: bool = False) -> str:
    if value is None:
        return "—"
    if unit == "":
        return f"{value:.3f}"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _deviation(move: Move) -> str:
    if move.status in ("within", "n/a") or move.measured is None or move.low is None or move.high is None:
        return "within the normal range"
    if move.measured > move.high:
        distance, side = move.measured - move.high, "above"
    else:
        distance, side = move.low - move.measured, "below"
    size = f"{distance:.3f}" if move.unit == "" else f"{distance:.1f} {move.unit}"
    return f"{size} {side} the normal range"


def _stage_action(settings: ChainSettings, stage: str) -> tuple[str, dict[str, float]]:
    if stage in EQ_STAGES:
        gain = settings[f"{stage}.gain_db"] if settings.is_on(stage) else 0.0
        if gain == 0.0:
            return "left alone", {}
        freq = settings[f"{stage}.freq_hz"]
        kind = {"low_shelf": "low shelf", "high_shelf": "high shelf"}.get(stage, "bell")
        return (f"{gain:+.1f} dB {kind} at {format_value(PARAM_INDEX[f'{stage}.freq_hz'], freq)}",
                {f"{stage}.gain_db": gain, f"{stage}.freq_hz": freq, f"{stage}.q": settings[f"{stage}.q"]})
    if stage == "compressor":
        if not settings.is_on("compressor"):
            return "compressor off", {}
        keys = ("threshold_db", "ratio", "attack_ms", "release_ms")
        values = {f"compressor.{k}": settings[f"compressor.{k}"] for k in keys}
        return (f"compressor {settings['compressor.ratio']:.1f}:1 at {settings['compressor.threshold_db']:.1f} dB "
                f"(after the input trim), {format_value(PARAM_INDEX['compressor.attack_ms'], values['compressor.attack_ms'])}"
                f" / {format_value(PARAM_INDEX['compressor.release_ms'], values['compressor.release_ms'])}", values)
    if stage == "expander":
        if not settings.active("expander"):
            return "expander off", {}
        values = {spec.name: settings[spec.name] for spec in stage_params("expander")}
        return (f"upward expander {settings['expander.ratio']:.2f}:1 over {settings['expander.threshold_db']:.1f} dB "
                f"(up to {settings['expander.range_db']:.0f} dB), "
                f"{format_value(PARAM_INDEX['expander.attack_ms'], values['expander.attack_ms'])} / "
                f"{format_value(PARAM_INDEX['expander.release_ms'], values['expander.release_ms'])}", values)
    if stage == "stereo":
        width = settings["stereo.width_percent"] if settings.is_on("stereo") else 100.0
        if width == 100.0:
            return "width left at 100 %", {}
        return f"side level {width - 100.0:+.0f} % (width {width:.0f} %)", {"stereo.width_percent": width}
    if stage == "reverb":
        if not settings.is_on("reverb") or settings["reverb.wet"] <= 0.0:
            return "no reverb", {}
        return (f"reverb wet {settings['reverb.wet']:.3f} (room {settings['reverb.room_size']:.2f})",
                {"reverb.wet": settings["reverb.wet"], "reverb.room_size": settings["reverb.room_size"]})
    raise ValueError(stage)


def explain(goal: Goal, settings: ChainSettings) -> tuple[Move, ...]:
    """One :class:`Move` per EQ stage (its region's worst band against its range), per
    dynamics measurement, for width and for space, with the final chain's values."""
    moves = []
    centres = np.asarray(goal.band_centres_hz)
    excess = np.asarray(goal.band_excess_db)
    measured = np.asarray(goal.band_measured_db)
    for stage in EQ_STAGES:
        lo_hz, hi_hz = STAGE_REGIONS_HZ[stage]
        region = np.flatnonzero((centres >= lo_hz) & (centres < hi_hz))
        worst = region[np.argmax(np.abs(excess[region]))]
        action, values = _stage_action(settings, stage)
        status = goal.band_status[worst]
        note = ""
        if values and status in ("within", "inside-trigger", "character"):
            note = "this band supports the correction of its neighbours"
        if not values and status == "corrected":
            note = "the fitted EQ moves it less than the smallest mastering move"
        moves.append(Move("tone", stage, f"{hz_label(centres[worst])} region ({STAGE_LABELS[stage]})",
                          round(float(measured[worst]), 2), _known(goal.band_low_db[worst]),
                          _known(goal.band_high_db[worst]),
                          "dB", status, action, values, note))
    if math.isfinite(goal.match_before_db):
        moves.append(_match_move(goal, settings))
    for check in goal.checks:
        stage = "expander" if check.expands else ASPECT_STAGES[check.aspect][0]
        action, values = _stage_action(settings, stage)
        note = check.note
        if check.status == "corrected" and not settings.is_on(stage):
            if check.expands:
                note = (note + "; " if note else "") + "no upward expander setting brings it nearer as delivered"
            elif check.key == "crest_factor_db":
                note = (note + "; " if note else "") + "no compressor setting within the limits reaches it"
        measured_value = None if check.status == "n/a" else check.measured
        moves.append(Move(check.aspect, stage, check.label, measured_value,
                          None if measured_value is None else round(check.low, 3),
                          None if measured_value is None else round(check.high, 3), check.unit, check.status,
                          action, values, note))
    return tuple(moves)


def match_band_label(name: str) -> str:
    """A match EQ band as the evidence names it ("2 kHz")."""
    return PARAM_INDEX[name].label.removeprefix("match EQ ")


def _match_move(goal: Goal, settings: ChainSettings) -> Move:
    gains = {n: settings[n] for n in MATCH_EQ_PARAMS if settings.active("match_eq") and settings[n] != 0.0}
    if gains:
        largest = max(gains, key=lambda n: abs(gains[n]))
        action = (f"match EQ on {len(gains)} bands, {min(gains.values()):+.1f}…{max(gains.values()):+.1f} dB "
                  f"(largest at {match_band_label(largest)})")
        note = (f"{goal.match_after_db:.2f} dB left after it (a single band standing out under 1.3 kHz is a "
                "note of the music, not matched)")
        status = "corrected"
    else:
        action, note, status = "left alone", "under the smallest EQ move", "within"
    return Move("tone", "match_eq", "band shape behind the parametric EQ against the reference",
                goal.match_before_db, None, None, "dB", status, action, gains, note)


def hz_label(freq: float) -> str:
    """A band centre as the judgment names its regions (158 Hz, 1.6 kHz)."""
    return f"{freq / 1000:.1f} kHz" if freq >= 1000 else f"{freq:.0f} Hz"


def goal_to_dict(goal: Goal) -> dict:
    """The goal's evidence for the report (bands, checks, amounts, limits)."""
    return {
        "profile": goal.profile,
        "context": goal.context,
        "amounts_percent": asdict(goal.amounts),
        "limits": asdict(goal.limits),
        "tone": {"status": goal.tone_status, "band_centres_hz": [round(f, 1) for f in goal.band_centres_hz],
                 "measured_db": list(goal.band_measured_db), "low_db": [_known(v) for v in goal.band_low_db],
                 "high_db": [_known(v) for v in goal.band_high_db], "excess_db": list(goal.band_excess_db),
                 "change_db": list(goal.band_change_db), "band_status": list(goal.band_status)},
        "checks": [asdict(c) for c in goal.checks],
        "estimated_limiting_db": goal.estimated_limiting_db,
        "side_gain": round(goal.side_gain, 4),
        "match_eq": ({"before_db": goal.match_before_db, "after_db": goal.match_after_db}
                     if math.isfinite(goal.match_before_db) else None),
    }


def _known(value: float) -> float | None:
    """A band's range edge, or None for a band the profile leaves open (JSON has no NaN)."""
    return float(value) if math.isfinite(value) else None
