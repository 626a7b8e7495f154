"""REAPER FX chain export (``.RfxChain``): the chain's VST3 inserts with their exact state, for
REAPER's "Load FX chain".

An ``.RfxChain`` is the body of a track's ``<FXCHAIN>`` block in REAPER's text format, without
the block itself. Per insert::

    BYPASS 0 0 0
    <VST "VST3: ZamEQ2 (Damien Zammit)" ZamEQ2.vst3 0 "" NUMBER{CLASSID} ""
      (base64 lines: the header, the state, the footer)
    >
    FLOATPOS 0 0 0 0
    FXID {GUID}
    WAK 0 0

REAPER does not document how it frames a VST3's state. The framing written here is the one
read and written by Jürgen Moßgraber's ProjectConverter (LGPLv3,
https://github.com/git-moss/ProjectConverter, ``format/reaper/ReaperCreator.java`` and
``format/reaper/model/VstChunkHandler.java``; facts only, no code taken), which converts
DAWproject files to REAPER projects, and agrees with projects REAPER saved that other public
repositories show. Three base64 blobs, each in lines of at most 128 characters (96 bytes):

1. the header, little-endian: ``u32`` REAPER's plug-in number, ``u32`` ``0xFEED5EEE``, ``u32``
   the plug-in's input pins then one ``u64`` channel mask per pin (bit ``n``: track channel
   ``n + 1``), the same for the output pins, ``u32`` the size of blob 2, ``u32`` 1, ``u32``
   ``0x00100000``;
2. the state: per VST3 state section, ``u32`` its size, ``u32`` 1 for the component state
   (``IComponent::getState``) or 0 for the controller state, then its bytes. These are the
   ``Comp`` and ``Cont`` chunks of the ``.vstpreset`` we export, byte for byte;
3. the footer: the program name and the preset name, each NUL-terminated (both empty here),
   then ``u32`` 0x10.

Where the sources differ we follow the projects REAPER saved: ProjectConverter's writer puts
the component flag as ``0x01000000``, while REAPER writes 1 (and ProjectConverter's own reader
expects ``01 00 00 00``).

REAPER's plug-in number is the FNV-1a hash (32 bits, top bit cleared) of the class ID's 16
bytes in the byte order of its GUID string (the first three groups reversed); REAPER since
6.4x finds the plug-in by the class ID in braces. The second field is the bundle's file name.

A mono-only plug-in (layout ``dual-mono`` in the plugin map) is written twice, one instance
on channel 1 and one on channel 2, by the pin masks: REAPER passes the channel an instance
does not write through unchanged. The stages no VST3 carries cannot be written exactly as
REAPER's own ReaEQ / ReaComp (their state formats are undocumented), so they are listed, with
their values and their place in the chain, in a comment block of ``//`` lines at the top of
the file, lines REAPER's parser skips as unknown.
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import rpp

from mixbridge.analysis.atomic import atomic_path
from mixbridge.analysis.errors import OutputError
from mixbridge.effects.vst3 import read_preset_header

SUFFIX = ".RfxChain"  # REAPER's spelling; any case is accepted
STATE_MAGIC = 0xFEED5EEE
STATE_FLAGS = 0x00100000
COMPONENT, CONTROLLER = 1, 0  # the section flags of blob 2
LINE_CHARS = 128
FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193
UNQUOTE = str.maketrans({'"': None, "'": "\u2019", "`": None})  # a quote would open a string token


@dataclass(frozen=True)
class ReaperFx:
    """One VST3 instance of the chain: its identity, its state as a ``.vstpreset`` and the
    track channels (0-based) its pins read and write."""

    name: str
    vendor: str
    bundle: str  # the .vst3 bundle's file name
    class_id: str  # 32 hex digits, as in the .vstpreset
    preset: bytes
    channels: tuple[int, ...] = (0, 1)


def plugin_number(class_id: str) -> int:
    """REAPER's number for a VST3 class (see the module docstring)."""
    raw = bytes.fromhex(class_id)
    guid_order = raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]
    value = FNV_OFFSET
    for byte in guid_order:
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value & 0x7FFFFFFF


def state_sections(preset: bytes, source: str | Path = "<preset>") -> list[tuple[int, bytes]]:
    """The ``.vstpreset``'s component and controller states as (flag, bytes), component first."""
    header = read_preset_header(preset, source)
    chunks = {chunk_id: preset[offset:offset + size] for chunk_id, offset, size in header.chunks}
    if "Comp" not in chunks:
        raise OutputError("the plugin's preset has no component state ('Comp' chunk)", source)
    return [(COMPONENT, chunks["Comp"]), (CONTROLLER, chunks.get("Cont", b""))]


def _lines(blob: bytes) -> list[str]:
    text = base64.b64encode(blob).decode("ascii")
    return [text[i:i + LINE_CHARS] for i in range(0, len(text), LINE_CHARS)]


def _pins(channels: Sequence[int]) -> bytes:
    return struct.pack("<I", len(channels)) + b"".join(struct.pack("<Q", 1 << c) for c in channels)


def fx_element(fx: ReaperFx) -> rpp.Element:
    """The ``<VST ...>`` block of one instance."""
    state = b"".join(struct.pack("<II", len(data), flag) + data for flag, data in state_sections(fx.preset, fx.name))
    number = plugin_number(fx.class_id)
    header = (struct.pack("<II", number, STATE_MAGIC) + _pins(fx.channels) + _pins(fx.channels)
              + struct.pack("<III", len(state), 1, STATE_FLAGS))
    footer = b"\0\0" + struct.pack("<I", 0x10)
    label = f"VST3: {fx.name}" + (f" ({fx.vendor})" if fx.vendor else "")
    return rpp.Element("VST", [label, fx.bundle, "0", "", f"{number}{{{fx.class_id}}}", ""],
                       _lines(header) + _lines(state) + _lines(footer))


def build_rfxchain(fxs: Sequence[ReaperFx], comment: Sequence[str]) -> str:
    """The file's text: the comment block, then each instance in order."""
    text = "".join(f"// {line.translate(UNQUOTE)}".rstrip() + "\n" for line in comment)
    for index, fx in enumerate(fxs):
        fx_id = uuid.uuid5(uuid.NAMESPACE_OID, f"mixbridge/{index}/{fx.class_id}/{fx.channels}")
        text += ("BYPASS 0 0 0\n" + rpp.dumps(fx_element(fx)) + "FLOATPOS 0 0 0 0\n"
                 + f"FXID {{{str(fx_id).upper()}}}\nWAK 0 0\n")
    return text


def write_rfxchain(path: str | Path, fxs: Sequence[ReaperFx], comment: Sequence[str]) -> Path:
    """Write the ``.RfxChain`` atomically; see the module docstring."""
    path = Path(path)
    if path.suffix.lower() != SUFFIX.lower():
        raise OutputError(f"a REAPER FX chain file ends in {SUFFIX}", path)
    text = build_rfxchain(fxs, comment)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
