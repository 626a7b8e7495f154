"""EBU 'minimum requirements' test signals, synthesised from the standards' own text.

Sources (every case below cites one of these):

* ``TECH3341`` -- EBU Tech 3341 "Loudness Metering: 'EBU Mode' metering to supplement
  EBU R 128 loudness normalization", V4 (November 2023), section 2.9, "Table 1: Minimum
  requirements test signals", pp. 8-9.  Cases 9-23 were added in V3 (January 2016); V4 is,
  per its document history, "editorial and formatting changes" only.
* ``TECH3342`` -- EBU Tech 3342 "Loudness Range: a measure to supplement EBU R 128 loudness
  normalization", V4 (November 2023), section 4, "Table 1: Minimum requirements test
  signals", p. 6.

The text of both was read from the PDFs stored in the public repository
github.com/melchiorrecaruso/audiometer (``references/tech3341.pdf``,
``references/tech3342.pdf``).  The same repository stores the EBU loudness test set v05
(48 kHz WAV files); they were used only to check that the synthesis below matches the
EBU's own rendering (see the notes on cases 15-23), never as a definition, and are not
part of this repository.

Conventions
-----------
* "dBFS" in the tables is the *per-channel peak level* of a sine (Tech 3341 case 1), so a
  tone at L dBFS has amplitude ``10 ** (L / 20)``.
* "Tones similar to #1" are 1000 Hz sines applied in phase to both channels.  A sequence of
  tones is rendered as one phase-continuous 1 kHz sine (phase 0 at the first sample) times a
  piecewise-constant amplitude; segment boundaries are at ``round(t * fs)`` of the
  cumulative times, which is exact at 48 kHz and 44.1 kHz for every duration used here.
* Channel weights per ITU-R BS.1770: L, R, C = 1.0; Ls, Rs = 1.41.
* Every generator takes the sample rate; the loudness cases are defined in seconds and
  dBFS, so they are valid at any rate.  The true-peak cases 15-23 are defined relative to the
  sample rate ("frequency fs/4 ... denotes 12 kHz for a sample-rate of 48 kHz, etc."), so at
  44.1 kHz fs/4 is 11025 Hz, fs/6 is 7350 Hz, fs/8 is 5512.5 Hz and the 4*fs synthesis rate
  of cases 20-23 is 176.4 kHz.  The EBU distributes its renderings at 48 kHz only.

Tolerances (both tables): M, S, I +-0.1 LU; true peak +0.2/-0.4 dB; LRA +-1 LU.

Not included (their definition exists only as a recording, so nothing can be synthesised):
Tech 3341 cases 7 and 8 (= Tech 3342 cases 5 and 6), "authentic programme" segments; they
are listed in ``FILE_ONLY_CASES`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import signal as _signal

TECH3341 = "EBU Tech 3341 V4 (2023) sec. 2.9 Table 1"
TECH3342 = "EBU Tech 3342 V4 (2023) sec. 4 Table 1"

LOUDNESS_TOL_LU = 0.1  # Tech 3341 Table 1: M, S, I
TRUE_PEAK_TOL_UP_DB = 0.2  # Tech 3341 Table 1, cases 15-23: +0.2 ...
TRUE_PEAK_TOL_DOWN_DB = 0.4  # ... / -0.4 dB
LRA_TOL_LU = 1.0  # Tech 3342 Table 1

STEREO = (1.0, 1.0)
FIVE_CHANNEL = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs (BS.1770 G_i)

Signal = tuple[np.ndarray, tuple[float, ...]]


@dataclass(frozen=True)
class EbuCase:
    """One test case and the response the standard expects (``None`` = not specified).

    ``successive_max_*`` hold ``(reading_time_s, expected)`` pairs: the maximum-hold reading
    a live meter shows at ``reading_time_s`` (Tech 3341 cases 11 and 14).
    """

    id: str
    description: str
    source: str
    make: Callable[[int], Signal] = field(repr=False)
    integrated_lufs: float | None = None
    momentary_lufs: float | None = None  # constant value of M for window ends >= momentary_from_s
    momentary_from_s: float = 0.4
    short_term_lufs: float | None = None  # constant value of S for window ends >= short_term_from_s
    short_term_from_s: float = 3.0
    max_momentary_lufs: float | None = None
    max_short_term_lufs: float | None = None
    successive_max_momentary: tuple[tuple[float, float], ...] = ()
    successive_max_short_term: tuple[tuple[float, float], ...] = ()
    true_peak_dbtp: float | None = None
    loudness_range_lu: float | None = None


@dataclass(frozen=True)
class FileOnlyCase:
    id: str
    description: str
    source: str
    reason: str


# --------------------------------------------------------------------------------------
# building blocks


def _amp(dbfs: float | None) -> float:
    return 0.0 if dbfs is None else 10.0 ** (dbfs / 20.0)


def tone_sequence(sample_rate: int, segments: list[tuple[float, float | None]],
                  frequency: float = 1000.0) -> np.ndarray:
    """Mono 1 kHz tone sequence: ``segments`` = [(duration_s, level_dbfs or None=silence)]."""
    ends = np.rint(np.cumsum([d for d, _ in segments]) * sample_rate).astype(np.int64)
    starts = np.concatenate(([0], ends[:-1]))
    envelope = np.zeros(int(ends[-1]))
    for (_, level), a, b in zip(segments, starts, ends):
        envelope[a:b] = _amp(level)
    n = np.arange(envelope.size)
    return envelope * np.sin(2.0 * np.pi * frequency * n / sample_rate)


def _stereo(mono: np.ndarray) -> Signal:
    return np.vstack((mono, mono)), STEREO


def _stereo_tones(segments: list[tuple[float, float | None]]) -> Callable[[int], Signal]:
    return lambda fs: _stereo(tone_sequence(fs, segments))


def _linear_fade(x: np.ndarray, sample_rate: int, fade_s: float = 0.010) -> np.ndarray:
    """Linear fade-in and fade-out (the 'taper' of cases 15 and 20; shape not specified)."""
    n = int(round(fade_s * sample_rate))
    ramp = np.arange(n) / n
    y = x.copy()
    y[..., :n] *= ramp
    y[..., -n:] *= ramp[::-1]
    return y


# --------------------------------------------------------------------------------------
# Tech 3341 cases 1-6: integrated loudness (and M, S for 1 and 2)


def _case_6(fs: int) -> Signal:
    # Tech 3341 case 6: 5.0 channels, 1 kHz, 20 s; L, R -28.0; C -24.0; Ls, Rs -30.0 dBFS.
    levels = (-28.0, -28.0, -24.0, -30.0, -30.0)  # L, R, C, Ls, Rs
    unit = tone_sequence(fs, [(20.0, 0.0)])
    return np.vstack([_amp(level) * unit for level in levels]), FIVE_CHANNEL


# --------------------------------------------------------------------------------------
# Tech 3341 cases 15-23: true peak


def _sine_fraction(fs: int, divisor: int, amplitude: float, phase_deg: float,
                   duration_s: float = 3.0) -> Signal:
    """Stereo sine at fs/divisor, ``amplitude`` FFS, starting phase in degrees, 10 ms taper.

    Checked against the EBU's 48 kHz renderings (test set v05): sin() convention (e.g. case 16
    gives sample peaks of 0.354 = -9.0 dBFS, case 17 0.433 = -7.25 dBFS, case 18 0.462 =
    -6.7 dBFS, exactly as in seq-3341-16/17/18).  The EBU files use 0.501 (-6.0 dB) for
    "0.50 FFS" and a 100 ms linear taper; the text's 0.50 FFS and 10 ms taper are used here
    (the 0.02 dB difference is far inside the tolerance).
    """
    n = np.arange(int(round(duration_s * fs)))
    x = amplitude * np.sin(2.0 * np.pi * n / divisor + np.deg2rad(phase_deg))
    x = _linear_fade(x, fs)
    return np.vstack((x, x)), STEREO


_OVERSAMPLE = 4  # cases 20-23 are "synthesized at 4*fs"


def _anti_alias_fir(numtaps: int = 255, beta: float = 8.0) -> np.ndarray:
    """Linear-phase low-pass at fs/2 for the 4*fs -> fs decimation of cases 20-23.

    The standard only says "lowpass (anti-aliasing) filtered"; a Kaiser-windowed sinc with
    its cutoff at the target Nyquist frequency is used.  With it the synthesis reproduces the
    EBU's seq-3341-20-24bit.wav sample for sample to within 0.0015 around the burst, and
    libebur128's true peak of cases 20-23 to within 0.001 dB of the EBU files
    (-0.13 / -0.09 / -0.18 / -0.09 dBTP).  In units of the 4*fs rate the cutoff is 1/8 of it.
    """
    return _signal.firwin(numtaps, 1.0 / _OVERSAMPLE, window=("kaiser", beta), fs=2.0)


def _burst_case(offset: int) -> Callable[[int], Signal]:
    """Tech 3341 cases 20-23.

    "Stereo sine wave with frequency fs/6 Hz, amplitude 0.50 FFS, containing a single period
    of a sine wave with frequency fs/4, amplitude 1.00; the signal being continuous in phase
    at both sides of the single period.  The signal is synthesized at 4*fs (for example,
    192 kHz), and then lowpass (anti-aliasing) filtered and downsampled to fs with a
    <offset> samples offset.  ...  the tone should be tapered with a short fade-in and
    fade-out."  Cases 20, 21, 22, 23 use offsets 0, 1, 2, 3 (at the 4*fs rate).

    At 4*fs, fs/6 is 24 samples per period and fs/4 is 16, for any fs.  The phase runs
    continuously: the fs/6 tone reaches phase 0 (rising zero crossing), one 16-sample period
    of the fs/4 sine at amplitude 1.0 follows (its crest lands on a multiple of 4, i.e. on an
    output sample for offset 0), then the fs/6 tone resumes from phase 0.  Both channels
    are identical.
    """

    def make(fs: int) -> Signal:
        duration_s = 3.0
        n4 = int(round(duration_s * fs)) * _OVERSAMPLE
        tone_period, burst_period = 6 * _OVERSAMPLE, 4 * _OVERSAMPLE
        b0 = (n4 // 2) // tone_period * tone_period  # burst start: tone at phase 0
        k = np.arange(n4)
        cycles = np.where(
            k < b0,
            k / tone_period,
            np.where(k < b0 + burst_period,
                     b0 / tone_period + (k - b0) / burst_period,
                     b0 / tone_period + 1.0 + (k - b0 - burst_period) / tone_period),
        )
        amplitude = np.where((k >= b0) & (k < b0 + burst_period), 1.00, 0.50)
        x4 = amplitude * np.sin(2.0 * np.pi * cycles)
        y = np.convolve(x4, _anti_alias_fir(), mode="same")[offset::_OVERSAMPLE]
        y = _linear_fade(y, fs)
        return np.vstack((y, y)), STEREO

    return make


# --------------------------------------------------------------------------------------
# the catalogue


def _cases() -> list[EbuCase]:
    c: list[EbuCase] = []
    src = TECH3341

    c.append(EbuCase(
        "3341-1",
        "Stereo sine wave, 1000 Hz, -23.0 dBFS (per-channel peak level); signal applied in "
        "phase to both channels simultaneous; 20 s duration. M, S, I = -23.0 +-0.1 LUFS",
        src, _stereo_tones([(20.0, -23.0)]),
        integrated_lufs=-23.0, momentary_lufs=-23.0, short_term_lufs=-23.0,
        # M and S are specified for the whole signal, so their maxima are -23.0 too.
        max_momentary_lufs=-23.0, max_short_term_lufs=-23.0))
    c.append(EbuCase(
        "3341-2", "As #1 at -33.0 dBFS. M, S, I = -33.0 +-0.1 LUFS",
        src, _stereo_tones([(20.0, -33.0)]),
        integrated_lufs=-33.0, momentary_lufs=-33.0, short_term_lufs=-33.0,
        max_momentary_lufs=-33.0, max_short_term_lufs=-33.0))
    c.append(EbuCase(
        "3341-3",
        "3 tones similar to #1: 10 s at -36.0 dBFS; 60 s at -23.0 dBFS; 10 s at -36.0 dBFS. "
        "I = -23.0 +-0.1 LUFS",
        src, _stereo_tones([(10.0, -36.0), (60.0, -23.0), (10.0, -36.0)]),
        integrated_lufs=-23.0))
    c.append(EbuCase(
        "3341-4",
        "5 tones similar to #1: 10 s at -72.0; 10 s at -36.0; 60 s at -23.0; 10 s at -36.0; "
        "10 s at -72.0 dBFS. I = -23.0 +-0.1 LUFS",
        src, _stereo_tones([(10.0, -72.0), (10.0, -36.0), (60.0, -23.0), (10.0, -36.0),
                            (10.0, -72.0)]),
        integrated_lufs=-23.0))
    c.append(EbuCase(
        "3341-5",
        "3 tones similar to #1: 20 s at -26.0 dBFS; 20.1 s at -20.0 dBFS; 20 s at -26.0 dBFS. "
        "I = -23.0 +-0.1 LUFS",
        src, _stereo_tones([(20.0, -26.0), (20.1, -20.0), (20.0, -26.0)]),
        integrated_lufs=-23.0))
    c.append(EbuCase(
        "3341-6",
        "5.0 channel sine wave, 1000 Hz, 20 s, per-channel peak levels -28.0 dBFS in L and R, "
        "-24.0 dBFS in C, -30.0 dBFS in Ls and Rs. I = -23.0 +-0.1 LUFS",
        src, _case_6, integrated_lufs=-23.0))

    c.append(EbuCase(
        "3341-9",
        "2 tones similar to #1: (1.34 s at -20.0 dBFS; 1.66 s at -30.0 dBFS) repeated 5 times. "
        "S = -23.0 +-0.1 LUFS, constant after 3 s",
        src, _stereo_tones([(1.34, -20.0), (1.66, -30.0)] * 5),
        short_term_lufs=-23.0, short_term_from_s=3.0))
    for i in range(20):
        # EBU file seq-3341-10-<i+1> is segment i (its length is 4 s + i * 0.15 s).
        c.append(EbuCase(
            f"3341-10-{i + 1}",
            f"For file-based meters; segment i={i} of 20: (i * 0.15 s of silence; 3 s at "
            "-23.0 dBFS; 1 s of silence). Max S = -23.0 +-0.1 LUFS, for each segment",
            src, _stereo_tones([(i * 0.15, None), (3.0, -23.0), (1.0, None)]),
            max_short_term_lufs=-23.0))
    segs11 = []
    for i in range(20):
        segs11 += [(i * 0.15, None), (3.0, -38.0 + i), (3.0 - i * 0.15, None)]
    c.append(EbuCase(
        "3341-11",
        "For 'live' meters; 20 tones similar to #1: (i * 0.15 s of silence; 3 s at -38.0+i "
        "dBFS; 3 - i * 0.15 s of silence) for i = 0..19. Max S = -38.0, -37.0, ..., -19.0 "
        "+-0.1 LUFS, successive values",
        src, _stereo_tones(segs11),
        # each segment lasts 6 s; the max-hold reading at its end is the i-th value
        successive_max_short_term=tuple((6.0 * (i + 1), -38.0 + i) for i in range(20)),
        max_short_term_lufs=-19.0))
    c.append(EbuCase(
        "3341-12",
        "2 tones similar to #1: (0.18 s at -20.0 dBFS; 0.22 s at -30.0 dBFS) repeated 25 "
        "times. M = -23.0 +-0.1 LUFS, constant after 1 s",
        src, _stereo_tones([(0.18, -20.0), (0.22, -30.0)] * 25),
        momentary_lufs=-23.0, momentary_from_s=1.0))
    for i in range(20):
        c.append(EbuCase(
            f"3341-13-{i + 1}",
            f"For file-based meters; segment i={i} of 20: (i * 20 ms of silence; 400 ms at "
            "-23.0 dBFS; 1 s of silence). Max M = -23.0 +-0.1 LUFS, for each segment",
            src, _stereo_tones([(i * 0.020, None), (0.4, -23.0), (1.0, None)]),
            max_momentary_lufs=-23.0))
    segs14 = []
    for i in range(20):
        segs14 += [(i * 0.020, None), (0.4, -38.0 + i), (0.4 - i * 0.020, None)]
    c.append(EbuCase(
        "3341-14",
        "For 'live' meters; 20 tones similar to #1: (i * 20 ms of silence; 400 ms at -38.0+i "
        "dBFS; 400 - i * 20 ms of silence) for i = 0..19. Max M = -38.0, -37.0, ..., -19.0 "
        "+-0.1 LUFS, successive values",
        src, _stereo_tones(segs14),
        successive_max_momentary=tuple((0.8 * (i + 1), -38.0 + i) for i in range(20)),
        max_momentary_lufs=-19.0))

    tp = [
        ("3341-15", 4, 0.50, 0.0, -6.0),
        ("3341-16", 4, 0.50, 45.0, -6.0),
        ("3341-17", 6, 0.50, 60.0, -6.0),
        ("3341-18", 8, 0.50, 67.5, -6.0),
        ("3341-19", 4, 1.41, 45.0, +3.0),
    ]
    for cid, div, amp, phase, expected in tp:
        c.append(EbuCase(
            cid,
            f"Stereo sine wave with frequency fs/{div} Hz, amplitude {amp:.2f} FFS, phase "
            f"{phase:.1f} degrees; tapered with a 10 ms fade-in and fade-out. "
            f"Max. true-peak level = {expected:+.1f} +0.2/-0.4 dBTP",
            src, (lambda d, a, p: (lambda fs: _sine_fraction(fs, d, a, p)))(div, amp, phase),
            true_peak_dbtp=expected))
    for k, offset in enumerate(range(4)):
        c.append(EbuCase(
            f"3341-{20 + k}",
            "Stereo sine wave, fs/6 Hz, 0.50 FFS, containing a single period of a sine wave at "
            "fs/4, amplitude 1.00, continuous in phase at both sides; synthesized at 4*fs, "
            f"low-pass filtered and downsampled to fs with a {offset} samples offset. "
            "Max. true-peak level = 0.0 +0.2/-0.4 dBTP",
            src, _burst_case(offset), true_peak_dbtp=0.0))

    src = TECH3342
    c.append(EbuCase(
        "3342-1",
        "Stereo sine wave, 1000 Hz, -20.0 dBFS (per-channel peak level), 20 s; followed "
        "immediately by the same signal at -30.0 dBFS. LRA = 10 +-1 LU",
        src, _stereo_tones([(20.0, -20.0), (20.0, -30.0)]), loudness_range_lu=10.0))
    c.append(EbuCase(
        "3342-2", "As #1, with the 2 tones at -20.0 dBFS and -15.0 dBFS. LRA = 5 +-1 LU",
        src, _stereo_tones([(20.0, -20.0), (20.0, -15.0)]), loudness_range_lu=5.0))
    c.append(EbuCase(
        "3342-3", "As #1, with the 2 tones at -40.0 dBFS and -20.0 dBFS. LRA = 20 +-1 LU",
        src, _stereo_tones([(20.0, -40.0), (20.0, -20.0)]), loudness_range_lu=20.0))
    c.append(EbuCase(
        "3342-4",
        "As #1, but with 5 tone-segments at -50.0, -35.0, -20.0, -35.0 and -50.0 dBFS; 20 s "
        "each. LRA = 15 +-1 LU",
        src, _stereo_tones([(20.0, -50.0), (20.0, -35.0), (20.0, -20.0), (20.0, -35.0),
                            (20.0, -50.0)]),
        loudness_range_lu=15.0))
    return c


CASES: list[EbuCase] = _cases()
CASES_BY_ID: dict[str, EbuCase] = {case.id: case for case in CASES}

FILE_ONLY_CASES: list[FileOnlyCase] = [
    FileOnlyCase("3341-7", "Authentic programme 1, stereo, narrow loudness range (NLR); "
                 "I = -23.0 +-0.1 LUFS (= Tech 3342 case 5, LRA = 5 +-1 LU)", TECH3341,
                 "defined only by the EBU recording seq-3341-7_seq-3342-5; no synthesis possible"),
    FileOnlyCase("3341-8", "Authentic programme 2, stereo, wide loudness range (WLR); "
                 "I = -23.0 +-0.1 LUFS (= Tech 3342 case 6, LRA = 15 +-1 LU)", TECH3341,
                 "defined only by the EBU recording seq-3341-2011-8_seq-3342-6; no synthesis possible"),
]
