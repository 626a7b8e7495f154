"""The analyzer: one streaming pass over the audio -> :class:`~analysis.features.Features`.

``analyze(audio)`` measures an :class:`~analysis.audio.Audio` in memory; ``analyze_file(path)``
streams a file in blocks so memory stays bounded for hour-long material. Both give the same
numbers: every meter is block-size independent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.atomic import cache_root, write_text
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.blocks import Background, chunks, file_threads
from mixbridge.analysis.dynamics import describe_dynamics
from mixbridge.analysis.errors import MixbridgeError
from mixbridge.analysis.features import FEATURE_VERSION, Features
from mixbridge.analysis.loudness import (
    ABSOLUTE_GATE_LUFS,
    LRA_RELATIVE_GATE_LU,
    STEP_S,
    LoudnessMeter,
)
from mixbridge.analysis.spectrum import SpectrumAnalyzer, SpectrumResult
from mixbridge.analysis.truepeak import TruePeakMeter, amplitude_to_db

log = logging.getLogger(__name__)

CLIP_LEVEL = 0.9999  # |sample| at or above this (-0.0009 dBFS) counts as clipped
PART_FRAMES = 1 << 18  # the meters' temporaries are a few float64 copies of this many frames
MIN_LOUDNESS_S = 0.4  # shorter than one gating block: loudness is undefined
OUT_OF_PHASE_CORRELATION = -0.3  # below this, a note warns about mono compatibility
OUT_OF_PHASE_NOTE = "channels largely out of phase"  # that note's start
DC_NOTE_DBFS = -45.0  # a DC offset above this (0.56 % of full scale) is noted

# Bumped when a measurement changes while the fields stay (no new FEATURE_VERSION, so the shipped
# model still loads): 2 = width over the bands, without DC and subsonic content.
MEASUREMENT_REVISION = 2

def analyze(audio: Audio) -> Features:
    """Measure ``audio``; see :class:`Features` for what is measured."""
    return analyze_blocks(audio.blocks(), audio.sample_rate, audio.channels, audio.source)


@dataclass(frozen=True)
class SpectralSummary:
    """What the settings' closed loops read of a render: the mid band spectrum, the width and
    two dynamics descriptors, with the values :func:`analyze` gives (the same frames of the
    spectrum analyzer), measured without the loudness and true-peak meters."""

    mid_band_db: tuple[float, ...]
    width: float
    frame_crest_db: float
    tail_level_db: float


def analyze_spectral(audio: Audio) -> SpectralSummary:
    """:class:`SpectralSummary` of ``audio``: about 40 % of :func:`analyze`'s work."""
    spec = SpectrumAnalyzer(audio.sample_rate, audio.channels)
    for block in audio.blocks():
        spec.process(block)
    sr = spec.result()
    dyn = describe_dynamics(sr.frame_band_db, sr.frame_peak, sr.frame_mean_square, sr.hop_s)
    return SpectralSummary(tuple(float(v) for v in sr.mid_band_db), sr.width, dyn.frame_crest_db, dyn.tail_level_db)


def analyze_file(path: str | Path, *, threads: int = 2, keep: list[np.ndarray] | None = None) -> Features:
    """Measure a file by streaming it (bounded memory, any length). ``threads``: 2 runs the level
    meters in a second thread beside the spectrum (a 3-minute track: 0.5 instead of 0.65 s);
    1 keeps to the caller's thread, for an analysis that already runs beside another (two
    analyses split four ways cost 15 % more CPU and gain nothing on two cores). ``keep``: a
    list that receives the decoded blocks as read, for a caller that needs the samples again,
    so that the file is decoded once (a master). The blocks are a master's stream blocks
    (``audio.DITHER_BLOCK_FRAMES``) whether kept or not, so the Features are the same to the
    last bit either way."""
    meta = audio_io.info(path)
    blocks = audio_io.iter_blocks(path, audio_io.DITHER_BLOCK_FRAMES)
    if keep is not None:
        blocks = _kept(blocks, keep)
    features = analyze_blocks(blocks, meta.sample_rate, meta.channels, str(path), threads)
    if features.clipped_samples:  # about a user's file: worth a warning (rendered arrays: a note only)
        log.warning("%s: %d samples at or above full scale (clipped)", path, features.clipped_samples)
    return features


def _kept(blocks: Iterable[np.ndarray], keep: list[np.ndarray]) -> Iterator[np.ndarray]:
    for block in blocks:
        keep.append(block)
        yield block


def analyze_file_cached(path: str | Path, cache_dir: Path | None = None, *, threads: int = 2) -> Features:
    """:func:`analyze_file`, remembered on disk for files analysed before (e.g. references).

    The key is the file's absolute path, size and modification time plus FEATURE_VERSION and
    MEASUREMENT_REVISION, so an edited file or a new analyzer is measured again. A cache that cannot be read or written
    is ignored (logged), never fatal.
    """
    path = Path(path)
    try:
        entry = _cache_entry(path, cache_dir)
        if entry.is_file():
            return Features.from_dict(json.loads(entry.read_text()))
    except (OSError, ValueError, KeyError, MixbridgeError) as exc:
        log.info("feature cache not used for %s (%s)", path, exc)
        entry = None
    features = analyze_file(path, threads=threads)
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            write_text(entry, features.to_json())
        except (OSError, MixbridgeError) as exc:
            log.info("feature cache not written for %s (%s)", path, exc)
    return features


def _cache_entry(path: Path, cache_dir: Path | None) -> Path:
    """Where :func:`analyze_file_cached` keeps ``path``'s features (raises OSError if it cannot be read)."""
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{FEATURE_VERSION}|{MEASUREMENT_REVISION}".encode()).hexdigest()
    return (cache_dir or cache_root()) / "features" / f"{key}.json"


def is_cached(path: str | Path, cache_dir: Path | None = None) -> bool:
    """Whether :func:`analyze_file_cached` has ``path``'s features (unchanged since)."""
    try:
        return _cache_entry(Path(path), cache_dir).is_file()
    except (OSError, MixbridgeError):
        return False


def analyze_blocks(blocks: Iterable[np.ndarray], sample_rate: int, channels: int, source: str,
                    threads: int = 2) -> Features:
    """The analyzer over consecutive ``(channels, n)`` ``blocks`` (e.g. a file's, held from an
    earlier read); with 2 ``threads``, its level meters in a second thread, beside the spectrum."""
    analyzer = StreamAnalyzer(sample_rate, channels, source)
    if min(threads, file_threads()) < 2:
        for block in blocks:
            analyzer.process(block)
        return analyzer.result()
    with Background(analyzer.levels, depth=2) as levels:
        for block in blocks:
            levels.put(block)
            analyzer.spectrum(block)
    return analyzer.result()


class StreamAnalyzer:
    """The analyzer fed block by block, for audio that is produced rather than read: a master's
    write pass measures what it writes with it, so the output is never read back and measured
    again. Blocks of any size give the same :class:`Features` (every meter is block-size
    independent); :meth:`result` is called once, after the last block.
    """

    def __init__(self, sample_rate: int, channels: int, source: str):
        self.sample_rate, self.channels, self.source = int(sample_rate), int(channels), source
        self._loud = LoudnessMeter(sample_rate, channels)
        self._peak = TruePeakMeter(sample_rate, channels)
        self._spec = SpectrumAnalyzer(sample_rate, channels)
        self._frames = 0
        self._clipped = 0

    def process(self, block: np.ndarray) -> None:
        """Consume the next ``(channels, n)`` block: :meth:`levels` and :meth:`spectrum`."""
        self.levels(block)
        self.spectrum(block)

    def levels(self, block: np.ndarray) -> None:
        """One half of :meth:`process`: loudness, true peak, clipping and the length. The two
        halves keep separate state, so each may run in its own thread (a block's halves in any
        order, the blocks in order within each half)."""
        for part in chunks(block, PART_FRAMES):  # bounded temporaries
            self._loud.process(part)
            self._peak.process(part)
            self._frames += part.shape[1]
            self._clipped += int(np.count_nonzero(part >= CLIP_LEVEL)) + int(np.count_nonzero(part <= -CLIP_LEVEL))

    def spectrum(self, block: np.ndarray) -> None:
        """The other half of :meth:`process`: the band spectrum, stereo and dynamics frames."""
        for part in chunks(block, PART_FRAMES):
            self._spec.process(part)

    def result(self) -> Features:
        return _features(self._loud, self._peak, self._spec, self._frames, self._clipped, self.sample_rate,
                         self.channels, self.source)


def _features(loud: LoudnessMeter, peak: TruePeakMeter, spec: SpectrumAnalyzer, frames: int, clipped: int,
              sample_rate: int, channels: int, source: str) -> Features:
    peak.finish()
    lr = loud.result()
    sr = spec.result()

    duration_s = frames / sample_rate
    sample_peak_dbfs = amplitude_to_db(float(peak.sample_peak.max()))
    # Every sample lies in exactly one hop of the spectrum's frame series.
    total_square = float(np.sum(sr.frame_mean_square)) * round(sr.hop_s * sample_rate) * channels
    rms = math.sqrt(total_square / max(frames * channels, 1))
    rms_dbfs = amplitude_to_db(rms)
    dc_dbfs = amplitude_to_db(float(np.max(np.abs(sr.sample_sum))) / max(frames, 1))
    notes = _notes(rms, lr.integrated_lufs, duration_s, clipped, channels, sr.correlation, dc_dbfs)
    spread = _short_term_spread(lr.short_term_lufs, lr.series_times_s)

    true_peak = peak.true_peak_dbtp
    return Features(
        source=source,
        sample_rate=sample_rate,
        channels=channels,
        duration_s=duration_s,
        integrated_lufs=lr.integrated_lufs,
        max_momentary_lufs=lr.max_momentary_lufs,
        max_short_term_lufs=lr.max_short_term_lufs,
        loudness_range_lu=lr.loudness_range_lu if duration_s >= 3.0 else -math.inf,
        short_term_spread_lu=spread,
        sample_peak_dbfs=sample_peak_dbfs,
        true_peak_dbtp=true_peak,
        rms_dbfs=rms_dbfs,
        crest_factor_db=_difference(sample_peak_dbfs, rms_dbfs),
        plr_db=_difference(true_peak, lr.integrated_lufs),
        psr_db=_difference(true_peak, lr.max_short_term_lufs),
        clipped_samples=clipped,
        dc_offset_dbfs=dc_dbfs,
        short_term_lufs=tuple(float(v) for v in lr.short_term_lufs),
        series_hop_s=STEP_S,
        notes=tuple(notes),
        **_spectral_fields(sr),
    )


def _spectral_fields(sr: SpectrumResult) -> dict:
    """The Features the spectrum alone gives: bands, stereo image and the dynamics descriptors
    of its frames (the rest comes from the level meters, or, for the RMS and the DC offset, from
    what every channel's samples sum to)."""
    dyn = describe_dynamics(sr.frame_band_db, sr.frame_peak, sr.frame_mean_square, sr.hop_s)
    return {"mid_band_db": tuple(float(v) for v in sr.mid_band_db),
            "side_band_db": tuple(float(v) for v in sr.side_band_db),
            "tilt_db_per_octave": sr.tilt_db_per_octave, "centroid_hz": sr.centroid_hz,
            "correlation": sr.correlation, "width": sr.width,
            "correlation_band": tuple(float(v) for v in sr.correlation_band),
            "width_band": tuple(float(v) for v in sr.width_band),
            "frame_crest_db": dyn.frame_crest_db, "transient_density_per_s": dyn.transient_density_per_s,
            "onset_strength_db": dyn.onset_strength_db, "decay_rate_db_per_s": dyn.decay_rate_db_per_s,
            "tail_level_db": dyn.tail_level_db}


def as_heard_inverted(features: Features, blocks: Iterable[np.ndarray]) -> Features:
    """``features``, the analysis of a stereo signal, as heard with its right channel's polarity
    inverted; ``blocks``: that signal's ``(channels, n)`` blocks, as analysed. Only the spectrum is
    measured again: the loudness, the peaks, the clipping, the RMS and the DC offset are the same to
    the last bit (K-weighting and the true-peak interpolator are linear, and negating a channel
    negates every value they compute; the level meters square or take magnitudes)."""
    spec = SpectrumAnalyzer(features.sample_rate, features.channels)
    for block in blocks:
        for part in chunks(audio_io.invert_right(block), PART_FRAMES):  # as StreamAnalyzer.spectrum
            spec.process(part)
    sr = spec.result()
    notes = _notes(10.0 ** (features.rms_dbfs / 20.0), features.integrated_lufs, features.duration_s,
                   features.clipped_samples, features.channels, sr.correlation, features.dc_offset_dbfs)
    return replace(features, notes=tuple(notes), **_spectral_fields(sr))


def _notes(rms: float, integrated_lufs: float, duration_s: float, clipped: int, channels: int,
           correlation: float, dc_dbfs: float) -> list[str]:
    """What a reader of the figures must know: undefined measures, clipping, phase, DC."""
    notes = []
    if rms == 0.0:
        notes.append("silent: loudness, peaks and crest factor are undefined")
    elif not math.isfinite(integrated_lufs):
        if duration_s < MIN_LOUDNESS_S:
            notes.append(f"shorter than {MIN_LOUDNESS_S} s: integrated loudness is undefined (BS.1770)")
        else:
            notes.append(f"below the {ABSOLUTE_GATE_LUFS:.0f} LUFS gate throughout: loudness undefined")
    if duration_s < 3.0:
        notes.append("shorter than 3 s: short-term loudness and loudness range are undefined")
    if clipped:
        notes.append(f"{clipped} samples at or above full scale (clipped)")
    if channels == 2 and correlation < OUT_OF_PHASE_CORRELATION:
        notes.append(f"{OUT_OF_PHASE_NOTE} (correlation {correlation:.2f}): they cancel when summed to mono")
    if dc_dbfs > DC_NOTE_DBFS:
        notes.append(f"DC offset of {dc_dbfs:.1f} dBFS")
    return notes


def _short_term_spread(short_term_lufs: np.ndarray, times_s: np.ndarray) -> float:
    """Standard deviation of the short-term loudness over the gated blocks (as LRA gates them)."""
    st = short_term_lufs[times_s >= 3.0]
    st = st[st > ABSOLUTE_GATE_LUFS]
    if st.size:
        mean_power_lufs = 10 * np.log10(np.mean(10 ** (st / 10)))
        st = st[st > mean_power_lufs + LRA_RELATIVE_GATE_LU]
    return float(np.std(st)) if st.size > 1 else 0.0


def _difference(a: float, b: float) -> float:
    """a - b, or -inf when either is undefined."""
    return a - b if math.isfinite(a) and math.isfinite(b) else -math.inf
