"""The stems report: per-stem results, the residual between the written stems and the
master, and the report JSON (README: Stems)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from mixbridge.analysis.features import Features
from mixbridge.analysis.truepeak import amplitude_to_db
from mixbridge.assistant.evidence import Move
from mixbridge.assistant.judge import Goal
from mixbridge.assistant.master import judgment_dict
from mixbridge.assistant.stems.attribution import EqMove
from mixbridge.assistant.stems.lowend import StemCorrection
from mixbridge.assistant.targets import Target
from mixbridge.effects.finalize import LimiterTrace
from mixbridge.effects.schema import ChainSettings

log = logging.getLogger(__name__)

REPORT_VERSION = 1
REPORT_NAME = "stems-report.json"
MIX_MASTER_NAME = "mix-master"
OUTPUT_SUFFIX = ".wav"


@dataclass(frozen=True)
class StemResult:
    name: str
    input_path: str
    output_path: str
    channels_in: int
    centred: bool  # a mono stem copied to both channels
    padded_frames: int
    silent: bool
    input_lufs: float
    output_lufs: float
    input_true_peak_dbtp: float
    output_true_peak_dbtp: float
    correction: StemCorrection
    suggestions: tuple[str, ...]

    @property
    def change_db(self) -> float:
        """Loudness change through the corrections and the shared bus (-inf when silent)."""
        if not (math.isfinite(self.input_lufs) and math.isfinite(self.output_lufs)):
            return -math.inf
        return self.output_lufs - self.input_lufs


@dataclass(frozen=True)
class Residual:
    """Sum of the written stems minus the written mix master (all channels, all samples)."""

    rms_dbfs: float
    peak_dbfs: float
    master_rms_dbfs: float
    master_peak_dbfs: float
    quantisation_floor_dbfs: float  # expected RMS of the independent dither + rounding (-inf at 32f)

    @property
    def rms_below_master_db(self) -> float:
        return self.master_rms_dbfs - self.rms_dbfs

    @property
    def peak_below_master_db(self) -> float:
        return self.master_peak_dbfs - self.peak_dbfs


@dataclass(frozen=True)
class StemsReport:
    input_dir: str
    output_dir: str
    target: Target
    engine: str
    sample_rate: int
    frames: int
    bit_depth: str
    stems: tuple[StemResult, ...]
    settings: ChainSettings
    eq_moves: tuple[EqMove, ...]
    compressor_min_gain_db: float
    gain_db: float
    limiting_db: float
    mix_master_path: str
    mix_input: Features
    mix_output: Features
    residual: Residual
    direct_deviation_db: float  # sum of processed stems vs the mix rendered alone (float32 filter noise)
    warnings: tuple[str, ...] = field(default_factory=tuple)
    goal: Goal | None = None  # the bus judgment (None with --chain)
    moves: tuple[Move, ...] = ()
    notes: tuple[str, ...] = ()  # the judgment's notes
    limiter: LimiterTrace | None = None  # the finalizer over time on the mix (the HTML report's plots)

    def to_dict(self) -> dict:
        t = self.target
        return {
            "report_version": REPORT_VERSION,
            "input_dir": self.input_dir,
            "output_dir": self.output_dir,
            "target": {"name": t.name, "lufs": t.lufs, "ceiling_dbtp": t.ceiling_dbtp, "profile": t.profile.name},
            "engine": self.engine,
            "sample_rate": self.sample_rate,
            "frames": self.frames,
            "bit_depth": self.bit_depth,
            "stems": [_stem_dict(s) for s in self.stems],
            "bus": {
                "settings": self.settings.to_dict(),
                "compressor": {"model": "effects.compressor (gain computed on the mix, applied to every stem)",
                               "min_gain_db": _num(self.compressor_min_gain_db)},
                "eq_moves": [{"stage": m.stage, "freq_hz": round(m.freq_hz, 1), "gain_db": round(m.gain_db, 2),
                              "shares": {k: round(v, 4) for k, v in m.shares.items()}} for m in self.eq_moves],
            },
            "finalizer": {"gain_db": round(self.gain_db, 3), "limiting_db": round(self.limiting_db, 3)}
            | ({"timeline": self.limiter.to_dict()} if self.limiter else {}),
            "mix_master": {"path": self.mix_master_path, "input": self.mix_input.to_dict(),
                           "output": self.mix_output.to_dict()},
            "residual": {
                "rms_dbfs": _num(self.residual.rms_dbfs), "peak_dbfs": _num(self.residual.peak_dbfs),
                "rms_below_master_db": _num(self.residual.rms_below_master_db),
                "peak_below_master_db": _num(self.residual.peak_below_master_db),
                "quantisation_floor_dbfs": _num(self.residual.quantisation_floor_dbfs),
                "mix_rendered_alone_deviation_db": _num(self.direct_deviation_db),
            },
            "warnings": list(self.warnings),
            "judgment": judgment_dict(self.goal, self.moves, self.notes),
        }


def _num(value: float, digits: int = 2) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def _stem_dict(s: StemResult) -> dict:
    c = s.correction
    return {
        "name": s.name, "input_path": s.input_path, "output_path": s.output_path,
        "channels_in": s.channels_in, "centred": s.centred, "padded_frames": s.padded_frames, "silent": s.silent,
        "input_lufs": _num(s.input_lufs), "output_lufs": _num(s.output_lufs), "change_db": _num(s.change_db),
        "input_true_peak_dbtp": _num(s.input_true_peak_dbtp), "output_true_peak_dbtp": _num(s.output_true_peak_dbtp),
        "correction": {"highpass_hz": None if c.highpass_hz is None else round(c.highpass_hz, 1),
                       "applied": c.applied, "subsonic_share_db": _num(c.subsonic_share_db),
                       "low_edge_hz": _num(c.low_edge_hz, 1), "dc_offset_dbfs": _num(c.dc_offset_dbfs),
                       "loss_at_low_edge_db": round(c.loss_at_low_edge_db, 2)},
        "suggestions": list(s.suggestions),
    }


def measure_residual(stem_sum: np.ndarray, master: np.ndarray, bit_depth: str, signals: int) -> Residual:
    """Compare the sum of the written stems with the written master.

    ``signals`` is how many written files carry dither besides the master; at B bits each one
    adds TPDF dither (LSB^2/6) and rounding (LSB^2/12) of power LSB^2/4 with LSB = 2^(1-B),
    independent between files, hence the expected floor ``sqrt(signals + 1) * 2^-B``.
    """
    diff = stem_sum - master
    rms = math.sqrt(float(np.mean(np.square(diff))))
    master_rms = math.sqrt(float(np.mean(np.square(master, dtype=np.float64))))
    floor = -math.inf if bit_depth == "32f" else amplitude_to_db(math.sqrt(signals + 1) * 2.0 ** -int(bit_depth))
    return Residual(amplitude_to_db(rms), amplitude_to_db(float(np.max(np.abs(diff)))), amplitude_to_db(master_rms),
                    amplitude_to_db(float(np.max(np.abs(master)))), floor)
