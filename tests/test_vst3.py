"""VST3 bridge: exact parameters, presets, dual-mono, scanning, plugin maps, and the ZAM map.

Exact-setting and preset tests run on a fixture plugin built from Debian's dpf-source with g++
(tests/vst3_fixture.py); the map tests run on the real ZAM plugins that .ci/setup.sh installs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import vst3_fixture

from mixbridge.analysis.errors import InputNotFoundError, InvalidAudioError, SettingsError
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_matrix, shape_mask
from mixbridge.effects import vst3
from mixbridge.effects.plugins import PluginChainRenderer, export_presets, load_map
from mixbridge.effects.render import render
from mixbridge.effects.schema import MATCH_EQ_PARAMS, ChainSettings
from mixbridge.effects.vst3 import HostedPlugin, PluginError, read_preset_header, scan

ZAM_DIR = Path("/usr/lib/vst3")
needs_dpf = pytest.mark.skipif(vst3_fixture.missing_tools() is not None,
                               reason=f"cannot build the fixture plugin: {vst3_fixture.missing_tools()}")
needs_zam = pytest.mark.skipif(not (ZAM_DIR / "ZamEQ2.vst3").exists() or not (ZAM_DIR / "ZamCompX2.vst3").exists(),
                               reason="zam-plugins is not installed (apt install zam-plugins; .ci/setup.sh does this)")


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory) -> Path:
    if vst3_fixture.missing_tools():
        pytest.skip(vst3_fixture.missing_tools())
    root = tmp_path_factory.mktemp("vst3")
    vst3_fixture.build(root, channels=2)
    vst3_fixture.build(root, channels=1)
    return root


@pytest.fixture
def stereo_bundle(fixture_dir) -> Path:
    return next(fixture_dir.rglob("MixbridgeFixture.vst3"))


@pytest.fixture
def mono_bundle(fixture_dir) -> Path:
    return next(fixture_dir.rglob("MixbridgeFixtureMono.vst3"))


def _music(seconds: float = 6.0, sample_rate: int = 44100, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    beat = np.exp(-((t * 2.0) % 1.0) * 12.0)
    x = (0.25 * np.sin(2 * np.pi * 55 * t) * beat + 0.1 * np.sin(2 * np.pi * 440 * t)
         + 0.05 * rng.standard_normal((2, t.size)) * beat)
    return x.astype(np.float32)


# ---- exact values, processing, presets (fixture plugin) ---------------------------------------

@needs_dpf
def test_values_are_set_exactly_not_on_pedalboards_grid(stereo_bundle):
    plugin = HostedPlugin(stereo_bundle)
    asked = {"gain_db": 3.3, "tone_hz": 1234.5678, "steps": 7, "invert": 1}
    got = plugin.set_values(asked)
    assert got["gain_db"] == pytest.approx(3.3, abs=1e-4)
    assert got["tone_hz"] == pytest.approx(1234.5678, abs=1e-3)  # the 1000-step grid gives 1236.26
    assert (got["steps"], got["invert"]) == (7.0, 1.0)


@needs_dpf
def test_processing_applies_the_exact_gain(stereo_bundle):
    plugin = HostedPlugin(stereo_bundle)
    plugin.set_values({"gain_db": -7.25})
    x = _music(1.0)
    y = plugin.process(x, 44100)
    np.testing.assert_allclose(y, x * 10 ** (-7.25 / 20), rtol=2e-5, atol=1e-7)


@needs_dpf
def test_preset_round_trip_restores_every_value(stereo_bundle, tmp_path):
    plugin = HostedPlugin(stereo_bundle)
    plugin.set_values({"gain_db": -11.125, "tone_hz": 87.5, "steps": 2, "invert": 1})
    path = plugin.save_preset(tmp_path / "fixture.vstpreset")  # the state lags until a block is processed
    fresh = HostedPlugin(stereo_bundle)
    assert fresh.raw_values() != plugin.raw_values()
    fresh.load_preset(path)
    assert fresh.raw_values() == plugin.raw_values()
    assert fresh.value("tone_hz") == pytest.approx(87.5, abs=1e-3)
    header = read_preset_header(path.read_bytes())
    assert header.class_id == plugin.class_id and {c[0] for c in header.chunks} >= {"Comp"}


@needs_dpf
def test_preset_of_another_plugin_is_refused(stereo_bundle, mono_bundle, tmp_path):
    path = HostedPlugin(stereo_bundle).save_preset(tmp_path / "stereo.vstpreset")
    with pytest.raises(PluginError, match="preset for another plugin"):
        HostedPlugin(mono_bundle).load_preset(path)


@needs_dpf
@pytest.mark.parametrize("damage, message", [(lambda d: d[:60], "truncated"),
                                             (lambda d: d[:30], "truncated"),
                                             (lambda d: b"RIFF" + d[4:], "not a VST3 preset")])
def test_truncated_or_foreign_preset_is_refused(stereo_bundle, tmp_path, damage, message):
    plugin = HostedPlugin(stereo_bundle)
    path = tmp_path / "bad.vstpreset"
    path.write_bytes(damage(plugin.preset_bytes()))
    with pytest.raises(PluginError, match=message):
        plugin.load_preset(path)
    with pytest.raises(InputNotFoundError):
        plugin.load_preset(tmp_path / "missing.vstpreset")


@needs_dpf
def test_unknown_parameter_lists_the_valid_names_and_range_is_checked(stereo_bundle):
    plugin = HostedPlugin(stereo_bundle)
    with pytest.raises(PluginError, match="no parameter 'volume_db'.*gain_db.*tone_hz"):
        plugin.set_values({"volume_db": 1.0})
    with pytest.raises(PluginError, match="outside its range"):
        plugin.set_values({"gain_db": 30.0})


@needs_dpf
def test_mono_only_plugin_on_stereo_audio(mono_bundle):
    x = _music(0.5)
    with pytest.raises(InvalidAudioError, match="mono-only.*dual-mono"):
        HostedPlugin(mono_bundle).process(x, 44100)
    dual = HostedPlugin(mono_bundle, dual_mono=True)
    assert dual.channels == 1
    dual.set_values({"gain_db": 6.0})
    y = dual.process(x, 44100)
    np.testing.assert_allclose(y, x * 10 ** (6 / 20), rtol=2e-5, atol=1e-7)  # each side its own channel


def test_bad_plugin_paths(tmp_path):
    with pytest.raises(InputNotFoundError, match="plugin not found"):
        HostedPlugin(tmp_path / "Nothing.vst3")
    text = tmp_path / "readme.txt"
    text.write_text("not a plugin")
    with pytest.raises(PluginError, match="not a VST3 plugin"):
        HostedPlugin(text)
    fake = tmp_path / "Broken.vst3" / "Contents" / "x86_64-linux"
    fake.mkdir(parents=True)
    (fake / "Broken.so").write_bytes(b"\x7fELF garbage")
    with pytest.raises(PluginError, match="failed to load"):
        HostedPlugin(tmp_path / "Broken.vst3")


# ---- scanning ---------------------------------------------------------------------------------

@needs_dpf
def test_scan_lists_parameters_caches_and_records_failures(fixture_dir, tmp_path, monkeypatch):
    broken = tmp_path / "extra" / "Broken.vst3" / "Contents" / "x86_64-linux"
    broken.mkdir(parents=True)
    (broken / "Broken.so").write_bytes(b"not a shared object")
    plugins, failures = scan([fixture_dir, tmp_path / "extra"], system=False)
    names = {p.name: p for p in plugins}
    assert set(names) == {"MixbridgeFixture", "MixbridgeFixtureMono"}
    gain = next(p for p in names["MixbridgeFixture"].params if p.name == "gain_db")
    assert (gain.min_value, gain.max_value, gain.unit) == (-24.0, 24.0, "dB")
    assert names["MixbridgeFixtureMono"].channels == 1
    assert len(failures) == 1 and "Broken.vst3" in next(iter(failures))

    def no_loading(*args, **kwargs):
        raise AssertionError("a cached bundle was loaded again")

    monkeypatch.setattr(vst3, "_describe_in_child", no_loading)
    again, failures_again = scan([fixture_dir, tmp_path / "extra"], system=False)
    assert [p.to_dict() for p in again] == [p.to_dict() for p in plugins] and failures_again == failures
    with pytest.raises(InputNotFoundError):
        scan([tmp_path / "missing"], system=False)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(PluginError, match="not a VST3 bundle"):
        scan([tmp_path / "file.txt"], system=False)


@needs_dpf
def test_cli_plugins_scan_json(fixture_dir, capsys):
    from mixbridge.assistant.cli import main

    assert main(["plugins", "scan", str(fixture_dir), "--no-system", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {p["name"] for p in data["plugins"]} == {"MixbridgeFixture", "MixbridgeFixtureMono"}


# ---- plugin maps ------------------------------------------------------------------------------

def _write_map(tmp_path: Path, body: str, version: int = 1) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(f"schema_version = {version}\nname = \"test\"\n" + body)
    return path


TRIM_MAP = """
[[insert]]
name = "Trim"
plugin = "MixbridgeFixture"
stages = ["trim"]
fixed = { invert = 0.0 }
[insert.params]
gain_db = { from = "trim.gain_db", off = 0.0 }
"""


@needs_dpf
def test_map_renders_through_the_plugin_like_the_built_in(stereo_bundle, tmp_path):
    plugin_map = load_map(str(_write_map(tmp_path, TRIM_MAP)))
    settings = ChainSettings.create({"trim.gain_db": -4.5, "peak2.gain_db": 3.0})
    x = _music(2.0)
    renderer = PluginChainRenderer(settings, 44100, plugin_map, x, dirs=[stereo_bundle.parent])
    blocks = [renderer.process(x[:, i:i + 10000]) for i in range(0, x.shape[1], 10000)]
    np.testing.assert_allclose(np.concatenate(blocks, axis=1), render(x, 44100, settings), atol=2e-6)
    assert "built-in" in renderer.describe()[1]


@needs_dpf
def test_map_naming_a_missing_parameter_lists_valid_names(stereo_bundle, tmp_path):
    plugin_map = load_map(str(_write_map(tmp_path, TRIM_MAP.replace("gain_db = {", "volume_db = {"))))
    with pytest.raises(PluginError, match="no parameter 'volume_db'.*valid: gain_db"):
        PluginChainRenderer(ChainSettings.create({"trim.gain_db": 1.0}), 44100, plugin_map,
                            dirs=[stereo_bundle.parent])


@pytest.mark.parametrize("body, version, message", [
    (TRIM_MAP, 2, "schema_version 2"),
    (TRIM_MAP.replace('stages = ["trim"]', 'stages = ["tape"]'), 1, "unknown stage"),
    (TRIM_MAP.replace('"trim.gain_db"', '"trim.level_db"'), 1, "unknown parameter"),
    (TRIM_MAP.replace('stages = ["trim"]', 'stages = ["trim", "reverb"]'), 1, "spans the expander, compressor"),
    (TRIM_MAP + 'layout = "surround"\n', 1, "malformed|layout"),
])
def test_bad_maps_are_refused(tmp_path, body, version, message):
    with pytest.raises(SettingsError, match=message):
        load_map(str(_write_map(tmp_path, body, version)))
    with pytest.raises(SettingsError, match="unknown plugin map"):
        load_map("no-such-map")


def test_a_map_plugin_that_is_not_installed(tmp_path):
    plugin_map = load_map(str(_write_map(tmp_path, TRIM_MAP.replace("MixbridgeFixture", "NoSuchPlugin"))))
    with pytest.raises(PluginError, match="NoSuchPlugin.vst3 not found"):
        PluginChainRenderer(ChainSettings.create({"trim.gain_db": 1.0}), 44100, plugin_map, dirs=[tmp_path])


# ---- the shipped ZAM map on the real plugins ----------------------------------------------------

EQ_COMP = ChainSettings.create(
    {"trim.gain_db": -1.0, "low_shelf.gain_db": 3.0, "low_shelf.freq_hz": 120.0, "peak1.gain_db": -2.5,
     "peak1.freq_hz": 300.0, "peak1.q": 1.2, "peak2.gain_db": 1.5, "peak2.freq_hz": 900.0, "peak3.gain_db": 2.0,
     "peak3.freq_hz": 3000.0, "peak3.q": 0.7, "peak4.gain_db": -3.0, "peak4.freq_hz": 8000.0, "peak4.q": 2.0,
     "high_shelf.gain_db": 2.5, "high_shelf.freq_hz": 9000.0, "compressor.threshold_db": -24.0,
     "compressor.ratio": 3.0, "compressor.attack_ms": 10.0, "compressor.release_ms": 150.0,
     "compressor.makeup_db": 2.0}, {"compressor": True})


@needs_zam
def test_zam_chain_matches_the_built_in_render():
    from mixbridge.analysis.audio import Audio
    from mixbridge.assistant.bridge import render_match

    # music-like material with energy in every band (pink noise under the tones and beat): in
    # empty bands the two compressors' different distortion products would dominate the figure
    rng = np.random.default_rng(3)
    white = np.fft.rfft(rng.standard_normal((2, 8 * 44100)), axis=1)
    pink = np.fft.irfft(white / np.sqrt(np.maximum(np.arange(white.shape[1]), 1)), 8 * 44100, axis=1)
    excerpt = Audio((_music(8.0) + 0.05 * pink / pink.std()).astype(np.float32), 44100, "music")
    renderer = PluginChainRenderer(EQ_COMP, 44100, load_map("zam"), excerpt.samples)
    match = render_match(renderer, EQ_COMP, excerpt)
    assert match["band_difference_db"]["mean_abs"] <= 0.5
    assert abs(match["lufs_difference_lu"]) <= 0.2
    assert [s.insert.plugin.name for s in renderer.steps if s.insert] == ["ZamEQ2", "ZamEQ2", "ZamCompX2"]


@needs_zam
def test_zam_presets_load_back_with_every_mapped_value(tmp_path):
    x = _music(6.0)
    renderer = PluginChainRenderer(EQ_COMP, 44100, load_map("zam"), x)
    written = export_presets(renderer, EQ_COMP, tmp_path, 44100, gain_db=7.5, ceiling_dbtp=-1.0)
    assert [p.name for p in written] == ["01-ZamEQ2.vstpreset", "02-ZamEQ2.vstpreset", "03-ZamCompX2.vstpreset",
                                         "05-ZaMaximX2.vstpreset", "INSERTS.txt"]
    # ceiling 0.5 dB under -1 dBTP and 7.5 dB of gain into it. ZaMaximX2 applies a loaded preset
    # but does not report the values back to the host, so check what it does: a -30 dBFS sine
    # comes out 7.5 dB louder, and a loud one is held at the ceiling
    limiter = HostedPlugin(ZAM_DIR / "ZaMaximX2.vst3")
    limiter.load_preset(written[3])
    t = np.arange(48000) / 48000
    quiet = np.repeat(10 ** (-30 / 20) * np.sin(2 * np.pi * 440 * t)[None], 2, axis=0)
    peak_db = 20 * np.log10(np.abs(limiter.process(quiet, 48000)[:, 24000:]).max())
    assert peak_db == pytest.approx(-22.5, abs=0.05)
    peak_db = 20 * np.log10(np.abs(limiter.process(quiet * 100, 48000)[:, 24000:]).max())
    assert peak_db == pytest.approx(-1.5, abs=0.1)
    for step, path in zip([s for s in renderer.steps if s.insert], written):
        fresh = HostedPlugin(step.insert.plugin.path)
        fresh.load_preset(path)
        for name, value in step.insert.values.items():  # equal at float32 normalised precision
            p = fresh.param(name)
            tolerance = vst3.VALUE_TOLERANCE * (p.max_value - p.min_value)
            assert fresh.value(name) == pytest.approx(value, abs=tolerance), (path.name, name)
    order = (tmp_path / "INSERTS.txt").read_text()
    assert order.index("01-ZamEQ2") < order.index("02-ZamEQ2") < order.index("03-ZamCompX2") < order.index(
        "4. stereo width") < order.index("05-ZaMaximX2")


@needs_zam
def test_cli_master_and_suggest_with_zam_plugins(tmp_path, write_audio):
    from mixbridge.assistant.cli import main

    src = write_audio("mix.wav", _music(6.0), 44100)
    report = tmp_path / "report.json"
    assert main(["master", str(src), "-o", str(tmp_path / "out.wav"), "--engine", "dsp", "--no-refine",
                 "--plugins", "zam", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["plugins"]["map"] == "zam" and abs(data["plugins"]["match"]["lufs_difference_lu"]) <= 0.2
    assert data["output"]["features"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.1)
    assert main(["suggest", str(src), "--engine", "dsp", "--no-refine", "-o", str(tmp_path / "chain.json"),
                 "--plugins", "zam", "--export-presets", str(tmp_path / "presets")]) == 0
    assert ChainSettings.load(tmp_path / "chain.json").is_on("low_shelf")
    assert (tmp_path / "presets" / "INSERTS.txt").exists()


@needs_zam
@pytest.mark.parametrize("sample_rate, channels", [(44100, 1), (8000, 2), (192000, 2)])
def test_zam_chain_on_mono_and_extreme_rates(sample_rate, channels):
    x = _music(2.0, sample_rate)[:channels]
    renderer = PluginChainRenderer(EQ_COMP, sample_rate, load_map("zam"), x)
    y = renderer.process(x)
    assert y.shape == x.shape and np.isfinite(y).all() and 0.05 < np.abs(y).max() < 4.0


# ---- plugins learn ----------------------------------------------------------------------------

@needs_zam
def test_learn_measures_zameq2s_band_and_the_draft_map_renders(tmp_path):
    from mixbridge.assistant.cli import main

    draft = tmp_path / "draft.toml"
    assert main(["plugins", "learn", str(ZAM_DIR / "ZamEQ2.vst3"), "--stage", "peak2", "--gain", "boost_cut_2_db",
                 "--freq", "frequency_2_hz", "--width", "bandwidth_2", "-o", str(draft)]) == 0
    plugin_map = load_map(str(draft))
    (insert,) = plugin_map.inserts
    by_param = {m.param: m for m in insert.params}
    assert not by_param["boost_cut_2_db"].table and not by_param["frequency_2_hz"].table  # same units, measured
    widths = dict(by_param["bandwidth_2"].table)  # ZamEQ2's width is not the RBJ octave bandwidth
    assert widths[1.0] == pytest.approx(3.14, abs=0.05) and widths[8.0] == pytest.approx(1.245, abs=0.05)
    settings = ChainSettings.create({"peak2.gain_db": 4.0, "peak2.freq_hz": 800.0, "peak2.q": 2.0})
    x = _music(2.0)
    renderer = PluginChainRenderer(settings, 44100, plugin_map, x)
    np.testing.assert_allclose(renderer.process(x), render(x, 44100, settings), atol=0.02)


@needs_dpf
def test_learn_refuses_a_parameter_that_does_not_shape_the_response(stereo_bundle):
    import tomllib

    from mixbridge.effects.plugins.learn import learn_eq_stage

    text, (gain,) = learn_eq_stage(stereo_bundle, "trim", "gain_db")
    (insert,) = tomllib.loads(text)["insert"]
    assert gain.identity and insert["params"]["gain_db"] == {"from": "trim.gain_db", "off": 0.0}
    with pytest.raises(PluginError, match="does not move the response"):
        learn_eq_stage(stereo_bundle, "peak1", "gain_db", "tone_hz")
    with pytest.raises(PluginError, match="no parameter 'freq'.*gain_db"):
        learn_eq_stage(stereo_bundle, "peak1", "gain_db", "freq")
    with pytest.raises(PluginError, match="learn handles"):
        learn_eq_stage(stereo_bundle, "compressor", "gain_db")


@needs_zam
def test_zam_parallel_compression_matches_the_built_in():
    from mixbridge.analysis.audio import Audio
    from mixbridge.assistant.bridge import render_match

    settings = EQ_COMP.replace({"compressor.amount_percent": 40.0, "compressor.threshold_db": -30.0})
    rng = np.random.default_rng(4)
    x = (_music(6.0) + 0.03 * rng.standard_normal((2, 6 * 44100))).astype(np.float32)
    renderer = PluginChainRenderer(settings, 44100, load_map("zam"), x)
    match = render_match(renderer, settings, Audio(x, 44100, "music"))
    assert abs(match["lufs_difference_lu"]) <= 0.2 and match["band_difference_db"]["mean_abs"] <= 0.5


def _pinkish(seconds: float, seed: int, sample_rate: int = 44100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    white = np.fft.rfft(rng.standard_normal((2, n)), axis=1)
    pink = np.fft.irfft(white / np.sqrt(np.maximum(np.arange(white.shape[1]), 1)), n, axis=1)
    return pink / pink.std()


@needs_zam
def test_zam_chain_calibrated_on_the_excerpt_matches_the_whole_song():
    """The compressor is calibrated (and the EQ fitted) on the 30 s excerpt, three pieces of a
    64 s song whose sections differ in level and density; the match then holds on the whole
    song, 34 s of which the calibration never saw, as well as on the excerpt itself."""
    from mixbridge.analysis.audio import Audio
    from mixbridge.assistant.bridge import render_match
    from mixbridge.models.predict import excerpt

    sr = 44100

    def section(kind: str, seed: int, seconds: float = 4.0) -> np.ndarray:
        if kind == "beat":
            return _music(seconds, seed=seed) + 0.05 * _pinkish(seconds, seed + 3)
        t = np.arange(int(seconds * sr)) / sr
        pulse = np.exp(-((t * 3.0) % 1.0) * 6.0)
        chords = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 277.2, 329.6, 660.0)) * 0.08
        scale, noise = {"verse": (0.6, 0.08), "chorus": (1.6, 0.3), "bridge": (1.6, 0.08)}[kind]
        return scale * (chords * (0.4 + 0.6 * pulse) + noise * _pinkish(seconds, seed + 11) * pulse)

    song = np.concatenate([section(k, i) for i, k in enumerate(["verse", "beat", "chorus", "bridge"] * 4)],
                          axis=1).astype(np.float32)
    part = excerpt(song, sr)
    settings = EQ_COMP.replace({"compressor.ratio": 2.0, "compressor.threshold_db": -20.0})  # ~2 dB: mastering-sized
    renderer = PluginChainRenderer(settings, sr, load_map("zam"), part)
    on_excerpt = render_match(renderer, settings, Audio(part, sr, "excerpt"))
    on_song = render_match(renderer, settings, Audio(song, sr, "song"))
    assert part.shape[1] < 0.5 * song.shape[1]
    assert on_song["band_difference_db"]["mean_abs"] <= 1.0, on_song
    assert abs(on_song["band_difference_db"]["mean_abs"] - on_excerpt["band_difference_db"]["mean_abs"]) <= 0.2
    assert abs(on_song["lufs_difference_lu"]) <= 0.1, on_song


MATCH = ChainSettings.create(
    {n: round(float(2.5 * np.sin(np.pi * np.log2(f / 1000.0)) - 0.8 * np.log2(f / 1000.0)), 1)
     for n, f in zip(MATCH_EQ_PARAMS, BAND_CENTRES_HZ)}, {"match_eq": True})


@needs_zam
@pytest.mark.parametrize("sample_rate", (44100, 96000))
def test_the_match_eq_on_zamgeq31_matches_the_built_in_curve(sample_rate):
    """The 29 ZamGEQ31 gains are solved together: over the tonal bands the plugin's curve is the
    built-in match EQ's within 0.4 dB (mean 0.15 dB); below its lowest band the plan says so."""
    renderer = PluginChainRenderer(MATCH.only(("match_eq",)), sample_rate, load_map("zam"))
    [step] = renderer.steps
    assert step.insert.plugin.name == "ZamGEQ31" and step.stages == ("match_eq",)
    impulse = np.zeros((2, 1 << 15), np.float32)
    impulse[:, 0] = 1.0
    matrix = band_matrix(1 << 15, sample_rate)

    def bands_db(y: np.ndarray) -> np.ndarray:
        return 10.0 * np.log10((np.abs(np.fft.rfft(y.astype(np.float64))) ** 2 @ matrix) / matrix.sum(axis=0))

    built_in = render(impulse, sample_rate, MATCH)[0]
    difference = (bands_db(renderer.process(impulse)[0]) - bands_db(built_in))[shape_mask(sample_rate)]
    assert np.max(np.abs(difference)) <= 0.4 and np.mean(np.abs(difference)) <= 0.15
    assert any("no band at 20-" in n for n in step.insert.notes)


@needs_zam
def test_the_match_eq_exports_as_a_zamgeq31_preset_that_loads_back(tmp_path):
    x = _music(4.0)
    renderer = PluginChainRenderer(MATCH.only(("match_eq",)), 44100, load_map("zam"), x)
    written = export_presets(renderer, MATCH, tmp_path, 44100)
    assert [p.name for p in written] == ["01-ZamGEQ31.vstpreset", "INSERTS.txt"]
    # ZamGEQ31 applies a loaded preset but does not report the values back to the host (as
    # ZaMaximX2): its response is compared instead, against the configured insert's
    fresh = HostedPlugin(ZAM_DIR / "ZamGEQ31.vst3")
    fresh.load_preset(written[0])
    impulse = np.zeros((1, 1 << 15), np.float32)
    impulse[0, 0] = 1.0

    def response_db(plugin: HostedPlugin) -> np.ndarray:
        y = plugin.process(impulse, 44100, reset=True)[0].astype(np.float64)
        return 20.0 * np.log10(np.abs(np.fft.rfft(y))[20:20000] + 1e-12)

    configured = renderer.steps[0].insert.plugin
    assert np.max(np.abs(response_db(fresh) - response_db(configured))) < 0.01
    assert np.ptp(response_db(fresh)) > 5.0  # not a flat (default) state
    assert "ZamGEQ31" in (tmp_path / "INSERTS.txt").read_text()
