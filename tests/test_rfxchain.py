"""REAPER FX chain export: the file parses with the rpp package, each VST3's state round-trips
byte for byte out of REAPER's framing, the pins say where a dual-mono plugin runs, the stages no
plugin carries are listed with their values, and bad paths are refused."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rpp
import soundfile as sf
from test_master import groove
from test_vst3 import EQ_COMP, _music, needs_zam

from mixbridge.analysis.errors import OutputError
from mixbridge.effects.plugins import PluginChainRenderer, export_presets, load_map
from mixbridge.effects.rfxchain import STATE_MAGIC, ReaperFx, plugin_number, write_rfxchain
from mixbridge.effects.vst3 import read_preset_header

CLASS_ID = "0123456789ABCDEF0123456789ABCDEF"


def _preset(component: bytes, controller: bytes, class_id: str = CLASS_ID) -> bytes:
    """A .vstpreset (Steinberg's layout) holding a component and a controller state."""
    head = 48
    body = component + controller
    listing = b"List" + struct.pack("<i", 2) + b"Comp" + struct.pack("<qq", head, len(component)) \
        + b"Cont" + struct.pack("<qq", head + len(component), len(controller))
    return b"VST3" + struct.pack("<i", 1) + class_id.encode() + struct.pack("<q", head + len(body)) + body + listing


def _parse(path: Path) -> tuple[list[list[str]], list[dict]]:
    """The comment lines and, per <VST> block, its fields and decoded blobs (rpp parses a whole
    FX chain; the file is a chain's body, so it is wrapped in one to be parsed)."""
    root = rpp.loads("<FXCHAIN\n" + path.read_text(encoding="utf-8") + ">\n")
    comments = [item for item in root if isinstance(item, list) and item[0] == "//"]
    blocks = []
    for vst in root.findall("VST"):
        lines = [line for line in vst if isinstance(line, str)]
        # each blob is encoded on its own: the header is the first line (under 96 bytes), the footer the last
        header, footer = base64.b64decode(lines[0]), base64.b64decode(lines[-1])
        state = b"".join(base64.b64decode(line) for line in lines[1:-1])
        number, magic, n_in = struct.unpack_from("<III", header)
        ins = struct.unpack_from(f"<{n_in}Q", header, 12)
        n_out, = struct.unpack_from("<I", header, 12 + 8 * n_in)
        outs = struct.unpack_from(f"<{n_out}Q", header, 16 + 8 * n_in)
        size, opaque, flags = struct.unpack_from("<III", header, 16 + 8 * (n_in + n_out))
        assert len(header) == 28 + 8 * (n_in + n_out) and size == len(state) and opaque == 1
        sections, offset = [], 0
        while offset < len(state):
            length, flag = struct.unpack_from("<II", state, offset)
            sections.append((flag, state[offset + 8:offset + 8 + length]))
            offset += 8 + length
        assert offset == len(state) and footer == b"\0\0\x10\0\0\0"
        blocks.append({"attrib": vst.attrib, "number": number, "magic": magic, "ins": ins, "outs": outs,
                       "sections": sections})
    return comments, blocks


def test_reapers_plugin_number_matches_a_project_reaper_saved():
    # <VST "VST3i: MicroPython Script Host" MicroPythonVST3.vst3 0 "" 896536053{60A4...1DAA} "">, as saved
    # by REAPER 7 in a public repository's project: the number is our FNV-1a of the class ID
    assert plugin_number("60A40168727C4E7DAAF808B790961DAA") == 896536053


def test_each_state_round_trips_through_reapers_framing(tmp_path):
    component, controller = bytes(range(256)) * 3 + b"tail", b"controller \x00\xff state"
    preset = _preset(component, controller)
    fxs = [ReaperFx("SomeEQ", "Some Vendor", "SomeEQ.vst3", CLASS_ID, preset),
           ReaperFx("MonoEQ", "", "MonoEQ.vst3", CLASS_ID, _preset(b"L" * 100, b""), (0,)),
           ReaperFx("MonoEQ", "", "MonoEQ.vst3", CLASS_ID, _preset(b"R" * 100, b""), (1,))]
    path = write_rfxchain(tmp_path / "chain.RfxChain", fxs, ['built in: high-pass 30 Hz, "quoted" and \'single\''])
    comments, blocks = _parse(path)
    assert len(comments) == 1 and "high-pass" in comments[0]
    first, left, right = blocks
    assert first["attrib"] == ["VST3: SomeEQ (Some Vendor)", "SomeEQ.vst3", "0", "",
                               f"{plugin_number(CLASS_ID)}{{{CLASS_ID}}}", ""]
    assert first["magic"] == STATE_MAGIC and first["number"] == plugin_number(CLASS_ID)
    assert first["sections"] == [(1, component), (0, controller)]
    assert (first["ins"], first["outs"]) == ((1, 2), (1, 2))
    assert (left["ins"], left["outs"], right["ins"], right["outs"]) == ((1,), (1,), (2,), (2,))
    assert left["sections"][0] == (1, b"L" * 100) and right["sections"][0] == (1, b"R" * 100)
    text = path.read_text()
    assert text.count("BYPASS 0 0 0") == 3 and text.count("WAK 0 0") == 3 and len(set(
        line for line in text.splitlines() if line.startswith("FXID"))) == 3


def test_bad_paths_and_presets_are_refused(tmp_path):
    fx = ReaperFx("SomeEQ", "", "SomeEQ.vst3", CLASS_ID, _preset(b"x", b""))
    with pytest.raises(OutputError, match="RfxChain"):
        write_rfxchain(tmp_path / "chain.txt", [fx], [])
    with pytest.raises(OutputError):
        write_rfxchain(tmp_path / "missing" / "chain.RfxChain", [fx], [])
    assert not list(tmp_path.iterdir())
    with pytest.raises(Exception, match="VST3"):
        write_rfxchain(tmp_path / "chain.RfxChain", [ReaperFx("X", "", "X.vst3", CLASS_ID, b"not a preset")], [])
    assert not list(tmp_path.iterdir())  # nothing half-written


@needs_zam
def test_the_zam_chain_holds_the_exported_presets_states(tmp_path):
    from mixbridge.assistant.bridge import export_rfxchain
    from mixbridge.assistant.master import resolve_target

    mix = tmp_path / "mix.wav"
    sf.write(str(mix), _music(4.0).T, 44100, subtype="PCM_24")
    settings = EQ_COMP.replace({"highpass.cutoff_hz": 35.0}, {"highpass": True, "polarity": True})
    renderer = PluginChainRenderer(settings, 44100, load_map("zam"), _music(4.0))
    written = export_presets(renderer, settings, tmp_path / "presets", 44100, 3.0, -1.0)
    path = export_rfxchain(tmp_path / "zam.RfxChain", settings, mix, resolve_target("spotify"), 3.0, renderer)
    comments, blocks = _parse(path)
    names = [b["attrib"][0] for b in blocks]
    assert names[:5] == ["VST3: ZamEQ2 (Damien Zammit)"] * 4 + ["VST3: ZamCompX2 (Damien Zammit)"]
    assert names[5].startswith("VST3: ZaMaximX2")
    assert [b["ins"] for b in blocks[:4]] == [(1,), (2,), (1,), (2,)]  # each mono ZamEQ2 on channel 1, then 2
    presets = [p for p in written if p.suffix == ".vstpreset"]  # EQ A, EQ B, compressor, limiter
    expected = [presets[0], presets[0], presets[1], presets[1], presets[2], presets[3]]
    for block, preset_path in zip(blocks, expected):
        data = preset_path.read_bytes()
        chunks = {c: data[o:o + s] for c, o, s in read_preset_header(data).chunks}
        assert block["sections"] == [(1, chunks["Comp"]), (0, chunks.get("Cont", b""))], preset_path.name
        assert block["attrib"][4] == f"{plugin_number(read_preset_header(data).class_id)}" \
                                     f"{{{read_preset_header(data).class_id}}}"
    text = " ".join(" ".join(line) for line in comments)
    assert "high-pass" in text and "35 Hz" in text and "spotify" in text  # the built-in stage, with its value
    assert "1. polarity: no VST3 carries it" in text and "right channel inverted" in text


def test_the_cli_writes_a_chain_and_refuses_a_wrong_suffix(tmp_path):
    mix = tmp_path / "mix.wav"
    sf.write(str(mix), np.tile(groove(44100, 5.0), 3).T, 44100, subtype="PCM_24")
    cli = [sys.executable, "-m", "mixbridge.assistant.cli", "suggest", str(mix), "-q", "--export", "rfxchain"]
    done = subprocess.run([*cli, str(tmp_path / "s.rfxchain.txt")], capture_output=True, text=True)
    assert done.returncode == 2 and "RfxChain" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    if not needs_zam.args[0]:
        done = subprocess.run([*cli, str(tmp_path / "s.RfxChain")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        comments, blocks = _parse(tmp_path / "s.RfxChain")
        assert blocks and comments
