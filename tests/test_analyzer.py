"""Known answers for the analyzer: loudness, peaks, band spectrum, stereo, DC, dynamics and
ambience, block-size invariance, and the Features hand-over object."""

from __future__ import annotations

import json
import math

import numpy as np
import pyloudnorm
import pytest
from scipy import signal

from mixbridge.analysis.analyze import analyze, analyze_file, analyze_spectral
from mixbridge.analysis.audio import Audio, save
from mixbridge.analysis.dynamics import describe_dynamics
from mixbridge.analysis.errors import SettingsError
from mixbridge.analysis.features import Features
from mixbridge.analysis.loudness import LoudnessMeter
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, BAND_EDGES_HZ, SpectrumAnalyzer
from mixbridge.analysis.truepeak import TruePeakMeter

CENTRES = np.asarray(BAND_CENTRES_HZ)
SINE_POWER_DB = 10 * np.log10(0.5)  # mean square of a 0 dBFS sine: -3.0103 dB


def _band(freq_hz: float) -> int:
    return int(np.argmin(np.abs(CENTRES - freq_hz)))


# ---- loudness --------------------------------------------------------------------------
@pytest.mark.parametrize("sample_rate", (8000, 44100, 48000, 96000, 192000))
def test_stereo_sine_at_minus_23_dbfs_reads_minus_23_lufs(sample_rate, sine):
    """BS.1770 / EBU Tech 3341: a 1 kHz sine at -23 dBFS in both channels is -23.0 LUFS
    (K-weighting is +0.69 dB at 1 kHz, cancelling the -0.691 offset)."""
    features = analyze(Audio(sine(1000.0, sample_rate, 3.0, -23.0, 2), sample_rate))
    assert features.integrated_lufs == pytest.approx(-23.0, abs=0.05)
    assert features.max_momentary_lufs == pytest.approx(-23.0, abs=0.05)


@pytest.mark.parametrize("sample_rate", (8000, 44100, 48000, 96000, 192000))
def test_mono_sine_reads_3_db_below_the_same_sine_in_stereo(sample_rate, sine):
    """BS.1770 sums channel powers with G = 1.0 for L/R/C; a mono file is one channel, so
    the same -23 dBFS sine reads 10*log10(2) = 3.01 dB lower than in both stereo channels."""
    features = analyze(Audio(sine(1000.0, sample_rate, 3.0, -23.0, 1), sample_rate))
    assert features.integrated_lufs == pytest.approx(-23.0 - 3.0103, abs=0.05)


@pytest.mark.parametrize("channels", (1, 2))
@pytest.mark.parametrize("color", ("white", "pink"))
@pytest.mark.parametrize("sample_rate", (44100, 48000))
def test_integrated_loudness_matches_pyloudnorm(sample_rate, color, channels, noise):
    x = noise(sample_rate, 5.0, -20.0, channels, color)
    # Half the noise 12 dB down, so the relative gate has something to do.
    x[:, : x.shape[1] // 2] *= 10 ** (-12 / 20)
    features = analyze(Audio(x, sample_rate))
    as_read = x.astype(np.float32).astype(np.float64).T  # what our meter sees
    oracle = pyloudnorm.Meter(sample_rate).integrated_loudness(as_read)
    assert features.integrated_lufs == pytest.approx(oracle, abs=0.1)


# ---- peaks -----------------------------------------------------------------------------
def _fades(n: int, fade: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out gains of ``fade`` samples over ``n`` samples."""
    gain = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    gain[:fade], gain[n - fade :] = ramp, ramp[::-1]
    return gain


@pytest.mark.parametrize("sample_rate", (8000, 44100, 48000, 96000))
def test_true_peak_of_quarter_rate_sine_at_45_degrees(sample_rate, sine):
    """Samples of sin(2*pi*n/4 + pi/4) sit at +-0.707 of the peak: the true peak is
    20*log10(sqrt(2)) = 3.01 dB above the sample peak, exactly half-way between samples.
    Faded in and out over 10 ms: a hard start at 0.707 is a step, whose band-limited
    reconstruction really does overshoot (+0.11 dB here), which is not what is tested."""
    x = sine(sample_rate / 4, sample_rate, 1.0, -6.0, 2, phase_rad=np.pi / 4)
    x *= _fades(x.shape[1], int(0.01 * sample_rate))
    features = analyze(Audio(x, sample_rate))
    assert features.sample_peak_dbfs == pytest.approx(-6.0 - 3.0103, abs=0.01)
    assert features.true_peak_dbtp - features.sample_peak_dbfs == pytest.approx(3.0103, abs=0.1)


def test_true_peak_at_192_khz_is_the_sample_peak(sine):
    """At 192 kHz the meter does not oversample (1x, BS.1770-5 Annex 2 allows it for such
    rates), so the quarter-rate test above cannot apply; documented here instead."""
    x = sine(48000.0, 192000, 0.5, -6.0, 2, phase_rad=np.pi / 4)
    features = analyze(Audio(x, 192000))
    assert features.true_peak_dbtp == pytest.approx(features.sample_peak_dbfs, abs=1e-6)


@pytest.mark.parametrize("dbfs", (-20.0, -6.0))
@pytest.mark.parametrize("sample_rate", (8000, 48000, 96000))
def test_sample_peak_rms_and_crest_factor_of_a_sine(sample_rate, dbfs, sine):
    x = sine(1000.0, sample_rate, 1.0, dbfs, 2)  # whole periods, a sample on each crest
    features = analyze(Audio(x, sample_rate))
    assert features.sample_peak_dbfs == pytest.approx(dbfs, abs=0.01)
    assert features.rms_dbfs == pytest.approx(dbfs - 3.0103, abs=0.01)
    assert features.crest_factor_db == pytest.approx(3.0103, abs=0.01)
    assert features.true_peak_dbtp == pytest.approx(dbfs, abs=0.1)


# ---- block-size invariance -------------------------------------------------------------
def _meters(x: np.ndarray, sample_rate: int, block: int):
    channels = x.shape[0]
    loud = LoudnessMeter(sample_rate, channels)
    peak = TruePeakMeter(sample_rate, channels)
    spec = SpectrumAnalyzer(sample_rate, channels)
    for start in range(0, x.shape[1], block):
        part = x[:, start : start + block]
        loud.process(part)
        peak.process(part)
        spec.process(part)
    peak.finish()
    s = spec.result()
    return loud.result(), peak.true_peak_dbtp, s, describe_dynamics(
        s.frame_band_db, s.frame_peak, s.frame_mean_square, s.hop_s)


@pytest.mark.parametrize("channels", (1, 2))
def test_meters_do_not_depend_on_block_size(channels, noise, rng):
    sample_rate = 44100
    x = noise(sample_rate, 7.0, -20.0, channels, "pink")
    x *= np.linspace(0.1, 1.0, x.shape[1])  # a fade, so the series change over time
    x[:, rng.integers(0, x.shape[1], 20)] = 0.9  # clicks for the onset detector
    x = x.astype(np.float32)
    reference = _meters(x, sample_rate, 10**6)
    for block in (1000, 44100, 7777):
        loud, tp, spec, dyn = _meters(x, sample_rate, block)
        ref_loud, ref_tp, ref_spec, ref_dyn = reference
        for name in ("integrated_lufs", "max_momentary_lufs", "max_short_term_lufs",
                     "loudness_range_lu"):
            assert getattr(loud, name) == pytest.approx(getattr(ref_loud, name), abs=1e-6), name
        np.testing.assert_allclose(loud.short_term_lufs, ref_loud.short_term_lufs, atol=1e-6)
        np.testing.assert_allclose(loud.momentary_lufs, ref_loud.momentary_lufs, atol=1e-6)
        assert tp == pytest.approx(ref_tp, abs=1e-6)
        np.testing.assert_allclose(spec.mid_band_db, ref_spec.mid_band_db, atol=1e-4)
        np.testing.assert_allclose(spec.side_band_db, ref_spec.side_band_db, atol=1e-4)
        np.testing.assert_allclose(spec.frame_band_db, ref_spec.frame_band_db, atol=1e-3)
        assert spec.correlation == pytest.approx(ref_spec.correlation, abs=1e-6)
        assert spec.tilt_db_per_octave == pytest.approx(ref_spec.tilt_db_per_octave, abs=1e-4)
        for name in ("frame_crest_db", "transient_density_per_s", "onset_strength_db",
                     "decay_rate_db_per_s", "tail_level_db"):
            assert getattr(dyn, name) == pytest.approx(getattr(ref_dyn, name), abs=1e-3), name


def test_analyze_and_analyze_file_agree(noise, tmp_path):
    x = noise(48000, 4.0, -18.0, 2, "pink")
    audio = Audio(x, 48000)
    path = save(audio, tmp_path / "same.wav", bit_depth="32f")  # bit exact on disk
    in_memory = analyze(audio).to_dict()
    streamed = analyze_file(path).to_dict()
    in_memory.pop("source"), streamed.pop("source")
    assert streamed == in_memory


# ---- band spectrum ---------------------------------------------------------------------
@pytest.mark.parametrize("dbfs", (-23.0, 0.0))
@pytest.mark.parametrize("sample_rate", (8000, 48000, 96000))
def test_sine_energy_lands_in_its_band(sample_rate, dbfs, sine):
    features = analyze(Audio(sine(1000.0, sample_rate, 2.0, dbfs, 2), sample_rate))
    bands = np.asarray(features.mid_band_db)
    k = _band(1000.0)
    assert bands[k] == pytest.approx(dbfs + SINE_POWER_DB, abs=0.5)
    power = 10 ** (bands / 10)
    assert power[k] / power.sum() > 0.99
    assert features.centroid_hz == pytest.approx(1000.0, rel=0.02)


def _peaking(f0_hz: float, gain_db: float, q: float, sample_rate: int):
    """RBJ cookbook peaking EQ biquad."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0_hz / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return b / den[0], den / den[0]


def _band_gain_db(b, a, sample_rate: int) -> np.ndarray:
    """Oracle: the filter's power gain averaged over each band, weighted for pink noise."""
    out = np.full(len(BAND_CENTRES_HZ), np.nan)
    for i, (lo, hi) in enumerate(zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])):
        hi = min(hi, 0.49 * sample_rate)
        if lo < hi:
            f = np.geomspace(lo, hi, 200)
            _, h = signal.freqz(b, a, worN=f, fs=sample_rate)
            out[i] = 10 * np.log10(np.trapezoid(np.abs(h) ** 2 / f, f) / np.trapezoid(1 / f, f))
    return out


@pytest.mark.parametrize("centre_hz", (125.0, 1000.0, 4000.0))
@pytest.mark.parametrize("sample_rate", (22050, 48000, 96000))
def test_band_boost_in_pink_noise_shows_in_that_band(sample_rate, centre_hz, noise):
    x = noise(sample_rate, 4.0, -20.0, 1, "pink")
    b, a = _peaking(centre_hz, 6.0, 1.0, sample_rate)
    dry = np.asarray(analyze(Audio(x, sample_rate)).mid_band_db)
    boosted = np.asarray(analyze(Audio(signal.lfilter(b, a, x, axis=1), sample_rate)).mid_band_db)
    rise = boosted - dry
    k = _band(centre_hz)
    assert rise[k] == pytest.approx(6.0, abs=0.5)
    expected = _band_gain_db(b, a, sample_rate)
    use = np.isfinite(expected) & (CENTRES >= 40.0)
    worst = np.max(np.abs(rise - expected)[use])
    assert worst < 0.3, f"band rise differs from the filter's response by {worst:.2f} dB"


@pytest.mark.parametrize("color,tilt", (("white", 3.0), ("pink", 0.0)))
@pytest.mark.parametrize("sample_rate", (8000, 22050, 48000, 96000, 192000))
def test_spectral_tilt_of_white_and_pink_noise(sample_rate, color, tilt, noise):
    """Per 1/3-octave band, white noise gains 10*log10(2) = 3.01 dB per octave; pink is flat."""
    features = analyze(Audio(noise(sample_rate, 3.0, -20.0, 2, color), sample_rate))
    assert features.tilt_db_per_octave == pytest.approx(tilt, abs=0.5)


# ---- stereo ----------------------------------------------------------------------------
def test_identical_channels_are_mono(noise):
    features = analyze(Audio(noise(48000, 2.0, -20.0, 2, correlated=True), 48000))
    assert features.correlation == pytest.approx(1.0, abs=1e-6)
    assert features.width == pytest.approx(0.0, abs=1e-6)
    assert max(features.side_band_db) <= -100.0


def test_mono_file_has_correlation_1_width_0(noise):
    features = analyze(Audio(noise(48000, 2.0, -20.0, 1), 48000))
    assert (features.correlation, features.width) == (1.0, 0.0)


def test_uncorrelated_noise_has_correlation_0_width_half(noise):
    features = analyze(Audio(noise(48000, 4.0, -20.0, 2), 48000))
    assert features.correlation == pytest.approx(0.0, abs=0.05)
    assert features.width == pytest.approx(0.5, abs=0.05)
    mid_bands = (CENTRES >= 200) & (CENTRES <= 10000)
    np.testing.assert_allclose(np.asarray(features.correlation_band)[mid_bands], 0.0, atol=0.2)
    np.testing.assert_allclose(np.asarray(features.width_band)[mid_bands], 0.5, atol=0.1)


def test_inverted_polarity_has_correlation_minus_1_width_1(noise):
    x = noise(48000, 2.0, -20.0, 2, correlated=True)
    x[1] *= -1.0
    features = analyze(Audio(x, 48000))
    assert features.correlation == pytest.approx(-1.0, abs=1e-6)
    assert features.width == pytest.approx(1.0, abs=1e-6)
    assert max(features.mid_band_db) <= -100.0


@pytest.mark.parametrize("seconds", (2.0, 0.2))
def test_the_analysis_as_heard_inverted_is_the_analysis_of_the_inverted_signal_to_the_last_bit(seconds, noise):
    """Only the spectrum is measured again; the level figures (loudness, peaks, clipping, RMS,
    DC) are the original's, and equal what the inverted signal measures. The mix has a DC offset,
    clipped samples and a partly anti-phase image, so every field and note has something to show."""
    from dataclasses import replace

    from mixbridge.analysis.analyze import as_heard_inverted
    from mixbridge.analysis.audio import invert_right

    sr = 48000
    x = noise(sr, seconds, -18.0, 2, correlated=True) + 0.7 * noise(sr, seconds, -24.0, 2)
    x[1] = -x[1] + 0.02  # mostly out of phase, with a DC offset
    x[0, :: sr // 10] = 1.0  # clipped samples
    x = x.astype(np.float32)
    audio = Audio(x, sr)
    features = analyze(audio)
    heard = as_heard_inverted(features, audio.blocks())
    expected = analyze(Audio(invert_right(x), sr))
    assert heard == replace(expected, source=features.source)
    assert heard.correlation > 0.5 > -0.5 > features.correlation  # the image did change
    assert any(n.startswith("channels largely out of phase") for n in features.notes)
    assert not any(n.startswith("channels largely out of phase") for n in heard.notes)


@pytest.mark.parametrize("dc", (0.0, 0.01, -0.05))
def test_dc_offset_is_measured(dc, noise):
    x = noise(48000, 2.0, -30.0, 2) + dc
    features = analyze(Audio(x, 48000))
    if dc == 0.0:
        assert features.dc_offset_dbfs < -60.0
        assert not any("DC" in n for n in features.notes)
    else:
        assert features.dc_offset_dbfs == pytest.approx(20 * np.log10(abs(dc)), abs=0.2)
        assert any("DC offset" in n for n in features.notes)


# ---- dynamics and ambience -------------------------------------------------------------
def _click_train(rng, sample_rate: int, duration_s: float, per_second: float,
                 bed_dbfs: float | None) -> np.ndarray:
    """Drum-like hits: noise bursts with a 5 ms exponential decay, ``per_second`` of them,
    in digital silence or over a steady noise bed at ``bed_dbfs`` RMS. Mono ``(1, n)``."""
    n = int(duration_s * sample_rate)
    x = np.zeros(n)
    length = int(0.1 * sample_rate)
    env = np.exp(-np.arange(length) / (0.005 * sample_rate))
    for t0 in np.arange(0.25, duration_s - 0.1, 1.0 / per_second):
        i = int(t0 * sample_rate)
        seg = x[i : i + length]
        seg += 0.5 * env[: seg.size] * rng.standard_normal(seg.size)
    if bed_dbfs is not None:
        x += 10 ** (bed_dbfs / 20) * rng.standard_normal(n)
    return x[None, :]


def _reverb(rng, x: np.ndarray, sample_rate: int, rt60_s: float = 1.5) -> np.ndarray:
    """Direct sound plus an exponentially decaying noise tail (-60 dB after ``rt60_s``)."""
    length = int(2 * rt60_s * sample_rate)
    ir = 0.03 * rng.standard_normal(length) * 10 ** (-3 * np.arange(length) / (rt60_s * sample_rate))
    ir[0] = 1.0
    wet = signal.fftconvolve(x, ir[None, :], axes=1)[:, : x.shape[1]]
    return wet * (np.max(np.abs(x)) / np.max(np.abs(wet)))


BEDS = (pytest.param(None, id="in-silence"), pytest.param(-40.0, id="over-a-noise-bed"))


@pytest.mark.parametrize("bed_dbfs", BEDS)
@pytest.mark.parametrize("per_second", (2.0, 4.0, 8.0))
def test_transient_density_of_a_click_train(per_second, bed_dbfs, rng):
    x = _click_train(rng, 48000, 6.0, per_second, bed_dbfs)
    features = analyze(Audio(np.repeat(x, 2, axis=0), 48000))
    assert features.transient_density_per_s == pytest.approx(per_second, abs=1.0)


@pytest.mark.parametrize("bed_dbfs", BEDS)
def test_reverb_tail_slows_the_decay_and_raises_the_tail(bed_dbfs, rng):
    dry = _click_train(rng, 48000, 6.0, 4.0, bed_dbfs)
    wet = _reverb(rng, dry, 48000)
    f_dry = analyze(Audio(np.repeat(dry, 2, axis=0), 48000))
    f_wet = analyze(Audio(np.repeat(wet, 2, axis=0), 48000))
    assert f_dry.decay_rate_db_per_s < f_wet.decay_rate_db_per_s < 0.0, (
        f"decay dry {f_dry.decay_rate_db_per_s:.1f} dB/s, wet {f_wet.decay_rate_db_per_s:.1f} dB/s")
    assert f_wet.tail_level_db > f_dry.tail_level_db + 6.0, (
        f"tail dry {f_dry.tail_level_db:.1f} dB, wet {f_wet.tail_level_db:.1f} dB")


def test_steady_noise_has_no_transients(noise):
    features = analyze(Audio(noise(48000, 4.0, -20.0, 2), 48000))
    assert features.transient_density_per_s < 0.5


# ---- Features --------------------------------------------------------------------------
def _features(noise) -> Features:
    return analyze(Audio(noise(48000, 4.0, -20.0, 2, "pink"), 48000))


def test_features_json_round_trip(noise):
    features = _features(noise)
    data = json.loads(features.to_json())
    back = Features.from_dict(data)
    assert back.to_dict() == features.to_dict()
    for name in ("integrated_lufs", "true_peak_dbtp", "tilt_db_per_octave", "width"):
        assert getattr(back, name) == pytest.approx(getattr(features, name), abs=1e-4)
    assert back.notes == features.notes and isinstance(back.mid_band_db, tuple)


def test_features_round_trip_keeps_undefined_values():
    features = analyze(Audio(np.zeros((2, 48000)), 48000))
    back = Features.from_dict(json.loads(features.to_json()))
    assert back.integrated_lufs == -math.inf and back.sample_peak_dbfs == -math.inf
    assert back.to_dict() == features.to_dict()


def test_features_from_dict_refuses_another_version(noise):
    data = _features(noise).to_dict()
    data["feature_version"] = 999
    with pytest.raises(SettingsError, match="feature_version"):
        Features.from_dict(data)


def test_the_model_input_matches_its_names_and_is_finite_even_for_silence(noise):
    """The learned model's input (models.net.input_vector, named by input_names) for a mix
    and for silence, whose loudness is undefined."""
    from mixbridge.assistant.targets import DEFAULT_PROFILE, load_profile
    from mixbridge.models.net import TargetDescriptor, input_names, input_vector

    target = TargetDescriptor.from_profile(load_profile(DEFAULT_PROFILE))
    names = input_names()
    assert len(set(names)) == len(names)
    for features in (_features(noise), analyze(Audio(np.zeros((2, 48000)), 48000))):
        vector = input_vector(features, target)
        assert vector.shape == (len(names),) and np.all(np.isfinite(vector))


def test_analyze_spectral_gives_analyzes_values():
    """The closed loops measure only the band shape, width, frame crest and tail: the same values."""
    sr = 44100
    rng = np.random.default_rng(3)
    t = np.arange(4 * sr) / sr
    hits = (np.sin(2 * np.pi * 2 * t) > 0.95).astype(np.float32)  # bursts: onsets and tails
    x = (0.3 * hits * rng.standard_normal((2, t.size)) + 0.05 * rng.standard_normal((2, t.size))).astype(np.float32)
    audio = Audio(x, sr)
    full, only = analyze(audio), analyze_spectral(audio)
    assert only.mid_band_db == pytest.approx(full.mid_band_db, abs=1e-9)
    for key in ("width", "frame_crest_db", "tail_level_db"):
        assert getattr(only, key) == pytest.approx(getattr(full, key), abs=1e-9), key


@pytest.mark.parametrize("n_fft, sample_rate", [(8192, 44100), (88200, 44100), (4096, 8000), (65536, 192000),
                                                (16, 8000), (2, 44100)])
def test_band_weights_split_each_bin_across_the_band_edges(n_fft, sample_rate):
    """Each bin's power goes to the bands its [f - df/2, f + df/2) span overlaps, in proportion
    to the overlap: the whole matrix computed band by band equals the dense definition."""
    from mixbridge.analysis.spectrum import BAND_EDGES_HZ, band_matrix

    bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    lower = np.maximum((np.arange(bins) - 0.5) * df, 0.0)
    upper = np.minimum((np.arange(bins) + 0.5) * df, sample_rate / 2.0)
    edges = np.asarray(BAND_EDGES_HZ)
    overlap = np.clip(np.minimum(upper[:, None], edges[None, 1:]) - np.maximum(lower[:, None], edges[None, :-1]),
                      0.0, None)
    dense = overlap / np.maximum(upper - lower, 1e-12)[:, None]
    weights = band_matrix(n_fft, sample_rate)
    np.testing.assert_array_equal(weights, dense)
    inside = (lower >= edges[0]) & (upper <= edges[-1])
    np.testing.assert_allclose(weights[inside].sum(axis=1), 1.0, rtol=1e-12)  # power kept, only split


def test_the_analyzers_two_halves_in_two_threads_give_what_one_thread_gives():
    """analyze() runs the level meters in a second thread beside the spectrum, and a master's
    write pass runs each half in its own; the Features are those of one thread, exactly."""
    from concurrent.futures import ThreadPoolExecutor

    from mixbridge.analysis.analyze import StreamAnalyzer
    from mixbridge.analysis.blocks import chunks

    rng = np.random.default_rng(5)
    x = (0.2 * rng.standard_normal((2, 48000 * 7))).astype(np.float32)
    serial = StreamAnalyzer(48000, 2, "x")
    for block in chunks(x, 70000):
        serial.process(block)
    split = StreamAnalyzer(48000, 2, "x")
    with ThreadPoolExecutor(1) as pool:
        for block in chunks(x, 70000):
            pending = pool.submit(split.levels, block)
            split.spectrum(block)
            pending.result()
    assert split.result() == serial.result()


# ---- the true-peak meter interpolates only the rows that could raise the peak ---------------
def _every_row_true_peak(x: np.ndarray, sample_rate: int) -> float:
    """The interpolation over every row, as the meter did before it skipped any."""
    from mixbridge.analysis.truepeak import TAPS_PER_PHASE, _row_matrices, oversampling_factor

    current, previous = _row_matrices(oversampling_factor(sample_rate), TAPS_PER_PHASE)
    padded = np.concatenate((x, np.zeros((x.shape[0], 2 * TAPS_PER_PHASE))), axis=1).astype(np.float32)
    rows = padded[:, : padded.shape[1] // TAPS_PER_PHASE * TAPS_PER_PHASE].reshape(x.shape[0], -1, TAPS_PER_PHASE)
    peak = float(np.abs(x).max())
    for c in range(x.shape[0]):
        y = rows[c] @ current
        y[1:] += rows[c, :-1] @ previous
        peak = max(peak, float(np.abs(y).max()))
    return float(20 * np.log10(peak))


def _every_phase_envelope(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """The linked per-sample envelope with every phase of the interpolator computed, phase 0
    (the sample itself) included, as the envelope meter did before it took phase 0 from the
    samples: sample i's value is the largest |value| over the channels at i and at the
    interpolated points of the intervals (i - 1, i] and [i, i + 1)."""
    from mixbridge.analysis.truepeak import TAPS_PER_PHASE, _row_matrices, oversampling_factor

    factor, row = oversampling_factor(sample_rate), TAPS_PER_PHASE
    current, previous = _row_matrices(factor, row)
    delay = int(np.ceil((row * factor - 1) / (2 * factor)))  # window ending at m: between m - delay and m - delay + 1
    n = x.shape[1]
    seg = np.zeros((x.shape[0], -(-(n + 2 * row + delay) // row) * row), dtype=np.float32)
    seg[:, :n] = x
    between = np.zeros(seg.shape[1] + 1, dtype=np.float32)  # between[i + 1]: max |y| over [i, i + 1)
    for c in range(x.shape[0]):
        rows = seg[c].reshape(-1, row)
        peak = np.zeros(rows.shape, dtype=np.float32)  # per window end, max over the phases
        for p in range(factor):
            y = rows @ current[:, p * row: (p + 1) * row]
            y[1:] += rows[:-1] @ previous[:, p * row: (p + 1) * row]
            np.maximum(peak, np.abs(y), out=peak)
        peak = peak.reshape(-1)
        np.maximum(between[1: peak.size - delay + 1], peak[delay:], out=between[1: peak.size - delay + 1])
    return np.maximum(np.abs(x).max(axis=0), np.maximum(between[1: n + 1], between[:n]))


@pytest.mark.parametrize("sample_rate", (44100, 96000))
def test_the_peak_envelope_takes_phase_0_from_the_samples_and_equals_the_full_interpolation(sample_rate, noise, rng):
    from mixbridge.analysis.truepeak import peak_envelope

    x = noise(sample_rate, 1.0, -20.0, 2, "pink")
    x[:, rng.integers(0, x.shape[1] - 400, 10)[:, None] + np.arange(300)] *= 8.0  # bursts
    x[0, [0, 5000, 5001, x.shape[1] - 1]] = [1.0, -1.0, 0.0, 1.0]  # clicks, at the edges too
    x[1, 20000:30000] = 0.0  # one channel silent a while: the envelope is linked
    x = x.astype(np.float32)
    # equal but for float32 rounding (the products group the samples into rows from other starts)
    np.testing.assert_allclose(peak_envelope(x, sample_rate), _every_phase_envelope(x, sample_rate), rtol=1e-6, atol=0)


@pytest.mark.parametrize("signal", ("bursts", "fade-in", "intersample", "silence-then-loud"))
def test_true_peak_skipping_rows_gives_the_full_interpolation(signal, noise, rng):
    sample_rate = 44100
    x = noise(sample_rate, 3.0, -20.0, 2, "pink")
    if signal == "bursts":
        x[:, rng.integers(0, x.shape[1] - 400, 30)[:, None] + np.arange(300)] *= 8.0
    elif signal == "fade-in":  # the peak rises all the way: the running bound skips little
        x *= np.linspace(0.01, 1.0, x.shape[1])
    elif signal == "intersample":  # fs/4 at 45°: every sample under the crest by 3 dB
        t = np.arange(x.shape[1])
        x = np.tile(0.5 * np.sin(np.pi / 2 * t + np.pi / 4), (2, 1)).astype(np.float32)
        x[1] *= 0.3
    else:
        x[:, : x.shape[1] // 2] = 0.0
    expected = _every_row_true_peak(x, sample_rate)
    for block in (1000, 4096, 65536):
        meter = TruePeakMeter(sample_rate, 2)
        for start in range(0, x.shape[1], block):
            meter.process(x[:, start : start + block])
        meter.finish()
        assert meter.true_peak_dbtp == pytest.approx(expected, abs=1e-4)
    if signal == "intersample":  # the crest between the samples is found (within BS.1770's tolerance)
        assert float(20 * np.log10(np.abs(x).max())) == pytest.approx(20 * np.log10(0.5) - 3.01, abs=0.01)
        assert expected == pytest.approx(20 * np.log10(0.5), abs=0.2)
