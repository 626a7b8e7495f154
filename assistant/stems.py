"""Stems: master a song from its stems with one shared master-bus decision.

``master_stems(song_dir, out_dir, target)`` loads every stem of one song (the audio files
directly in ``song_dir``), applies conservative, measured per-stem corrections (a rumble/DC
high-pass where a stem carries sub-sonic energy), sums them into the mix, chooses the bus
settings on that mix with :func:`assistant.master.suggest_settings` and finalizes the mix to
the target like ``mixbridge master``. Each stem then goes through the *same* bus: the linear
stages as they are, the compressor's and the finalizer's gain curves computed on the mix and
applied sample for sample (:mod:`effects.bus`). So the processed stems keep their balance and
their sum is the mastered mix; the report measures the residual between the two as written.
Stems are never normalised one by one.

Input policy for a stem set (also in README.md):

- every file with a readable audio extension directly in the folder is a stem (not
  recursive; hidden files such as macOS ``._name`` are skipped and logged);
- one sample rate for all (never resampled): different rates are refused, naming each file;
- one length for all: different lengths are refused, naming each length, unless ``pad``, which
  pads the shorter stems with silence at the end (logged and reported);
- mono stems next to stereo ones are centred: the one channel is copied to both (0 dB pan law);
- a stem that cannot be read is refused, and with it the set (the song is not complete
  without it): the error names the file; every bad file is listed;
- silent stems are allowed and stay silent; a set whose stems are all silent, or sum to
  silence, is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.analyze import OUT_OF_PHASE_CORRELATION, analyze
from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.audio import READ_EXTENSIONS, Audio
from mixbridge.analysis.errors import InputNotFoundError, InvalidAudioError, MixbridgeError, OutputError, UsageError
from mixbridge.analysis.features import Features
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_matrix, fft_size
from mixbridge.analysis.truepeak import amplitude_to_db, true_peak_dbtp
from mixbridge.assistant.judge import Goal, JudgeOptions, Move
from mixbridge.assistant.master import DC_HIGHPASS_DBFS, DEFAULT_ENGINE, MIN_MASTER_S, judgment_dict, suggest_settings
from mixbridge.assistant.profile_choice import with_profile_for
from mixbridge.assistant.targets import Target
from mixbridge.effects.bus import render_bus
from mixbridge.effects.finalize import MAX_LIMITING_DB, FinalizeSpec, finalize
from mixbridge.effects.limiter import TruePeakLimiter
from mixbridge.effects.render import build_board
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, PARAM_INDEX, STAGE_LABELS, STAGES, ChainSettings, format_value

log = logging.getLogger(__name__)

REPORT_VERSION = 1
REPORT_NAME = "stems-report.json"
MIX_MASTER_NAME = "mix-master"
OUTPUT_SUFFIX = ".wav"
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
# Shares of the bus EQ moves:
EQ_MOVE_MIN_DB = 0.5  # bus EQ bands smaller than this are not worth a per-stem suggestion
DOMINANT_SHARE = 0.5  # a stem with at least this share of a move's energy is named for it


@dataclass(frozen=True)
class StemOptions:
    """How ``master_stems`` works; the CLI's defaults come from here."""

    engine: str = DEFAULT_ENGINE
    refine: bool = True
    bit_depth: str = "24"
    max_limiting_db: float = MAX_LIMITING_DB
    pad: bool = False  # pad shorter stems with silence at the end instead of refusing the set
    corrections: bool = True  # apply the per-stem high-pass where it is measured to be needed
    overwrite: bool = False
    chain: ChainSettings | None = None  # bus settings to apply instead of suggesting them
    judgment: JudgeOptions = field(default_factory=JudgeOptions)  # amounts and limits of the bus judgment


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
        name = max(self.shares, key=self.shares.get) if self.shares else None
        return name if name is not None and self.shares[name] >= DOMINANT_SHARE else None


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
            "finalizer": {"gain_db": round(self.gain_db, 3), "limiting_db": round(self.limiting_db, 3)},
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


# ---- finding and loading the stems ---------------------------------------------------------
def find_stems(song_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The stem files of ``song_dir`` (sorted), after checking the folders and the names.

    Raises
    ------
    InputNotFoundError
        ``song_dir`` does not exist.
    UsageError
        ``song_dir`` is a file or holds no audio; two stems would write one output.
    OutputError
        ``out_dir`` is ``song_dir``.
    """
    song_dir, out_dir = Path(song_dir), Path(out_dir)
    if not song_dir.exists():
        raise InputNotFoundError("no such folder", song_dir)
    if not song_dir.is_dir():
        raise UsageError("is a file; `stems` takes the folder holding one song's stems", song_dir)
    if out_dir.resolve() == song_dir.resolve():
        raise OutputError("is the stems folder itself; choose another output folder", out_dir)
    paths = []
    for path in sorted(song_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() not in READ_EXTENSIONS:
            continue
        if path.name.startswith("."):
            log.info("%s: hidden file skipped", path)
            continue
        paths.append(path)
    if not paths:
        raise UsageError("holds no audio files (" + ", ".join(e.lstrip(".") for e in READ_EXTENSIONS)
                         + "); put one song's stems directly in it", song_dir)
    seen: dict[str, Path] = {}
    for path in paths:
        key = path.stem.lower()
        if key == MIX_MASTER_NAME:
            raise UsageError(f"a stem may not be called {MIX_MASTER_NAME!r} (that is the mixed master's "
                             "name); rename it", path)
        if key in seen:
            raise UsageError(f"{seen[key].name} and {path.name} would both write {path.stem}{OUTPUT_SUFFIX}; "
                             "rename one", song_dir)
        seen[key] = path
    return paths


def _refuse_set(errors: list[MixbridgeError], song_dir: Path) -> None:
    """Raise the first error (its class and file), naming every bad stem, if there are any."""
    if not errors:
        return
    first = errors[0]
    others = "; ".join(str(e) for e in errors[1:])
    message = f"{first.message} — the stem set of {song_dir} cannot be mastered without this stem"
    raise type(first)(message + (f" (also: {others})" if others else ""), first.path)


def load_stems(paths: Sequence[Path], song_dir: Path, pad: bool = False) -> tuple[list[Audio], list[int], list[int]]:
    """Load a stem set under the input policy of the module docstring.

    Returns
    -------
    (stems, channels_in, padded_frames)
        The stems at one rate, length and channel count (mono centred when any stem is
        stereo), each stem's channel count as read, and how many frames of silence padded it.
    """
    errors: list[MixbridgeError] = []
    headers = []
    for path in paths:
        try:
            headers.append(audio_io.info(path))
        except MixbridgeError as exc:
            errors.append(exc)
    _refuse_set(errors, song_dir)
    rates = sorted({h.sample_rate for h in headers})
    if len(rates) > 1:
        listing = ", ".join(f"{Path(h.path).name} {h.sample_rate} Hz" for h in headers)
        raise InvalidAudioError(f"the stems have different sample rates ({listing}); export them at one "
                                "rate (Mixbridge never resamples)", song_dir)
    frames = max(h.frames for h in headers)
    if not pad and any(h.frames != frames for h in headers):
        listing = ", ".join(f"{Path(h.path).name} {h.frames} frames ({h.duration_s:.3f} s)" for h in headers)
        raise InvalidAudioError(f"the stems have different lengths ({listing}); export them all from the same "
                                "start to the same end, or pass --pad to pad the shorter ones with silence "
                                "at the end", song_dir)
    loaded = []
    for path in paths:
        try:
            loaded.append(audio_io.load(path))
        except MixbridgeError as exc:
            errors.append(exc)
    _refuse_set(errors, song_dir)
    channels = max(a.channels for a in loaded)
    stems, padded = [], []
    for audio in loaded:
        missing = frames - audio.frames
        samples = audio.samples
        if missing:
            log.info("%s: padded with %d frames (%.3f s) of silence at the end", audio.source, missing,
                     missing / audio.sample_rate)
            samples = np.concatenate((samples, np.zeros((audio.channels, missing), np.float32)), axis=1)
        stem = Audio(samples, audio.sample_rate, audio.source)
        stems.append(stem.as_stereo() if channels == 2 else stem)  # as_stereo logs the centring
        padded.append(missing)
    return stems, [a.channels for a in loaded], padded


# ---- per-stem measurements and corrections ------------------------------------------------
def low_spectrum(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Long-term power spectrum of the low end, channels summed, with ~1 Hz resolution.

    Hann-windowed frames at 50 % overlap (Welch), *not* detrended, so DC counts as sub-sonic
    power. Only bins up to LOW_SPECTRUM_MAX_HZ are kept, plus the total over all bins.

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


def _suggestions(name: str, features: Features, silent: bool, correction: StemCorrection,
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


# ---- the pipeline --------------------------------------------------------------------------
def master_stems(song_dir: str | Path, out_dir: str | Path, target: Target, options: StemOptions = StemOptions(),
                 progress: Callable[[str], None] | None = None) -> StemsReport:
    """Master one song's stems with one shared bus decision; see the module docstring.

    Writes ``out_dir/<stem>.wav`` for every stem, ``out_dir/mix-master.wav`` and
    ``out_dir/stems-report.json``.
    """
    song_dir, out_dir = Path(song_dir), Path(out_dir)
    step = progress or (lambda message: None)
    paths = find_stems(song_dir, out_dir)
    names = [p.stem for p in paths]
    outputs = [out_dir / f"{n}{OUTPUT_SUFFIX}" for n in names]
    master_path, report_path = out_dir / f"{MIX_MASTER_NAME}{OUTPUT_SUFFIX}", out_dir / REPORT_NAME
    existing = [p.name for p in (*outputs, master_path, report_path) if p.exists()]
    if existing and not options.overwrite:
        raise OutputError(f"already holds {', '.join(existing)}; pass --overwrite to replace them", out_dir)
    step(f"loading {len(paths)} stems")
    stems, channels_in, padded = load_stems(paths, song_dir, options.pad)
    silent = [not np.any(s.samples) for s in stems]
    if all(silent):
        raise InvalidAudioError(f"all {len(stems)} stems are silent; nothing to master", song_dir)
    sr = stems[0].sample_rate
    _prepare_output(out_dir)

    step("analysing the stems")
    features = [analyze(s) for s in stems]
    corrections = [measure_correction(s, f, options.corrections) for s, f in zip(stems, features)]
    for name, c in zip(names, corrections):
        if c.highpass_hz is not None:
            log.info("%s: %s", name, c.describe())
    stems = [apply_correction(s, c) for s, c in zip(stems, corrections)]
    mix = Audio(np.sum([s.samples for s in stems], axis=0, dtype=np.float32), sr, f"{song_dir} (sum of stems)")
    if mix.duration_s < MIN_MASTER_S:
        raise InvalidAudioError(f"the stems are {mix.duration_s:.3f} s long; mastering needs at least "
                         f"{MIN_MASTER_S:.0f} s", song_dir)
    step("analysing the mix")
    mix_before = analyze(mix)
    if not math.isfinite(mix_before.integrated_lufs):
        raise InvalidAudioError("the stems sum to silence (no measurable loudness); nothing to master", song_dir)
    step("choosing the bus settings on the mix")
    target = with_profile_for(target, mix_before)
    decision = None if options.chain else suggest_settings(mix, mix_before, target, options.engine, options.refine,
                                                           options.judgment, options.max_limiting_db)
    settings = options.chain or decision.settings
    moves = eq_moves(settings, dict(zip(names, features)), sr)

    step("rendering the bus on the mix and on every stem")
    bus = render_bus([s.samples for s in stems], sr, settings)
    del stems
    log.info("bus: sum of processed stems vs the mix rendered alone: %.1f dB", bus.direct_deviation_db)
    if not all(np.isfinite(x).all() for x in (bus.mix, *bus.parts)):
        raise OutputError("the effect chain produced NaN/Inf samples", song_dir)
    step("finalizing the mix")
    result = finalize(bus.mix, sr, FinalizeSpec(target.lufs, target.ceiling_dbtp, options.max_limiting_db),
                      str(song_dir))
    warnings = list(result.warnings)

    step("writing")
    master_written = audio_io.quantize(result.samples, options.bit_depth, dither=True, seed=0)
    audio_io.save(Audio(master_written, sr, str(master_path)), master_path, options.bit_depth, dither=False)
    stem_sum = np.zeros(master_written.shape)
    results = []
    for i, (name, part) in enumerate(zip(names, bus.parts)):
        out = TruePeakLimiter.apply(part, result.block_gain_db, result.block, result.gain_db)
        if options.bit_depth != "32f" and np.max(np.abs(out)) >= 1.0:
            warnings.append(f"stem {name} peaks at {amplitude_to_db(float(np.max(np.abs(out)))):+.2f} dBFS after "
                            f"the shared bus gain: clipped at {options.bit_depth} bits, so the stems no longer "
                            "sum to the master; use --bit-depth 32f")
        # independent dither per stem (seed), none on a silent stem so it stays exactly silent
        written = audio_io.quantize(out, options.bit_depth, dither=not silent[i], seed=i + 1)
        audio_io.save(Audio(written, sr, str(outputs[i])), outputs[i], options.bit_depth, dither=False)
        stem_sum += written
        f = features[i]
        results.append(StemResult(
            name=name, input_path=str(paths[i]), output_path=str(outputs[i]), channels_in=channels_in[i],
            centred=channels_in[i] < written.shape[0], padded_frames=padded[i], silent=silent[i],
            input_lufs=f.integrated_lufs, output_lufs=measure_loudness(written, sr).integrated_lufs,
            input_true_peak_dbtp=f.true_peak_dbtp, output_true_peak_dbtp=true_peak_dbtp(written, sr),
            correction=corrections[i], suggestions=_suggestions(name, f, silent[i], corrections[i], moves)))
    residual = measure_residual(stem_sum, master_written, options.bit_depth, sum(not s for s in silent))
    del stem_sum
    mix_after = analyze(Audio(master_written, sr, str(master_path)))
    if mix_after.true_peak_dbtp > target.ceiling_dbtp:
        warnings.append(f"mix master true peak {mix_after.true_peak_dbtp:.2f} dBTP is over the "
                        f"{target.ceiling_dbtp:.1f} dBTP ceiling")
    report = StemsReport(
        input_dir=str(song_dir), output_dir=str(out_dir), target=target,
        engine="chain-file" if options.chain else options.engine, sample_rate=sr,
        frames=mix.frames, bit_depth=options.bit_depth, stems=tuple(results), settings=settings,
        eq_moves=moves, compressor_min_gain_db=bus.compressor_min_gain_db, gain_db=result.gain_db,
        limiting_db=result.limiting_db, mix_master_path=str(master_path), mix_input=mix_before,
        mix_output=mix_after, residual=residual, direct_deviation_db=bus.direct_deviation_db,
        warnings=tuple(warnings) + tuple(mix_before.notes), goal=decision.goal if decision else None,
        moves=decision.moves if decision else (), notes=decision.notes if decision else ())
    write_text(report_path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    log.info("stems residual: %.1f dB RMS below the master (%s)", residual.rms_below_master_db, options.bit_depth)
    return report


def _prepare_output(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and check that it can be written, before any long work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})", out_dir) from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError("the output folder is not writable", out_dir)


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
