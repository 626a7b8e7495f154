"""Per-stem low-end corrections: a rumble/DC high-pass where a stem carries sub-sonic energy,
its cutoff held below the stem's lowest content."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from mixbridge.analysis.audio import Audio
from mixbridge.analysis.features import Features
from mixbridge.assistant.decide import DC_HIGHPASS_DBFS
from mixbridge.effects.render import build_board
from mixbridge.effects.schema import PARAM_INDEX, STAGES, ChainSettings

log = logging.getLogger(__name__)

# Per-stem rumble/DC high-pass (two first-order sections, as the chain's high-pass stage):
SUBSONIC_HZ = 20.0  # below this is sub-sonic (DC included)
SUBSONIC_SHARE_DB = -40.0  # a stem with more of its power than this below SUBSONIC_HZ gets the high-pass
LOW_EDGE_SHARE = 0.01  # a stem's lowest content: where 1 % of its power above SUBSONIC_HZ is reached
LOW_EDGE_LOSS_DB = 0.5  # the cutoff costs at most this much at the stem's lowest content...
LOW_EDGE_MAX_LOSS_DB = 1.0  # ...unless held at the schema's minimum; over this it is only recommended
HIGHPASS_MAX_HZ = 30.0  # ...and is never above this
HIGHPASS_MIN_HZ = PARAM_INDEX["highpass.cutoff_hz"].min
LOW_SPECTRUM_RESOLUTION_HZ = 1.0  # FFT size ~ sample_rate / this: resolves 10 Hz from 20 Hz
LOW_SPECTRUM_MAX_HZ = 1000.0  # the low-edge search stops here (the cutoff is capped long before)


@dataclass(frozen=True)
class StemCorrection:
    """The measured low end of a stem and the high-pass it gets (``highpass_hz`` None: none)."""

    subsonic_share_db: float  # power below SUBSONIC_HZ relative to the stem's power (-inf: silent)
    low_edge_hz: float  # frequency of the stem's lowest content (LOW_EDGE_SHARE of its power above 20 Hz)
    dc_offset_dbfs: float
    highpass_hz: float | None
    loss_at_low_edge_db: float  # what the high-pass costs at low_edge_hz (0 without one)
    applied: bool

    def describe(self) -> str:
        if self.highpass_hz is None:
            return ""
        why = []
        if self.subsonic_share_db > SUBSONIC_SHARE_DB:
            why.append(f"{self.subsonic_share_db:.0f} dB of its power is below {SUBSONIC_HZ:.0f} Hz")
        if self.dc_offset_dbfs > DC_HIGHPASS_DBFS:
            why.append(f"DC offset {self.dc_offset_dbfs:.0f} dBFS")
        text = (f"high-pass at {self.highpass_hz:.0f} Hz, 12 dB/octave ({'; '.join(why)}); it costs "
                f"{self.loss_at_low_edge_db:.1f} dB at the stem's lowest content (~{self.low_edge_hz:.0f} Hz)")
        if self.applied:
            return text
        if self.loss_at_low_edge_db > LOW_EDGE_MAX_LOSS_DB:
            return (f"recommended, not applied (it would cut the stem's own low end): {text}; "
                    "remove the rumble at the source")
        return f"recommended, not applied (--no-stem-corrections): {text}"


def low_spectrum(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Long-term power spectrum of the low end, channels summed, with ~1 Hz resolution.

    Hann-windowed frames at 50 % overlap (Welch), *not* detrended, so DC counts as sub-sonic
    power. Only bins up to LOW_SPECTRUM_MAX_HZ are kept, plus the total over all bins.
    (``scipy.signal.welch`` computes the same, but holds every frame's spectrum at once: about
    460 MB for a 5-minute stereo stem at 48 kHz with these 1 Hz bins; this takes 8 frames at a time.)

    Returns
    -------
    (freqs_hz, power, total_power)
        Bin frequencies and one-sided powers (same arbitrary unit as ``total_power``).
    """
    n_fft = int(2 ** math.ceil(math.log2(sample_rate / LOW_SPECTRUM_RESOLUTION_HZ)))
    hop = n_fft // 2
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[1] < n_fft:
        x = np.concatenate((x, np.zeros((x.shape[0], n_fft - x.shape[1]))), axis=1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    keep = int(np.searchsorted(freqs, LOW_SPECTRUM_MAX_HZ, side="right"))
    weight = np.full(freqs.size, 2.0)  # one-sided: every bin but DC and Nyquist stands for two
    weight[0] = weight[-1] = 1.0
    window = np.hanning(n_fft + 1)[:-1]
    starts = list(range(0, x.shape[1] - n_fft + 1, hop))
    power, total = np.zeros(keep), 0.0
    group = 8  # frames per FFT call: bounded temporaries
    for i in range(0, len(starts), group):
        frames = np.stack([x[:, s : s + n_fft] for s in starts[i : i + group]], axis=1) * window
        spec = np.fft.rfft(frames, axis=-1)
        p = (spec.real**2 + spec.imag**2) * weight
        power += p[..., :keep].sum(axis=(0, 1))
        total += float(p.sum())
    return freqs[:keep], power, total


def _highpass_loss_db(freq_hz: float, cutoff_hz: float) -> float:
    """Attenuation of the chain's high-pass (two first-order sections) at ``freq_hz``."""
    return float(-20.0 * math.log10(freq_hz**2 / (freq_hz**2 + cutoff_hz**2)))


def measure_correction(audio: Audio, features: Features, apply: bool = True) -> StemCorrection:
    """The per-stem rumble/DC high-pass, from the stem's measured low end.

    Switched on when more than SUBSONIC_SHARE_DB of the stem's power is below SUBSONIC_HZ
    (DC included) or its DC offset is over master's DC_HIGHPASS_DBFS. The cutoff is the highest
    (up to HIGHPASS_MAX_HZ) that costs at most LOW_EDGE_LOSS_DB at the stem's lowest content,
    never below the schema's minimum: for two first-order sections the loss at f is
    ``-20 log10(f^2 / (f^2 + fc^2))``, so ``fc = f * sqrt(10^(loss/20) - 1)``. Held at the
    minimum, a cutoff costing more than LOW_EDGE_MAX_LOSS_DB is recommended but not applied.
    """
    freqs, power, total = low_spectrum(audio.samples, audio.sample_rate)
    if total <= 0.0:
        return StemCorrection(-math.inf, math.nan, -math.inf, None, 0.0, False)
    sub = float(power[freqs < SUBSONIC_HZ].sum())
    share_db = 10.0 * math.log10(sub / total) if sub > 0 else -math.inf
    above = np.cumsum(np.where(freqs >= SUBSONIC_HZ, power, 0.0))
    reach = np.flatnonzero(above >= LOW_EDGE_SHARE * (total - sub))
    low_edge = float(freqs[reach[0]]) if reach.size else LOW_SPECTRUM_MAX_HZ
    if share_db <= SUBSONIC_SHARE_DB and features.dc_offset_dbfs <= DC_HIGHPASS_DBFS:
        return StemCorrection(share_db, low_edge, features.dc_offset_dbfs, None, 0.0, False)
    cutoff = low_edge * math.sqrt(10.0 ** (LOW_EDGE_LOSS_DB / 20.0) - 1.0)
    cutoff = min(max(cutoff, HIGHPASS_MIN_HZ), HIGHPASS_MAX_HZ)
    loss = _highpass_loss_db(low_edge, cutoff)
    return StemCorrection(share_db, low_edge, features.dc_offset_dbfs, cutoff, loss,
                          apply and loss <= LOW_EDGE_MAX_LOSS_DB)


def apply_correction(audio: Audio, correction: StemCorrection) -> Audio:
    """The stem through its high-pass (the chain's own high-pass stage), or as it is."""
    if correction.highpass_hz is None or not correction.applied:
        return audio
    board = build_board(ChainSettings.create({"highpass.cutoff_hz": correction.highpass_hz},
                                             {s: s == "highpass" for s in STAGES}))
    return audio.with_samples(board(np.ascontiguousarray(audio.samples), float(audio.sample_rate)))
