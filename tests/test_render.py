"""The renderer: ChainSettings -> pedalboard -> samples, checked with the analyzer's own meters.

Every stage is checked against a known answer on synthetic signals: an identity for the
neutral chain, +6 dB in the 1 kHz third-octave band for a +6 dB bell, 6.0 LU for a +6 dB
trim, width 0.8 for uncorrelated noise at 200 % side gain, and so on.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_matrix, held_bands
from mixbridge.effects.render import ChainRenderer, render
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import MATCH_EQ_PARAMS, ChainSettings

CENTRES = np.asarray(BAND_CENTRES_HZ)
I_1K = int(np.argmin(np.abs(CENTRES - 1000.0)))


def _bands(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The analyzer's long-term mid band spectrum (dB)."""
    return np.asarray(analyze(Audio(samples, sample_rate)).mid_band_db)


def _band_gain(settings: ChainSettings, x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Processed minus unprocessed band levels (dB) of ``x`` through ``settings``."""
    return _bands(render(x, sample_rate, settings), sample_rate) - _bands(x, sample_rate)


def _rms_db(x: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture
def pink(noise):
    """6 s of stereo pink noise at -20 dBFS RMS, 48 kHz, float32."""
    return noise(48000, 6.0, -20.0, 2, color="pink").astype(np.float32)


# ---- identity ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", (1, 2))
def test_neutral_chain_is_an_identity(channels, noise):
    x = noise(44100, 1.0, -12.0, channels).astype(np.float32)
    y = render(x, 44100, ChainSettings.create())
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, x, rtol=0.0, atol=1e-6)


def test_stages_switched_off_do_nothing_whatever_their_values(noise):
    x = noise(48000, 1.0, -12.0, 2).astype(np.float32)
    values = {"trim.gain_db": 6.0, "highpass.cutoff_hz": 200.0, "low_shelf.gain_db": 9.0, "peak1.gain_db": -9.0,
              "peak2.gain_db": 9.0, "peak3.gain_db": -9.0, "peak4.gain_db": 9.0, "high_shelf.gain_db": -9.0,
              "compressor.threshold_db": -40.0, "compressor.ratio": 10.0, "reverb.wet": 0.8,
              "stereo.width_percent": 0.0}
    off = ChainSettings.create(values, {s: False for s in ChainSettings.create().enabled})
    np.testing.assert_allclose(render(x, 48000, off), x, rtol=0.0, atol=1e-6)


def test_render_does_not_modify_its_input(noise):
    x = noise(48000, 0.5, -12.0, 2).astype(np.float32)
    before = x.copy()
    render(x, 48000, ChainSettings.create({"trim.gain_db": 6.0, "peak2.gain_db": 4.0, "stereo.width_percent": 150.0}))
    np.testing.assert_array_equal(x, before)


# ---- EQ ---------------------------------------------------------------------------------------
def test_peaking_band_adds_6_db_at_1_khz(pink):
    bell = ChainSettings.create({"peak2.freq_hz": 1000.0, "peak2.gain_db": 6.0, "peak2.q": 1.0})
    gain = _band_gain(bell, pink, 48000)
    assert gain[I_1K] == pytest.approx(6.0, abs=0.5)
    assert np.argmax(gain) == I_1K
    for freq in (250.0, 4000.0):  # two octaves away: essentially untouched
        i = int(np.argmin(np.abs(CENTRES - freq)))
        assert abs(gain[i]) < 0.6, f"{freq} Hz band moved {gain[i]:+.2f} dB"
    far = (CENTRES < 100.0) | (CENTRES > 12000.0)
    assert np.all(np.abs(gain[far]) < 0.15)


def test_peaking_cut_is_the_mirror_of_the_boost(pink):
    cut = ChainSettings.create({"peak3.freq_hz": 1000.0, "peak3.gain_db": -6.0, "peak3.q": 1.0})
    assert _band_gain(cut, pink, 48000)[I_1K] == pytest.approx(-6.0, abs=0.5)


@pytest.mark.parametrize("gain_db", (6.0, -6.0))
def test_low_shelf_moves_the_low_end_only(gain_db, pink):
    shelf = ChainSettings.create({"low_shelf.freq_hz": 100.0, "low_shelf.gain_db": gain_db})
    gain = _band_gain(shelf, pink, 48000)
    low, high = CENTRES <= 32.0, CENTRES >= 1000.0
    np.testing.assert_allclose(gain[low], gain_db, atol=0.5)
    np.testing.assert_allclose(gain[high], 0.0, atol=0.2)


@pytest.mark.parametrize("gain_db", (6.0, -6.0))
def test_high_shelf_moves_the_high_end_only(gain_db, pink):
    shelf = ChainSettings.create({"high_shelf.freq_hz": 4000.0, "high_shelf.gain_db": gain_db})
    gain = _band_gain(shelf, pink, 48000)
    low, high = CENTRES <= 500.0, (CENTRES >= 12500.0) & (CENTRES <= 20000.0)
    np.testing.assert_allclose(gain[high], gain_db, atol=0.5)
    np.testing.assert_allclose(gain[low], 0.0, atol=0.2)


def test_highpass_removes_a_20_hz_tone(sine):
    """A high-pass one octave above a 20 Hz rumble takes at least 12 dB off it (a 12 dB/octave
    filter does; that is the gentlest slope that can be said to remove rumble) and leaves the
    midrange alone."""
    sr = 48000
    hp = ChainSettings.create({"highpass.cutoff_hz": 40.0}, {"highpass": True})
    rumble = sine(20.0, sr, 4.0, -6.0, 2).astype(np.float32)
    mid = sine(1000.0, sr, 1.0, -6.0, 2).astype(np.float32)
    settle = sr  # skip the filter's start-up
    drop = _rms_db(render(rumble, sr, hp)[:, settle:]) - _rms_db(rumble[:, settle:])
    assert drop <= -12.0, f"20 Hz only {drop:.1f} dB down with the high-pass at 40 Hz"
    assert _rms_db(render(mid, sr, hp)[:, sr // 10:]) - _rms_db(mid[:, sr // 10:]) == pytest.approx(0.0, abs=0.1)


def test_highpass_at_its_highest_cutoff_removes_a_20_hz_tone(sine):
    sr = 48000
    hp = ChainSettings.create({"highpass.cutoff_hz": 300.0}, {"highpass": True})
    rumble = sine(20.0, sr, 3.0, -6.0, 2).astype(np.float32)
    assert _rms_db(render(rumble, sr, hp)[:, sr:]) - _rms_db(rumble[:, sr:]) < -20.0


# ---- gain and dynamics ------------------------------------------------------------------------
@pytest.mark.parametrize("trim_db", (6.0, -12.0))
def test_trim_moves_integrated_loudness_by_its_gain(trim_db, pink):
    before = measure_loudness(pink, 48000).integrated_lufs
    after = measure_loudness(render(pink, 48000, ChainSettings.create({"trim.gain_db": trim_db})), 48000)
    assert after.integrated_lufs - before == pytest.approx(trim_db, abs=0.05)


SECTION_S = 4.0


@pytest.fixture
def dynamic(noise):
    """16 s of mono pink noise alternating 4 s at -28 dBFS and 4 s at -12 dBFS."""
    sr = 48000
    sections = [noise(sr, SECTION_S, level, 1, color="pink") for level in np.tile([-28.0, -12.0], 2)]
    return np.concatenate(sections, axis=1).astype(np.float32), sr


def _section_difference_db(y: np.ndarray, sr: int) -> float:
    """Mean level of the loud sections minus the quiet ones (0.3 s skipped at their edges)."""
    loud, quiet = [], []
    n = int(SECTION_S * sr)
    for k in range(4):
        part = y[:, k * n + int(0.3 * sr) : (k + 1) * n - int(0.3 * sr)]
        (loud if k % 2 else quiet).append(_rms_db(part))
    return float(np.mean(loud) - np.mean(quiet))


COMP = {"compressor.threshold_db": -40.0, "compressor.ratio": 4.0, "compressor.attack_ms": 2.0,
        "compressor.release_ms": 50.0, "compressor.makeup_db": 0.0}


def test_compressor_reduces_the_dynamic_range(dynamic):
    x, sr = dynamic
    comp = ChainSettings.create({**COMP, "compressor.amount_percent": 100.0}, {"compressor": True})
    y = render(x, sr, comp)
    dry_diff, wet_diff = _section_difference_db(x, sr), _section_difference_db(y, sr)
    assert dry_diff == pytest.approx(16.0, abs=0.3)
    # both sections sit above the threshold: 4:1 squeezes 16 dB towards 4 dB
    assert wet_diff < 7.0, f"loud-quiet difference only went from {dry_diff:.1f} to {wet_diff:.1f} dB"
    lra_dry = measure_loudness(x, sr).loudness_range_lu
    lra_wet = measure_loudness(y, sr).loudness_range_lu
    assert lra_dry > 12.0
    assert lra_wet < lra_dry - 6.0


def test_compressor_makeup_gain_adds_level(dynamic):
    x, sr = dynamic
    base = ChainSettings.create({**COMP, "compressor.amount_percent": 100.0}, {"compressor": True})
    plus = base.replace({"compressor.makeup_db": 6.0})
    assert _rms_db(render(x, sr, plus)) - _rms_db(render(x, sr, base)) == pytest.approx(6.0, abs=0.05)


def test_parallel_amount_zero_is_an_identity(dynamic):
    x, sr = dynamic
    comp = ChainSettings.create({**COMP, "compressor.amount_percent": 0.0}, {"compressor": True})
    np.testing.assert_allclose(render(x, sr, comp), x, rtol=0.0, atol=1e-6)


def test_parallel_amount_half_lies_between_dry_and_wet(dynamic):
    x, sr = dynamic
    full = ChainSettings.create({**COMP, "compressor.amount_percent": 100.0}, {"compressor": True})
    half = full.replace({"compressor.amount_percent": 50.0})
    wet, mixed = render(x, sr, full), render(x, sr, half)
    dry_diff, wet_diff, half_diff = (_section_difference_db(v, sr) for v in (x, wet, mixed))
    assert wet_diff + 1.0 < half_diff < dry_diff - 1.0
    # a parallel mix is literally the sum of the two halves
    np.testing.assert_allclose(mixed, 0.5 * wet + 0.5 * x, rtol=0.0, atol=1e-4)


# ---- upward expander ---------------------------------------------------------------------------
EXPAND = {"expander.threshold_db": -30.0, "expander.ratio": 1.5, "expander.attack_ms": 1.0,
          "expander.release_ms": 50.0, "expander.range_db": 12.0}


def test_expander_raises_a_steady_tone_by_ratio_minus_one_times_its_excess(sine):
    """A sine whose peaks sit 10 dB over the threshold comes out (1.5 - 1) x 10 = 5 dB louder;
    one 6 dB under it is untouched; the range caps the gain."""
    sr = 48000
    settings = ChainSettings.create({**EXPAND, "expander.release_ms": 1000.0}, {"expander": True})  # no ripple
    for peak_dbfs, gain_db in ((-20.0, 5.0), (-36.0, 0.0)):
        x = sine(1000.0, sr, 2.0, peak_dbfs, 2)
        y = render(x, sr, settings)
        steady = slice(sr // 2, None)
        assert _rms_db(y[:, steady]) - _rms_db(x[:, steady]) == pytest.approx(gain_db, abs=0.05)
    capped = settings.replace({"expander.range_db": 2.0})
    x = sine(1000.0, sr, 2.0, -20.0, 2)
    assert _rms_db(render(x, sr, capped)[:, sr // 2:]) - _rms_db(x[:, sr // 2:]) == pytest.approx(2.0, abs=0.05)


def test_expander_widens_the_dynamic_range_with_one_gain_for_both_channels(dynamic):
    x, sr = dynamic
    stereo = np.vstack([x, 0.5 * x])
    settings = ChainSettings.create({**EXPAND, "expander.threshold_db": -25.0, "expander.range_db": 18.0},
                                    {"expander": True})
    y = render(stereo, sr, settings, threads=2)
    assert _section_difference_db(y[:1], sr) > _section_difference_db(x, sr) + 6.0  # 16 dB towards 24
    np.testing.assert_allclose(y[1], 0.5 * y[0], rtol=1e-5, atol=1e-7)  # linked: the balance kept


def test_expander_streams_exactly_and_at_ratio_1_is_an_identity(dynamic):
    x, sr = dynamic
    settings = ChainSettings.create(EXPAND, {"expander": True})
    whole = render(x, sr, settings)
    renderer = ChainRenderer(settings, sr)
    parts = np.concatenate([renderer.process(b) for b in np.array_split(x, [1000, 1001, 70000, 300000], axis=1)],
                           axis=1)
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(render(x, sr, settings.replace({"expander.ratio": 1.0})), x)


# ---- reverb and stereo -------------------------------------------------------------------------
def test_reverb_wet_raises_the_tail_level(rng):
    sr = 48000
    x = np.zeros((2, 6 * sr), dtype=np.float32)
    for k in range(6):  # a dry 10 ms noise burst every second
        i = k * sr + sr // 4
        x[:, i : i + sr // 100] = 0.5 * rng.standard_normal((2, sr // 100))
    dry = analyze(Audio(x, sr)).tail_level_db
    wet_settings = ChainSettings.create({"reverb.wet": 0.3, "reverb.room_size": 0.8, "reverb.damping": 0.3},
                                        {"reverb": True})
    y = render(x, sr, wet_settings)
    assert y.shape == x.shape
    wet = analyze(Audio(y, sr)).tail_level_db
    assert wet > dry + 6.0, f"tail level {dry:.1f} dB dry, {wet:.1f} dB with reverb"
    # wet 0 with the stage on is dry
    np.testing.assert_allclose(render(x, sr, wet_settings.replace({"reverb.wet": 0.0})), x, atol=1e-6)


def test_width_zero_makes_the_output_mono(noise):
    x = noise(48000, 3.0, -20.0, 2).astype(np.float32)  # independent channels: width 0.5
    y = render(x, 48000, ChainSettings.create({"stereo.width_percent": 0.0}))
    np.testing.assert_allclose(y[0], y[1], rtol=0.0, atol=1e-7)
    np.testing.assert_allclose(y[0], 0.5 * (x[0] + x[1]), rtol=0.0, atol=1e-6)
    assert analyze(Audio(y, 48000)).width == pytest.approx(0.0, abs=1e-6)


def test_width_200_percent_widens(noise):
    x = noise(48000, 3.0, -20.0, 2).astype(np.float32)
    before = analyze(Audio(x, 48000)).width
    after = analyze(Audio(render(x, 48000, ChainSettings.create({"stereo.width_percent": 200.0})), 48000)).width
    assert before == pytest.approx(0.5, abs=0.02)
    # side power x4: width = 4 S / (M + 4 S) = 0.8 for equal mid and side power
    assert after == pytest.approx(0.8, abs=0.02)


def test_width_keeps_the_mid_signal(noise):
    x = noise(48000, 1.0, -20.0, 2).astype(np.float32)
    y = render(x, 48000, ChainSettings.create({"stereo.width_percent": 150.0}))
    np.testing.assert_allclose(y[0] + y[1], x[0] + x[1], rtol=0.0, atol=1e-6)


def test_width_leaves_mono_alone(noise):
    x = noise(48000, 1.0, -20.0, 1).astype(np.float32)
    y = render(x, 48000, ChainSettings.create({"stereo.width_percent": 0.0}))
    assert y.shape == (1, x.shape[1])
    np.testing.assert_allclose(y, x, atol=1e-7)


# ---- shapes over rates x channels ------------------------------------------------------------
FULL_CHAIN = ChainSettings.create(
    {"trim.gain_db": 2.0, "highpass.cutoff_hz": 30.0, "low_shelf.gain_db": 3.0, "peak1.gain_db": -3.0,
     "peak2.gain_db": 2.0, "peak3.gain_db": -2.0, "peak4.gain_db": 3.0, "high_shelf.gain_db": 2.0,
     "compressor.threshold_db": -24.0, "compressor.ratio": 3.0, "reverb.wet": 0.1,
     "stereo.width_percent": 120.0},
    {"highpass": True, "compressor": True, "reverb": True})


@pytest.mark.parametrize("sample_rate", (8000, 44100, 96000, 192000))
@pytest.mark.parametrize("channels", (1, 2))
def test_output_shape_equals_input_shape(sample_rate, channels, noise):
    x = noise(sample_rate, 0.5, -20.0, channels).astype(np.float32)
    for settings in (ChainSettings.create(), FULL_CHAIN):
        y = render(x, sample_rate, settings)
        assert y.shape == x.shape
        assert y.dtype == np.float32
        assert np.isfinite(y).all()
    y = render(x, sample_rate, FULL_CHAIN)
    assert np.abs(y).max() < 4.0  # processed, not blown up
    assert not np.allclose(y, x)


# ---- the EQ response model ----------------------------------------------------------------------
EQ_CHAIN = ChainSettings.create(
    {"low_shelf.freq_hz": 100.0, "low_shelf.gain_db": 4.0, "peak1.freq_hz": 200.0, "peak1.gain_db": -5.0,
     "peak1.q": 2.0, "peak2.freq_hz": 700.0, "peak2.gain_db": 3.0, "peak2.q": 0.9, "peak3.freq_hz": 2500.0,
     "peak3.gain_db": -4.0, "peak4.freq_hz": 6000.0, "peak4.gain_db": 3.0, "peak4.q": 3.0,
     "high_shelf.freq_hz": 10000.0, "high_shelf.gain_db": -4.0, "highpass.cutoff_hz": 25.0},
    {"highpass": True})


@pytest.mark.parametrize("sample_rate", (44100, 48000))
def test_eq_band_response_agrees_with_rendered_noise(sample_rate, noise):
    x = noise(sample_rate, 6.0, -20.0, 1, color="pink").astype(np.float32)
    measured = _band_gain(EQ_CHAIN, x, sample_rate)
    predicted = eq_band_response_db(EQ_CHAIN, sample_rate, band_matrix(1 << 15, sample_rate))
    use = (CENTRES >= 63.0) & (CENTRES <= 10000.0)
    error = np.abs(measured - predicted)[use]
    worst = int(np.argmax(error))
    assert error.max() <= 0.5, (f"{CENTRES[use][worst]:.0f} Hz: predicted {predicted[use][worst]:+.2f} dB, "
                                f"measured {measured[use][worst]:+.2f} dB")
    assert np.ptp(predicted[use]) > 6.0  # the chain really does something


def test_eq_band_response_ignores_the_other_stages():
    bands = band_matrix(1 << 15, 48000)
    busy = EQ_CHAIN.replace({"trim.gain_db": 6.0, "reverb.wet": 0.5, "compressor.threshold_db": -50.0,
                             "stereo.width_percent": 0.0}, {"compressor": True, "reverb": True})
    np.testing.assert_allclose(eq_band_response_db(busy, 48000, bands),
                               eq_band_response_db(EQ_CHAIN, 48000, bands), atol=1e-9)


def test_eq_band_response_of_a_neutral_chain_is_flat():
    response = eq_band_response_db(ChainSettings.create(), 48000, band_matrix(1 << 15, 48000))
    np.testing.assert_allclose(response[CENTRES <= 20000.0], 0.0, atol=1e-3)


# ---- match EQ ---------------------------------------------------------------------------------
def _match_eq(gains_db) -> ChainSettings:
    return ChainSettings.create(dict(zip(MATCH_EQ_PARAMS, (float(g) for g in gains_db))), {"match_eq": True})


def test_match_eq_band_at_plus_6_db_measures_plus_6_db(pink):
    gains = np.zeros(len(CENTRES))
    gains[I_1K] = 6.0
    gain = _band_gain(_match_eq(gains), pink, 48000)
    assert gain[I_1K] == pytest.approx(6.0, abs=0.3)
    assert np.argmax(gain) == I_1K
    assert np.all(np.abs(np.delete(gain, [I_1K - 1, I_1K, I_1K + 1])) < 0.3)  # only its neighbours' skirts move


@pytest.mark.parametrize("sample_rate", (8000, 44100, 192000))
def test_match_eq_curve_measures_its_band_settings(sample_rate, noise):
    """A broad curve (a tilt with a low-mid bump), as the match sets them: every band the rate
    holds measures its setting, within 0.5 dB on pink noise."""
    x = noise(sample_rate, 6.0, -20.0, 2, color="pink").astype(np.float32)
    octaves = np.log2(CENTRES / 1000.0)
    gains = np.round(-1.2 * octaves + 3.0 * np.exp(-((octaves + 2.5) ** 2)), 1)
    gain = _band_gain(_match_eq(gains), x, sample_rate)
    held = held_bands(sample_rate) & (CENTRES >= 25.0)  # the 20 Hz band's FFT bins are too few on 6 s
    np.testing.assert_allclose(gain[held], gains[held], atol=0.5)


def test_match_eq_is_minimum_phase_and_streams_exactly(noise):
    """No latency, no pre-ringing: an impulse's response starts at once and peaks at once;
    block by block equals the whole signal."""
    settings = _match_eq(np.linspace(-4.0, 4.0, len(CENTRES)))
    impulse = np.zeros((1, 48000), np.float32)
    impulse[0, 100] = 1.0
    y = render(impulse, 48000, settings)[0]
    assert np.max(np.abs(y[:100])) < 1e-6 and np.argmax(np.abs(y)) <= 103
    x = noise(48000, 2.0, -20.0, 2).astype(np.float32)
    whole = render(x, 48000, settings)
    renderer = ChainRenderer(settings, 48000)
    edges = [0, 1, 700, 20000, 90001, x.shape[1]]
    parts = [renderer.process(x[:, a:b]) for a, b in zip(edges, edges[1:])]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=0.0, atol=1e-6)


def test_match_eq_at_0_db_or_off_is_an_identity(noise):
    x = noise(44100, 1.0, -12.0, 2).astype(np.float32)
    np.testing.assert_allclose(render(x, 44100, _match_eq(np.zeros(len(CENTRES)))), x, rtol=0.0, atol=1e-6)
    off = _match_eq(np.full(len(CENTRES), 6.0)).replace(enabled={"match_eq": False})
    np.testing.assert_array_equal(render(x, 44100, off), x)


def test_match_eq_response_is_measured_through_the_renderer():
    """The judgment's response measurement includes the match EQ (so its loop sees it)."""
    gains = np.zeros(len(CENTRES))
    gains[I_1K - 3: I_1K + 4] = 3.0
    response = eq_band_response_db(_match_eq(gains), 48000, band_matrix(1 << 15, 48000))
    assert response[I_1K] == pytest.approx(3.0, abs=0.1)
    assert abs(response[2]) < 0.05 and abs(response[-2]) < 0.05
