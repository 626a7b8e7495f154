"""DAWproject export: the chain on one audio track of an open project file that Bitwig Studio,
Studio One and Cubase read.

DAWproject (MIT licence, https://github.com/bitwig/dawproject) is a ZIP holding
``project.xml`` (the structure, the arrangement, the devices), ``metadata.xml`` and the files
they reference. The written project holds:

- one audio track with the mix, placed at 0 s on the arrangement. The mix file is referenced
  where it lies (``external="true"``), not copied into the ZIP;
- the track's devices, in the chain's signal order:
  - each stage a VST3 of the plugin map carries: a ``Vst3Plugin`` (its class ID as
    ``deviceID``), with its state as the ``.vstpreset`` we export, stored in the ZIP under
    ``plugins/`` and referenced by ``State``;
  - the trim, high-pass, shelves and bands no plugin carries: one generic ``Equalizer``, where
    the first of them is. The trim is its ``InputGain``; the high-pass is a ``highPass`` band of
    order 2 with Q 0.5 (our two first-order sections: -6 dB at the cutoff). These stages are
    linear filters and gains, so their order among themselves and against an EQ plugin does
    not change the sound; every one of them still comes before the compressor;
  - the match EQ, if no plugin carries it: a second ``Equalizer`` of 31 ``bell`` bands at the
    third-octave centres, Q 4.32. An importing DAW's bells approximate our minimum-phase FIR,
    and the project's comment says so;
  - the compressor: a ``Compressor`` (threshold, ratio, attack and release in seconds, makeup
    as ``OutputGain``). A parallel amount under 100 % has no field; it is named in the comment;
  - the polarity flip, the upward expander, the reverb and the stereo width, which the format
    has no device for: ``BuiltinDevice`` elements named "Mixbridge polarity" / "Mixbridge upward
    expander" / "Mixbridge reverb" / "Mixbridge stereo width", carrying their parameters as
    ``RealParameter`` s;
  - the finalizer: a ``Limiter`` whose threshold is the ceiling, with the finalizer's gain as
    its ``InputGain``.
  The project's comment lists every stage that a generic or named device stands in for. No
  stage is dropped silently.
- the delivery target (LUFS, ceiling, profile) in ``metadata.xml``'s comment.

Units are the schema's: ``decibel``, ``hertz``, ``seconds``, ``linear`` (ratios, Q),
``normalized`` (0–1), ``percent``. ``tests/test_dawproject.py`` validates every written
``project.xml`` and ``metadata.xml`` against the format's XSD, kept in
``tests/fixtures/dawproject/`` with its licence.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mixbridge.analysis.atomic import atomic_path
from mixbridge.analysis.errors import OutputError
from mixbridge.effects.limiter import LOOKAHEAD_MS, RELEASE_DB_PER_S
from mixbridge.effects.schema import (
    EQ_STAGES,
    MATCH_EQ_NOMINAL_HZ,
    MATCH_EQ_PARAMS,
    PARAM_INDEX,
    STAGE_LABELS,
    STAGES,
    ChainSettings,
)

FORMAT_VERSION = "1.0"
SUFFIX = ".dawproject"
THIRD_OCTAVE_Q = 4.32  # a bell 1/3 octave wide between its -3 dB points
FINALIZER_RELEASE_S = 10.0 / RELEASE_DB_PER_S  # our limiter recovers 10 dB in this long


@dataclass(frozen=True)
class PluginDevice:
    """A VST3 insert of the plugin map: the stages it carries and its state as a ``.vstpreset``."""

    stages: tuple[str, ...]
    name: str
    vendor: str
    class_id: str
    preset: bytes
    dual_mono: bool = False  # a mono-only plugin that the chain runs once per channel


@dataclass(frozen=True)
class Mix:
    """The audio file on the project's track."""

    path: Path
    sample_rate: int
    channels: int
    duration_s: float


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"id{self.count}"


def _real(parent: ET.Element, tag: str, ids: _Ids, value: float, unit: str, name: str | None = None,
          lo: float | None = None, hi: float | None = None) -> ET.Element:
    attrs = {"id": ids(), "unit": unit, "value": f"{value:.6g}"}
    if name:
        attrs["name"] = name
    if lo is not None and hi is not None:
        attrs |= {"min": f"{lo:.6g}", "max": f"{hi:.6g}"}
    return ET.SubElement(parent, tag, attrs)


def _enabled(parent: ET.Element, ids: _Ids, on: bool = True) -> None:
    ET.SubElement(parent, "Enabled", {"id": ids(), "name": "On/Off", "value": "true" if on else "false"})


def _band(eq: ET.Element, ids: _Ids, kind: str, freq_hz: float, gain_db: float | None, q: float,
          order: int | None = None) -> None:
    band = ET.SubElement(eq, "Band", {"type": kind} | ({"order": str(order)} if order else {}))
    _real(band, "Freq", ids, freq_hz, "hertz")
    if gain_db is not None:
        _real(band, "Gain", ids, gain_db, "decibel")
    _real(band, "Q", ids, q, "linear")
    _enabled(band, ids)


def _equalizer(devices: ET.Element, ids: _Ids, settings: ChainSettings, stages: Sequence[str]) -> None:
    """The trim, high-pass, shelves and bands among ``stages``, as one generic Equalizer."""
    eq = ET.SubElement(devices, "Equalizer", {"id": ids(), "name": "Mixbridge EQ", "deviceName": "Equalizer",
                                              "deviceRole": "audioFX"})
    _enabled(eq, ids)
    s = settings
    if "highpass" in stages:
        _band(eq, ids, "highPass", s["highpass.cutoff_hz"], None, 0.5, order=2)
    for stage in EQ_STAGES:
        if stage in stages:
            kind = {"low_shelf": "lowShelf", "high_shelf": "highShelf"}.get(stage, "bell")
            _band(eq, ids, kind, s[f"{stage}.freq_hz"], s[f"{stage}.gain_db"], s[f"{stage}.q"])
    if "trim" in stages:
        _real(eq, "InputGain", ids, s["trim.gain_db"], "decibel", "Input gain")


def _match_eq(devices: ET.Element, ids: _Ids, settings: ChainSettings) -> None:
    eq = ET.SubElement(devices, "Equalizer", {"id": ids(), "name": "Mixbridge match EQ (31 bands)",
                                              "deviceName": "Equalizer", "deviceRole": "audioFX"})
    _enabled(eq, ids)
    for name, centre_hz in zip(MATCH_EQ_PARAMS, MATCH_EQ_NOMINAL_HZ):
        if settings[name] != 0.0:
            _band(eq, ids, "bell", float(centre_hz), settings[name], THIRD_OCTAVE_Q)


def _compressor(devices: ET.Element, ids: _Ids, settings: ChainSettings) -> None:
    s = settings
    comp = ET.SubElement(devices, "Compressor", {"id": ids(), "name": "Mixbridge compressor",
                                                 "deviceName": "Compressor", "deviceRole": "audioFX"})
    _enabled(comp, ids)
    _real(comp, "Attack", ids, s["compressor.attack_ms"] / 1000.0, "seconds", "Attack")
    ET.SubElement(comp, "AutoMakeup", {"id": ids(), "name": "Auto makeup", "value": "false"})
    _real(comp, "OutputGain", ids, s["compressor.makeup_db"], "decibel", "Makeup")
    _real(comp, "Ratio", ids, s["compressor.ratio"], "linear", "Ratio")
    _real(comp, "Release", ids, s["compressor.release_ms"] / 1000.0, "seconds", "Release")
    _real(comp, "Threshold", ids, s["compressor.threshold_db"], "decibel", "Threshold")


def _named(devices: ET.Element, ids: _Ids, name: str, params: Sequence[tuple[str, float, str, float, float]]) -> None:
    """A device the format has no type for: a BuiltinDevice carrying its parameters."""
    device = ET.SubElement(devices, "BuiltinDevice", {"id": ids(), "name": name, "deviceName": name,
                                                      "deviceRole": "audioFX", "deviceVendor": "Mixbridge"})
    parameters = ET.SubElement(device, "Parameters")
    for label, value, unit, lo, hi in params:
        _real(parameters, "RealParameter", ids, value, unit, label, lo, hi)
    _enabled(device, ids)


def _ranged(label: str, name: str, value: float) -> tuple[str, float, str, float, float]:
    """A parameter for :func:`_named` in the format's units, with its schema range (ms as seconds)."""
    spec = PARAM_INDEX[name]
    unit, scale = {"dB": ("decibel", 1.0), "ms": ("seconds", 1e-3), ":1": ("linear", 1.0)}[spec.unit]
    return label, value * scale, unit, spec.min * scale, spec.max * scale


def _limiter(devices: ET.Element, ids: _Ids, gain_db: float, ceiling_dbtp: float) -> None:
    lim = ET.SubElement(devices, "Limiter", {"id": ids(), "name": "Mixbridge finalizer",
                                             "deviceName": "Limiter", "deviceRole": "audioFX"})
    _enabled(lim, ids)
    _real(lim, "Attack", ids, LOOKAHEAD_MS / 1000.0, "seconds", "Attack (look-ahead)")
    _real(lim, "InputGain", ids, gain_db, "decibel", "Gain to the loudness target")
    _real(lim, "Release", ids, FINALIZER_RELEASE_S, "seconds", "Release")
    _real(lim, "Threshold", ids, ceiling_dbtp, "decibel", "Ceiling (true peak)")


def _vst3(devices: ET.Element, ids: _Ids, device: PluginDevice, state_path: str) -> None:
    plugin = ET.SubElement(devices, "Vst3Plugin", {"id": ids(), "name": device.name, "deviceID": device.class_id,
                                                   "deviceName": device.name, "deviceRole": "audioFX",
                                                   "deviceVendor": device.vendor, "loaded": "true"})
    ET.SubElement(plugin, "Parameters")
    _enabled(plugin, ids)
    ET.SubElement(plugin, "State", {"path": state_path})


def build_project(settings: ChainSettings, mix: Mix, gain_db: float, ceiling_dbtp: float,
                  plugins: Sequence[PluginDevice] = (), application_version: str = "") -> tuple[bytes, dict[str, bytes],
                                                                                             list[str]]:
    """(project.xml, {path in the ZIP: plugin state}, the comment's lines)."""
    ids = _Ids()
    carried = {stage: device for device in plugins for stage in device.stages}
    active = [s for s in STAGES if settings.is_on(s) and (settings.active(s) or s == "highpass")]
    comment: list[str] = []
    project = ET.Element("Project", {"version": FORMAT_VERSION})
    ET.SubElement(project, "Application", {"name": "Mixbridge", "version": application_version or "0"})
    structure = ET.SubElement(project, "Structure")
    track_id = ids()
    track = ET.SubElement(structure, "Track", {"id": track_id, "name": mix.path.stem, "contentType": "audio",
                                               "loaded": "true"})
    master_track_id, master_channel_id = ids(), ids()
    channel = ET.SubElement(track, "Channel", {"id": ids(), "audioChannels": str(mix.channels), "role": "regular",
                                               "destination": master_channel_id, "solo": "false"})
    devices = ET.SubElement(channel, "Devices")
    states: dict[str, bytes] = {}
    placed: set[int] = set()
    generic_eq = [s for s in active if s in ("trim", "highpass", *EQ_STAGES) and s not in carried]
    for stage in active:
        device = carried.get(stage)
        if device is not None:
            if id(device) not in placed:
                placed.add(id(device))
                path = f"plugins/{len(states) + 1:02d}-{device.name}.vstpreset"
                states[path] = device.preset
                _vst3(devices, ids, device, path)
                if device.dual_mono:
                    comment.append(f"{device.name} is mono-only: Mixbridge runs it once per channel with the same "
                                   "state; the format has no channel routing, so check that your DAW runs it on both")
            continue
        if stage in generic_eq:
            if stage == generic_eq[0]:
                _equalizer(devices, ids, settings, generic_eq)
                comment.append("the generic Equalizer carries: " + ", ".join(STAGE_LABELS[s] for s in generic_eq))
        elif stage == "match_eq":
            _match_eq(devices, ids, settings)
            comment.append("the match EQ is written as 31 third-octave bells (Q 4.32); Mixbridge renders it as a "
                           "minimum-phase FIR, which a DAW's bells approximate")
        elif stage == "compressor":
            _compressor(devices, ids, settings)
            amount = settings["compressor.amount_percent"]
            if amount < 100.0:
                comment.append(f"the compressor is parallel: blend {amount:.0f} % compressed with the dry signal "
                               "(the format's Compressor has no mix control)")
        elif stage == "expander":
            s = settings
            _named(devices, ids, "Mixbridge upward expander",
                   [_ranged(label, name, s[name]) for label, name in (
                       ("Threshold", "expander.threshold_db"), ("Ratio", "expander.ratio"),
                       ("Attack", "expander.attack_ms"), ("Release", "expander.release_ms"),
                       ("Range", "expander.range_db"))])
            comment.append("upward expander: the level over the threshold raised by the ratio, up to the range, one "
                           "gain for both channels; no device type in the format (its Compressor cannot expand "
                           "upward), written as the named device 'Mixbridge upward expander'")
        elif stage == "reverb":
            s = settings
            _named(devices, ids, "Mixbridge reverb",
                   [("Room size", s["reverb.room_size"], "normalized", 0.0, 1.0),
                    ("Damping", s["reverb.damping"], "normalized", 0.0, 1.0),
                    ("Wet level", s["reverb.wet"], "normalized", 0.0, 1.0),
                    ("Dry level", 1.0, "normalized", 0.0, 1.0),
                    ("Width", s["reverb.width"], "normalized", 0.0, 1.0)])
            comment.append("reverb: no device type in the format; written as the named device 'Mixbridge reverb' "
                           "(Freeverb-style parameters)")
        elif stage == "polarity":
            _named(devices, ids, "Mixbridge polarity", [("Invert right channel", 1.0, "linear", 0.0, 1.0)])
            comment.append("polarity: the right channel inverted, before everything else; written as the named "
                           "device 'Mixbridge polarity' (your DAW's utility or phase-invert switch on the right channel)")
        elif stage == "stereo":
            _named(devices, ids, "Mixbridge stereo width",
                   [("Width (side gain)", settings["stereo.width_percent"], "percent", 0.0, 200.0)])
            comment.append("stereo width: no device type in the format; written as the named device "
                           "'Mixbridge stereo width' (mid kept, side scaled)")
    _limiter(devices, ids, gain_db, ceiling_dbtp)
    comment.append(f"the finalizer is a Limiter at the {ceiling_dbtp:.1f} dBTP ceiling with {gain_db:+.2f} dB of "
                   "gain in front; Mixbridge's own finalizer limits true peaks")
    ET.SubElement(channel, "Volume", {"id": ids(), "name": "Volume", "unit": "linear", "value": "1",
                                      "min": "0", "max": "2"})
    master = ET.SubElement(structure, "Track", {"id": master_track_id, "name": "Master", "contentType": "audio",
                                                "loaded": "true"})
    master_channel = ET.SubElement(master, "Channel", {"id": master_channel_id, "audioChannels": str(mix.channels),
                                                       "role": "master", "solo": "false"})
    ET.SubElement(master_channel, "Volume", {"id": ids(), "name": "Volume", "unit": "linear", "value": "1",
                                             "min": "0", "max": "2"})
    arrangement = ET.SubElement(project, "Arrangement", {"id": ids()})
    lanes = ET.SubElement(arrangement, "Lanes", {"id": ids(), "timeUnit": "seconds"})
    track_lanes = ET.SubElement(lanes, "Lanes", {"id": ids(), "track": track_id})
    clips = ET.SubElement(track_lanes, "Clips", {"id": ids()})
    clip = ET.SubElement(clips, "Clip", {"time": "0.0", "duration": f"{mix.duration_s:.6f}", "playStart": "0.0",
                                         "name": mix.path.stem})
    audio = ET.SubElement(clip, "Audio", {"id": ids(), "channels": str(mix.channels),
                                          "sampleRate": str(mix.sample_rate), "duration": f"{mix.duration_s:.6f}"})
    ET.SubElement(audio, "File", {"path": str(mix.path.resolve()), "external": "true"})
    track.set("comment", "; ".join(comment))
    ET.indent(project)
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(project, encoding="utf-8"),
            states, comment)


def build_metadata(title: str, target_text: str, comment: Sequence[str]) -> bytes:
    meta = ET.Element("MetaData")
    ET.SubElement(meta, "Title").text = title
    ET.SubElement(meta, "Comment").text = "Mixbridge: " + target_text + ". " + "; ".join(comment)
    ET.indent(meta)
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + ET.tostring(meta, encoding="utf-8")


def write_dawproject(path: str | Path, settings: ChainSettings, mix: Mix, gain_db: float, ceiling_dbtp: float,
                     target_text: str, plugins: Sequence[PluginDevice] = (), application_version: str = "") -> Path:
    """Write the ``.dawproject`` ZIP atomically; see the module docstring."""
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        raise OutputError(f"a DAWproject file ends in {SUFFIX}", path)
    project, states, comment = build_project(settings, mix, gain_db, ceiling_dbtp, plugins, application_version)
    metadata = build_metadata(mix.path.stem, target_text, comment)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("project.xml", project)
            archive.writestr("metadata.xml", metadata)
            for name, data in states.items():
                archive.writestr(name, data)
    return path
