"""Every exit code of the README's table, each with an input that triggers it (through the CLI,
in process), and silent audio refused by every command that masters or suggests (exit 5)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_master import _run

SR = 44100
README = Path(__file__).resolve().parents[1] / "README.md"


def _wav(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples.T, SR, subtype="FLOAT")
    return path


def _music(seconds: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.standard_normal((2, int(SR * seconds))) * 0.05).astype(np.float32)


def _silent(seconds: float = 4.0) -> np.ndarray:
    return np.zeros((2, int(SR * seconds)), np.float32)


def _case(code: int, tmp: Path, monkeypatch) -> list[str]:
    """The argv that makes the CLI exit with ``code``."""
    good = _wav(tmp / "good.wav", _music())
    if code == 0:
        return ["analyze", str(good)]
    if code == 1:  # a bug: any exception that is not ours
        monkeypatch.setattr("mixbridge.analysis.analyze.analyze_file", lambda *a, **k: 1 / 0)
        return ["analyze", str(good)]
    if code == 2:
        return ["master", str(good), "-o", str(tmp / "o.wav"), "--target", "no-such-target"]
    if code == 3:
        return ["analyze", str(tmp / "missing.wav")]
    if code == 4:
        (tmp / "noise.wav").write_bytes(np.random.default_rng(2).bytes(4000))
        return ["analyze", str(tmp / "noise.wav")]
    if code == 5:
        return ["master", str(_wav(tmp / "silent.wav", _silent())), "-o", str(tmp / "o.wav")]
    if code == 6:
        (tmp / "taken").mkdir()
        return ["master", str(good), "-o", str(tmp / "taken"), "--engine", "dsp"]
    if code == 7:
        (tmp / "chain.json").write_text('{"chain_version": 999}')
        return ["master", str(good), "-o", str(tmp / "o.wav"), "--chain", str(tmp / "chain.json")]
    if code == 8:
        _wav(tmp / "in" / "a.wav", _music())
        (tmp / "in" / "b.wav").write_bytes(b"RIFF junk")
        return ["batch", str(tmp / "in"), "-o", str(tmp / "out"), "--engine", "dsp"]
    if code == 130:
        def interrupted(*a, **k):
            raise KeyboardInterrupt

        monkeypatch.setattr("mixbridge.analysis.analyze.analyze_file", interrupted)
        return ["analyze", str(good)]
    raise AssertionError(code)


def _documented_codes() -> list[int]:
    section = README.read_text().split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    return sorted({int(c) for c in re.findall(r"`(\d+)`", section)})


def test_the_readme_documents_the_codes_walked_here():
    assert _documented_codes() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 130]


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5, 6, 7, 8, 130])
def test_every_documented_exit_code(code, tmp_path, monkeypatch):
    argv = _case(code, tmp_path, monkeypatch)
    got, _, err = _run(*argv)
    assert got == code, f"{argv}: exit {got}, stderr {err!r}"
    if code not in (0, 130):
        assert err.strip(), "a refusal says why"
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("command", ["master", "suggest", "stems"])
def test_silent_audio_is_outside_the_input_policy_for_every_command(command, tmp_path):
    silent = _wav(tmp_path / "song" / "silent.wav", _silent())
    if command == "stems":
        _wav(tmp_path / "song" / "other.wav", _silent())
        argv = ["stems", str(tmp_path / "song"), "-o", str(tmp_path / "out")]
    elif command == "master":
        argv = ["master", str(silent), "-o", str(tmp_path / "o.wav")]
    else:
        argv = ["suggest", str(silent)]
    code, _, err = _run(*argv)
    assert code == 5 and "silent" in err, err
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "out" / "mix-master.wav").exists()
