"""Which stems a bus EQ move acts on: each stem's share of the energy each EQ stage moves,
and the per-stem suggestions built from it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mixbridge.analysis.analyze import OUT_OF_PHASE_CORRELATION
from mixbridge.analysis.features import Features
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_matrix, fft_size
from mixbridge.assistant.stems.lowend import StemCorrection
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, PARAM_INDEX, STAGE_LABELS, ChainSettings, format_value

log = logging.getLogger(__name__)

# Shares of the bus EQ moves:
EQ_MOVE_MIN_DB = 0.5  # bus EQ bands smaller than this are not worth a per-stem suggestion
DOMINANT_SHARE = 0.5  # a stem with at least this share of a move's energy is named for it


@dataclass(frozen=True)
class EqMove:
    """One bus EQ band and how much of the energy it acts on each stem carries (shares sum to 1)."""

    stage: str
    freq_hz: float
    gain_db: float
    shares: dict[str, float]

    def label(self) -> str:
        return (f"{STAGE_LABELS[self.stage]} {format_value(PARAM_INDEX[self.stage + '.gain_db'], self.gain_db)} "
                f"at {format_value(PARAM_INDEX[self.stage + '.freq_hz'], self.freq_hz)}")

    def dominant(self) -> str | None:
        name = max(self.shares, key=lambda stem: self.shares[stem]) if self.shares else None
        return name if name is not None and self.shares[name] >= DOMINANT_SHARE else None


def eq_moves(settings: ChainSettings, features: dict[str, Features], sample_rate: int) -> tuple[EqMove, ...]:
    """Each bus EQ band of at least EQ_MOVE_MIN_DB, with every stem's share of its energy.

    A stem's share is the sum over third-octave bands of its band power (mid + side) weighted
    by the band's |gain| in dB from that EQ stage alone (measured through the renderer's own
    filters), over the same sum for all stems. Stems that are correlated in a band (a bass and
    a kick on one note) make shares approximate: powers of correlated signals do not add.
    """
    matrix = band_matrix(fft_size(sample_rate), sample_rate)
    audible = np.asarray(BAND_CENTRES_HZ) < sample_rate / 2.0
    energy = {name: 10.0 ** (np.asarray(f.mid_band_db) / 10.0) + 10.0 ** (np.asarray(f.side_band_db) / 10.0)
              for name, f in features.items()}
    moves = []
    for stage in EQ_STAGES:
        gain = settings[f"{stage}.gain_db"]
        if not settings.is_on(stage) or abs(gain) < EQ_MOVE_MIN_DB:
            continue
        weight = np.abs(eq_band_response_db(settings.only((stage,)), sample_rate, matrix)) * audible
        acted = {name: float(weight @ e) for name, e in energy.items()}
        total = sum(acted.values())
        shares = {name: (v / total if total > 0 else 0.0) for name, v in acted.items()}
        moves.append(EqMove(stage, settings[f"{stage}.freq_hz"], gain, shares))
    return tuple(moves)


def stem_suggestions(name: str, features: Features, silent: bool, correction: StemCorrection,
                 moves: Sequence[EqMove]) -> tuple[str, ...]:
    if silent:
        return ("silent: written as silence",)
    out = []
    if correction.highpass_hz is not None:
        out.append(correction.describe())
    if features.clipped_samples:
        out.append(f"{features.clipped_samples} samples at full scale (clipped) in the stem file: re-export it "
                   "from the session as 32-bit float or with its fader lower")
    if features.channels == 2 and features.correlation < OUT_OF_PHASE_CORRELATION:
        out.append(f"its channels are largely out of phase (correlation {features.correlation:.2f}): check the "
                   "polarity or stereo widener on this track; it cancels in mono")
    for move in moves:
        if move.dominant() == name:
            out.append(f"carries {move.shares[name] * 100:.0f} % of the energy the bus {move.label()} acts on: "
                       "you could make this move on this stem alone instead")
    return tuple(out) or ("no correction needed",)
