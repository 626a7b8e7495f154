"""Foreign degradations for training (models.foreign): known answers on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.spectrum import band_matrix, shape_mask
from mixbridge.effects.response import eq_band_response_db
from mixbridge.effects.schema import EQ_STAGES, ChainSettings
from mixbridge.models.baseline import EQ_LAYOUT, RESPONSE_FFT, eq_values
from mixbridge.models.data import DRAW_RANGES, EQ_DRAW_DB, LEARNED, foreign_examples
from mixbridge.models.foreign import (
    CURVE_NODES_HZ,
    FAMILIES,
    apply_curve,
    curve_band_db,
    curve_db,
    degrade,
    inverse_eq_gains,
)

SR = 44100


def _sine(freq_hz: float, seconds: float = 1.0, amplitude: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    tone = (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.stack([tone, tone])


def _noise(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mid = rng.standard_normal(int(seconds * SR)) * 0.1
    side = rng.standard_normal(int(seconds * SR)) * 0.03
    return np.stack([mid + side, mid - side]).astype(np.float32)


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_curve_passes_through_its_nodes_and_is_flat_beyond():
    nodes = np.linspace(-6.0, 6.0, CURVE_NODES_HZ.size)
    assert np.allclose(curve_db(CURVE_NODES_HZ, nodes), nodes)
    assert curve_db(np.array([10.0]), nodes)[0] == pytest.approx(nodes[0])
    assert curve_db(np.array([20000.0]), nodes)[0] == pytest.approx(nodes[-1])


def test_a_flat_curve_changes_nothing_and_a_node_gain_is_what_a_sine_there_gets():
    x = _sine(1000.0)
    assert np.allclose(apply_curve(x, SR, np.zeros(CURVE_NODES_HZ.size)), x, atol=1e-5)
    node = int(np.argmin(np.abs(CURVE_NODES_HZ - 1000.0)))
    gains = np.zeros(CURVE_NODES_HZ.size)
    gains[node] = 6.0
    at_node = _sine(float(CURVE_NODES_HZ[node]))
    assert _rms_db(apply_curve(at_node, SR, gains)) - _rms_db(at_node) == pytest.approx(6.0, abs=0.05)


@pytest.mark.parametrize("nodes, kept", [(np.linspace(-5.0, 5.0, 7), 0.25),  # a tilt: undone nearly whole
                                         (np.array([5.0, -3.0, 2.0, -4.0, 3.0, -2.0, 4.0]), 0.75)])  # a zig-zag
def test_the_inverse_eq_undoes_the_curve_as_far_as_six_bands_can(nodes, kept):
    mask = shape_mask(SR)
    curve = curve_band_db(SR, nodes)
    gains = inverse_eq_gains(SR, nodes, EQ_DRAW_DB)
    eq = ChainSettings.create(eq_values({k.split(".")[0]: v for k, v in gains.items()}, EQ_LAYOUT),
                              {s: True for s in EQ_STAGES})
    left = curve + eq_band_response_db(eq, SR, band_matrix(RESPONSE_FFT, SR))
    spread = lambda d: float(np.std(d[mask]))  # noqa: E731 - the level is free
    assert spread(left) < kept * spread(curve)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_degrades_finite_audio_of_the_same_shape(family):
    x = _noise()
    y, undo, said = degrade(x, SR, np.random.default_rng(1), family, EQ_DRAW_DB)
    assert y.shape == x.shape and np.isfinite(y).all() and said
    assert set(undo) == {f"{s}.gain_db" for s in EQ_STAGES} | {"stereo.width_percent"}
    assert not np.allclose(y, x)


def test_the_dynamics_family_compresses_and_the_width_label_undoes_the_side_gain():
    rng = np.random.default_rng(3)
    t = np.arange(4 * SR) / SR
    bursts = (np.sin(2 * np.pi * 2 * t) > 0.6) * 0.5 + 0.02  # loud bursts over a quiet bed
    x = np.stack([_noise()[0] * bursts, _noise(seed=1)[0] * bursts]).astype(np.float32)
    y, undo, said = degrade(x, SR, rng, "dynamics", EQ_DRAW_DB)
    loud = bursts > 0.1

    def contrast_db(a: np.ndarray) -> float:  # the bursts' level over the bed's
        return _rms_db(a[:, loud]) - _rms_db(a[:, ~loud])

    assert contrast_db(y) < contrast_db(x) - 3.0, said
    y, undo, said = degrade(_noise(), SR, np.random.default_rng(5), "space", EQ_DRAW_DB)
    gain = float(said.split("side gain ")[1])
    assert undo["stereo.width_percent"] == pytest.approx(100.0 / gain, rel=0.01)


def test_foreign_examples_target_the_original_with_the_compressor_and_reverb_off():
    x = _noise(6.0)
    examples = list(foreign_examples(x, SR, "noise", 7, 3, lambda s, r: analyze(Audio(s, r))))
    assert len(examples) == 3
    for e in examples:
        assert set(e.values) == set(LEARNED)
        assert e.values["compressor.ratio"] == 1.0 and e.values["reverb.wet"] == 0.0
        for name, value in e.values.items():
            assert DRAW_RANGES[name][0] <= value <= DRAW_RANGES[name][1]
        assert e.features_y.integrated_lufs == pytest.approx(examples[0].features_y.integrated_lufs)


def test_silence_gives_no_foreign_example():
    silent = np.zeros((2, SR * 2), np.float32)
    assert list(foreign_examples(silent, SR, "silence", 0, 3, lambda s, r: analyze(Audio(s, r)))) == []


def test_the_dataset_adds_foreign_examples_for_real_recordings_only(tmp_path):
    import soundfile as sf

    from mixbridge.models.train import build_dataset

    real = tmp_path / "real.wav"
    score = tmp_path / "score-clips" / "synth.wav"
    score.parent.mkdir()
    for path in (real, score):
        sf.write(path, _noise(3.0).T, SR, subtype="PCM_24")
    data = build_dataset([real, score], variants=1, jobs=1, foreign_variants=2)
    sources = sorted(data.source)
    assert sources == sorted([str(real), f"{real} (foreign)", f"{real} (foreign)", str(score)])
    foreign = [v for v, s in zip(data.values, data.source) if s.endswith("(foreign)")]
    assert all(v["compressor.ratio"] == 1.0 and v["reverb.wet"] == 0.0 for v in foreign)
