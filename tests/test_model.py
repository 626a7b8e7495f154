"""The learned model: numpy inference equals torch, weights round-trip, no torch on the master path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mixbridge.models.data import LEARNED, draw_learned, learned_values, settings_from_learned
from mixbridge.models.net import SettingsModel, denormalise_values, input_names, normalise_values


@pytest.fixture(scope="module")
def torch():
    """torch, for the tests of training and of numpy inference against torch; the tests of the
    default engine and of the master path run without it."""
    return pytest.importorskip("torch", reason="torch (the train extra) is not installed")


@pytest.fixture(scope="module")
def tiny_model(torch):
    from mixbridge.models.net import train_torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, len(input_names())))
    y = 1 / (1 + np.exp(-x[:, : len(LEARNED)]))
    model, history = train_torch(x, y, hidden=32, depth=3, epochs=15, seed=0)
    return model, history, x


def _torch_forward(torch, model: SettingsModel, x: np.ndarray) -> np.ndarray:
    layers = []
    for i, (w, b) in enumerate(model.layers):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w, dtype=torch.float64))
            lin.bias.copy_(torch.tensor(b, dtype=torch.float64))
        layers.append(lin.double())
        if i < len(model.layers) - 1:
            layers.append(torch.nn.SiLU())
    net = torch.nn.Sequential(*layers)
    z = torch.tensor((np.clip(x, model.input_low, model.input_high) - model.mean) / model.scale,
                     dtype=torch.float64)
    with torch.no_grad():
        return torch.sigmoid(net(z)).numpy()


def test_numpy_inference_equals_torch(tiny_model, torch):
    model, _, x = tiny_model
    assert np.max(np.abs(model.predict_unit(x) - _torch_forward(torch, model, x))) < 1e-5


def test_training_reduces_the_loss(tiny_model):
    _, history, _ = tiny_model
    assert history["val"][-1] < history["val"][0]


def test_weights_round_trip(tiny_model, tmp_path):
    model, _, x = tiny_model
    path = model.save(tmp_path / "m.npz")
    again = SettingsModel.load(path)
    assert np.allclose(again.predict_unit(x), model.predict_unit(x), atol=1e-6)


def test_weights_for_another_layout_are_refused(tiny_model, tmp_path):
    model, _, _ = tiny_model
    with pytest.raises(ValueError, match="layout"):
        SettingsModel(model.layers, model.mean, model.scale, {**model.meta, "outputs": ["x"]})


def test_normalisation_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        values = draw_learned(rng)
        back = denormalise_values(normalise_values(values))
        for name in LEARNED:
            assert back[name] == pytest.approx(values[name], abs=1e-9)


def test_learned_values_round_trip_through_settings():
    rng = np.random.default_rng(4)
    for _ in range(20):
        values = draw_learned(rng)
        again = learned_values(settings_from_learned(values, -20.0))
        for name in LEARNED:
            assert again[name] == pytest.approx(values[name], abs=1e-6)


def test_master_path_does_not_import_torch():
    code = ("import sys, mixbridge.assistant.cli, mixbridge.assistant.master, mixbridge.models.predict, mixbridge.models.net; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_target_descriptor_is_what_a_profile_holds():
    from mixbridge.assistant.targets import PROFILE_SCALARS
    from mixbridge.models.net import DESCRIPTOR

    assert DESCRIPTOR == PROFILE_SCALARS


def test_default_engine_restores_a_damaged_example_toward_its_reference(tmp_path):
    from pathlib import Path

    import soundfile as sf

    from mixbridge.analysis.analyze import analyze_file
    from mixbridge.analysis.audio import load
    from mixbridge.assistant.master import master_file, resolve_target
    from mixbridge.effects.render import render
    from mixbridge.effects.schema import ChainSettings

    example = Path(__file__).resolve().parent.parent / "examples" / "groove.flac"
    original = load(example)
    damage = ChainSettings.create({"low_shelf.gain_db": -5.0, "high_shelf.gain_db": 5.0,
                                   "high_shelf.freq_hz": 5000.0})
    damaged = tmp_path / "damaged.wav"
    sf.write(str(damaged), render(original.samples, original.sample_rate, damage).T, original.sample_rate,
             subtype="FLOAT")
    target = resolve_target("spotify", references=[str(example)])
    report = master_file(damaged, tmp_path / "out.wav", target)  # engine model, refinement on
    assert report.engine == "model"
    written = analyze_file(tmp_path / "out.wav")
    assert abs(written.integrated_lufs - target.lufs) <= 0.1
    assert written.true_peak_dbtp <= target.ceiling_dbtp
    assert report.tonal_error_after_db < report.tonal_error_before_db - 0.5


def _noise(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, int(seconds * sample_rate))) * 0.1


def test_mrstft_distance_is_the_stft_loss_deepafx_st_reports(torch):
    """At 24 kHz the distance equals auraloss's definition written with torch.stft: centred
    frames, periodic Hann, hop half the window, power clamped at 1e-8, log + linear magnitude L1."""
    from mixbridge.models.evaluate import MRSTFT_SIZES, _unit_mono, mrstft_distance

    a = _noise(3.0, 24000, 1)
    b = a + 0.3 * np.roll(a, 240, axis=1)  # an echo
    x, y = (torch.tensor(_unit_mono(s)) for s in (a, b))
    expected = 0.0
    for n in MRSTFT_SIZES:
        mx, my = (torch.sqrt(torch.clamp(torch.stft(s, n, n // 2, n, torch.hann_window(n, dtype=torch.float64),
                                                    return_complex=True).abs() ** 2, min=1e-8)) for s in (x, y))
        expected += float((torch.log(mx) - torch.log(my)).abs().mean() + (mx - my).abs().mean())
    assert mrstft_distance(a, b, 24000) == pytest.approx(expected / len(MRSTFT_SIZES), rel=1e-9)


def test_mrstft_distance_measures_sound_below_12_khz_and_not_level():
    from scipy.signal import butter, resample_poly, sosfilt

    from mixbridge.models.evaluate import mrstft_distance, mrstft_fullband_distance

    rate = 48000
    music = sosfilt(butter(8, 10000, fs=rate, output="sos"), _noise(4.0, rate), axis=1)  # band-limited
    assert mrstft_distance(music, 3.0 * music, rate) == pytest.approx(0.0, abs=1e-9)
    hiss = sosfilt(butter(8, 16000, "highpass", fs=rate, output="sos"), _noise(4.0, rate, 2), axis=1)
    hissy = music + 1e-3 * hiss  # 60 dB under the music, above 16 kHz where it has nothing
    assert mrstft_distance(hissy, music, rate) < 1e-3
    assert mrstft_fullband_distance(hissy, music) > 1.0  # the earlier definition counts it
    dull = music + 0.05 * np.cumsum(music, axis=1)  # a tilt below 12 kHz
    assert mrstft_distance(dull, music, rate) > 0.1
    # the same pair at 44.1 kHz reads alike: both rates are measured at 24 kHz
    at_44k = [resample_poly(x, 147, 160, axis=1) for x in (dull, music)]
    assert mrstft_distance(*at_44k, 44100) == pytest.approx(mrstft_distance(dull, music, rate), rel=0.05)
