"""DAWproject export: every written project.xml and metadata.xml validates against the format's
XSD (tests/fixtures/dawproject, MIT, from bitwig/dawproject); the generic devices carry the
chain's values in the schema's units; each VST3 device's state is the exported .vstpreset; a
missing plugin falls back to the generic device and says so; bad paths are refused."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_master import groove
from test_vst3 import EQ_COMP, _music, _write_map, needs_zam

from mixbridge.effects.dawproject import THIRD_OCTAVE_Q, Mix, PluginDevice, write_dawproject
from mixbridge.effects.plugins import PluginChainRenderer, export_presets, load_map
from mixbridge.effects.schema import MATCH_EQ_PARAMS, ChainSettings

xmlschema = pytest.importorskip("xmlschema")
SCHEMAS = Path(__file__).parent / "fixtures" / "dawproject"

EVERY_STAGE = ChainSettings.create(
    {"trim.gain_db": 2.0, "highpass.cutoff_hz": 35.0, "low_shelf.gain_db": 3.0, "low_shelf.freq_hz": 90.0,
     "peak1.gain_db": -2.0, "peak2.gain_db": 4.0, "peak3.gain_db": 1.5, "peak4.gain_db": -3.0,
     "high_shelf.gain_db": 2.5, "match_eq.band_100hz_db": 1.5, "match_eq.band_3150hz_db": -2.0,
     "compressor.threshold_db": -24.0, "compressor.ratio": 4.0, "compressor.attack_ms": 5.0,
     "compressor.release_ms": 120.0, "compressor.makeup_db": 3.0, "compressor.amount_percent": 60.0,
     "reverb.wet": 0.1, "reverb.room_size": 0.4, "stereo.width_percent": 120.0, "expander.ratio": 1.4,
     "expander.threshold_db": -26.0, "expander.release_ms": 250.0},
    {"highpass": True, "compressor": True, "reverb": True, "stereo": True, "match_eq": True, "expander": True})


def _mix(tmp_path: Path) -> Mix:
    path = tmp_path / "mix.wav"
    sf.write(str(path), groove(44100, 2.0).T, 44100, subtype="PCM_24")
    return Mix(path, 44100, 2, 2.0)


def _open(path: Path) -> tuple[ET.Element, ET.Element, zipfile.ZipFile]:
    archive = zipfile.ZipFile(path)
    project, metadata = archive.read("project.xml"), archive.read("metadata.xml")
    xmlschema.XMLSchema(str(SCHEMAS / "Project.xsd")).validate(project.decode())
    xmlschema.XMLSchema(str(SCHEMAS / "MetaData.xsd")).validate(metadata.decode())
    return ET.fromstring(project), ET.fromstring(metadata), archive


def _value(element: ET.Element | None) -> float:
    assert element is not None
    return float(element.get("value", "nan"))


def test_generic_devices_validate_and_carry_the_chain(tmp_path):
    mix = _mix(tmp_path)
    path = write_dawproject(tmp_path / "song.dawproject", EVERY_STAGE, mix, 5.5, -1.0, "target spotify")
    project, metadata, _ = _open(path)
    devices = project.find("Structure/Track/Channel/Devices")
    assert [d.tag for d in devices] == ["Equalizer", "Equalizer", "BuiltinDevice", "Compressor", "BuiltinDevice",
                                        "BuiltinDevice", "Limiter"]
    eq, match, expander, comp, reverb, width, limiter = devices
    s = EVERY_STAGE
    assert _value(eq.find("InputGain")) == pytest.approx(s["trim.gain_db"])
    bands = {b.get("type") + (b.find("Freq").get("value") or ""): b for b in eq.findall("Band")}
    high_pass = next(b for b in eq.findall("Band") if b.get("type") == "highPass")
    assert (_value(high_pass.find("Freq")), high_pass.get("order")) == (35.0, "2")
    for stage, kind in (("low_shelf", "lowShelf"), ("peak1", "bell"), ("peak4", "bell"), ("high_shelf", "highShelf")):
        band = bands[kind + f"{s[f'{stage}.freq_hz']:.6g}"]
        assert _value(band.find("Gain")) == pytest.approx(s[f"{stage}.gain_db"])
        assert _value(band.find("Q")) == pytest.approx(s[f"{stage}.q"])
        assert band.find("Freq").get("unit") == "hertz" and band.find("Gain").get("unit") == "decibel"
    bells = {_value(b.find("Freq")): (_value(b.find("Gain")), _value(b.find("Q"))) for b in match.findall("Band")}
    assert bells == {100.0: (1.5, THIRD_OCTAVE_Q), 3150.0: (-2.0, THIRD_OCTAVE_Q)}
    assert sum(s[n] != 0 for n in MATCH_EQ_PARAMS) == 2
    assert _value(comp.find("Threshold")) == -24.0 and _value(comp.find("Ratio")) == 4.0
    assert _value(comp.find("Attack")) == pytest.approx(0.005) and comp.find("Attack").get("unit") == "seconds"
    assert _value(comp.find("Release")) == pytest.approx(0.12) and _value(comp.find("OutputGain")) == 3.0
    params = {p.get("name"): _value(p) for p in reverb.find("Parameters")}
    assert reverb.get("deviceName") == "Mixbridge reverb" and params["Wet level"] == pytest.approx(0.1)
    assert params["Room size"] == pytest.approx(0.4)
    assert {p.get("name"): _value(p) for p in width.find("Parameters")} == {"Width (side gain)": 120.0}
    params = {p.get("name"): _value(p) for p in expander.find("Parameters")}
    assert expander.get("deviceName") == "Mixbridge upward expander"
    assert params == {"Threshold": -26.0, "Ratio": 1.4, "Attack": pytest.approx(0.01), "Release": pytest.approx(0.25),
                      "Range": 6.0}
    assert _value(limiter.find("Threshold")) == -1.0 and _value(limiter.find("InputGain")) == 5.5
    comment = project.find("Structure/Track").get("comment")
    for named in ("parallel: blend 60 %", "Mixbridge reverb", "Mixbridge stereo width", "31 third-octave bells",
                  "Mixbridge upward expander",
                  "Limiter at the -1.0 dBTP ceiling"):
        assert named in comment
    audio = project.find("Arrangement/Lanes/Lanes/Clips/Clip/Audio")
    assert audio.find("File").get("path") == str(mix.path.resolve()) and audio.get("sampleRate") == "44100"
    assert "target spotify" in metadata.find("Comment").text


def test_vst3_devices_hold_their_state_and_the_rest_stays_generic(tmp_path):
    mix = _mix(tmp_path)
    preset = b"VST3" + bytes(range(256)) * 4
    device = PluginDevice(("low_shelf", "peak1", "peak2"), "SomeEQ", "Some Vendor", "0123456789ABCDEF" * 2, preset)
    path = write_dawproject(tmp_path / "p.dawproject", EVERY_STAGE, mix, 0.0, -1.0, "t", [device])
    project, _, archive = _open(path)
    devices = project.find("Structure/Track/Channel/Devices")
    assert [d.tag for d in devices][:2] == ["Equalizer", "Vst3Plugin"]  # trim + high-pass stay generic, first
    plugin = devices[1]
    assert plugin.get("deviceID") == device.class_id and plugin.get("deviceVendor") == "Some Vendor"
    assert archive.read(plugin.find("State").get("path")) == preset
    generic = [b.get("type") for b in devices[0].findall("Band")]
    assert generic == ["highPass", "bell", "bell", "highShelf"]  # peak3, peak4; the low shelf is on the plugin


@needs_zam
def test_the_zam_devices_state_is_the_exported_vstpreset(tmp_path):
    mix = _mix(tmp_path)
    renderer = PluginChainRenderer(EQ_COMP, 44100, load_map("zam"), _music(4.0))
    from mixbridge.assistant.bridge import plugin_devices

    devices = plugin_devices(renderer, 44100)
    written = export_presets(renderer, EQ_COMP, tmp_path / "presets", 44100)
    path = write_dawproject(tmp_path / "zam.dawproject", EQ_COMP, mix, 3.0, -1.0, "t", devices)
    project, _, archive = _open(path)
    plugins = project.findall("Structure/Track/Channel/Devices/Vst3Plugin")
    assert [p.get("name") for p in plugins] == ["ZamEQ2", "ZamEQ2", "ZamCompX2"]
    presets = [p for p in written if p.suffix == ".vstpreset"]
    for plugin, preset in zip(plugins, presets):
        assert archive.read(plugin.find("State").get("path")) == preset.read_bytes(), preset.name


def test_a_missing_plugin_falls_back_to_the_generic_device(tmp_path):
    body = '[[insert]]\nname = "EQ"\nplugin = "NoSuchEQ"\nstages = ["peak1"]\n[insert.params]\n' \
           'gain = { from = "peak1.gain_db" }\n'
    plugin_map = load_map(str(_write_map(tmp_path, body)))
    renderer = PluginChainRenderer(EVERY_STAGE, 44100, plugin_map, dirs=[tmp_path], allow_missing=True)
    assert len(renderer.missing) == 1 and "NoSuchEQ" in renderer.missing[0] and "EQ band 1" in renderer.missing[0]
    assert all(step.insert is None for step in renderer.steps)
    with pytest.raises(Exception, match="NoSuchEQ"):
        PluginChainRenderer(EVERY_STAGE, 44100, plugin_map, dirs=[tmp_path])


def test_the_cli_exports_and_refuses_bad_paths_before_any_work(tmp_path):
    mix = tmp_path / "mix.wav"
    sf.write(str(mix), np.tile(groove(44100, 5.0), 3).T, 44100, subtype="PCM_24")
    cli = [sys.executable, "-m", "mixbridge.assistant.cli", "suggest", str(mix), "-q", "--export"]
    done = subprocess.run([*cli, "dawproject", str(tmp_path / "s.dawproject")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _open(tmp_path / "s.dawproject")
    for args, code in ((["dawproject", str(tmp_path / "s.zip")], 2), (["logic", str(tmp_path / "s.logicx")], 2),
                       (["dawproject", str(tmp_path / "missing" / "s.dawproject")], 6)):
        done = subprocess.run([*cli, *args], capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        assert args[1] in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_polarity_stage_is_a_named_device_before_everything(tmp_path):
    settings = EVERY_STAGE.replace(enabled={"polarity": True})
    project, _, _ = _open(write_dawproject(tmp_path / "p.dawproject", settings, _mix(tmp_path), 0.0, -1.0, "t"))
    devices = project.find("Structure/Track/Channel/Devices")
    first = devices[0]
    assert (first.tag, first.get("name")) == ("BuiltinDevice", "Mixbridge polarity")
    assert _value(first.find("Parameters/RealParameter")) == 1.0
    assert "polarity" in project.find("Structure/Track").get("comment")
