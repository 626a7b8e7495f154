"""Seeded mutations of small generated WAV/FLAC/OGG files (truncations, header byte flips, body
byte runs, fmt fields, chunk sizes, float extremes), through the library and the CLI: never a
traceback or a hang, always a documented exit code, never a partial output."""

from __future__ import annotations

import signal
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_master import _run

from mixbridge.analysis.analyze import analyze_file
from mixbridge.analysis.errors import MixbridgeError

SR = 22050
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7}  # a single-file command: no batch (8), no bug (1)
SEEDS = range(6)
CASE_SECONDS = 30  # a hang is a failure, not a stuck CI


def _base(tmp: Path, kind: str) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * 1.5)) / SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    x = np.stack([x, np.roll(x, 100)])
    ext, subtype = {"wav16": (".wav", "PCM_16"), "wavf": (".wav", "FLOAT"), "flac": (".flac", "PCM_16"),
                    "ogg": (".ogg", "VORBIS")}[kind]
    path = tmp / f"base-{kind}{ext}"
    sf.write(str(path), x.T, SR, subtype=subtype)
    return path


def _mutate(data: bytes, mutation: str, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    n = len(b)
    if mutation == "truncate":
        return bytes(b[: int(rng.integers(1, n))])
    if mutation == "header-flip":
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, min(64, n)))
            b[at] ^= 1 << int(rng.integers(0, 8))
    elif mutation == "body-run":
        at, length = int(rng.integers(64, n - 1)), int(rng.integers(16, 1024))
        b[at : at + length] = rng.bytes(min(length, n - at))
    elif mutation == "fmt-field" and b[:4] == b"RIFF":
        field = [(22, "<H", [0, 3, 9, 65535]), (24, "<I", [0, 1, 4000, 10**9]), (34, "<H", [0, 7, 64])]
        offset, fmt, values = field[int(rng.integers(0, len(field)))]
        struct.pack_into(fmt, b, offset, values[int(rng.integers(0, len(values)))])
    elif mutation == "chunk-size" and b[:4] == b"RIFF":
        at = b.find(b"data") + 4 if rng.random() < 0.5 else 4
        struct.pack_into("<I", b, at, int(rng.choice([0, 1, 7, n * 3, 0xFFFFFFFE])))
    elif mutation == "float-extremes" and b[:4] == b"RIFF":
        start = b.find(b"data") + 8
        specials = [np.nan, np.inf, -np.inf, 3.2e38, -1e30, 5000.0]
        for _ in range(8):
            at = start + 4 * int(rng.integers(0, (n - start) // 4))
            struct.pack_into("<f", b, at, float(specials[int(rng.integers(0, len(specials)))]))
    else:  # the mutation does not apply to this container: flip body bytes instead
        at = int(rng.integers(n // 2, n))
        b[at] ^= 0xFF
    return bytes(b)


MUTATIONS = ("truncate", "header-flip", "body-run", "fmt-field", "chunk-size", "float-extremes")
KINDS = ("wav16", "wavf", "flac", "ogg")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    return {kind: _base(tmp, kind).read_bytes() for kind in KINDS}


def _alarm(signum, frame):
    raise TimeoutError("a fuzz case hung")


@pytest.mark.parametrize("mutation", MUTATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_mutated_files_get_a_documented_answer(kind, mutation, bases, tmp_path):
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for seed in SEEDS:
            rng = np.random.default_rng(hash((kind, mutation, seed)) & 0xFFFF)
            path = tmp_path / f"case{seed}{'.ogg' if kind == 'ogg' else '.flac' if kind == 'flac' else '.wav'}"
            path.write_bytes(_mutate(bases[kind], mutation, rng))
            signal.alarm(CASE_SECONDS)
            try:
                analyze_file(path)
            except MixbridgeError as exc:
                assert exc.exit_code in DOCUMENTED and str(path) in str(exc), exc
            if seed % 2 == 0:  # and through the CLI: analyze and master
                out = tmp_path / f"out{seed}.wav"
                code, _, err = _run("master", path, "-o", out, "--engine", "dsp", "--no-refine")
                assert code in DOCUMENTED, (code, err)
                assert "Traceback" not in err
                assert out.exists() == (code == 0), (code, err)
            signal.alarm(0)
            assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "tmp"))) == []
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
