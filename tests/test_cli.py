"""``mixbridge analyze``: table and JSON output, exit codes, several files with a bad one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mixbridge.analysis.analyze
from mixbridge.assistant.cli import main


@pytest.fixture
def good(sine, write_audio) -> Path:
    """3 s stereo 1 kHz sine at -23 dBFS: -23.0 LUFS."""
    return write_audio("good.wav", sine(1000.0, 48000, 3.0, -23.0, 2), 48000, subtype="PCM_24")


@pytest.fixture
def good_mono(noise, write_audio) -> Path:
    return write_audio("mono.flac", noise(44100, 2.0, -20.0, 1), 44100, subtype="PCM_16")


@pytest.fixture
def corrupt(rng, tmp_path) -> Path:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(rng.bytes(4000))
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_prints_a_table(good, capsys):
    code, out, err = _run(capsys, "analyze", str(good))
    assert code == 0
    assert err == ""
    assert str(good) in out
    assert "48000 Hz, stereo, 3.00 s" in out
    line = next(x for x in out.splitlines() if "integrated loudness" in x)
    assert line.split()[-2:] == ["-23.0", "LUFS"]
    assert "true peak" in out and "dBTP" in out


def test_analyze_mono_file(good_mono, capsys):
    code, out, _ = _run(capsys, "analyze", str(good_mono))
    assert code == 0
    assert "44100 Hz, mono" in out


def test_analyze_json_is_valid(good, capsys):
    code, out, _ = _run(capsys, "analyze", "--json", str(good))
    assert code == 0
    data = json.loads(out)  # a single file: one object
    assert data["source"] == str(good)
    assert data["integrated_lufs"] == pytest.approx(-23.0, abs=0.05)
    assert data["sample_rate"] == 48000 and data["channels"] == 2
    assert len(data["mid_band_db"]) == len(data["band_centres_hz"]) == 31


def test_analyze_json_of_silence_uses_null(write_audio, capsys):
    path = write_audio("quiet.wav", np.zeros((2, 48000)), 48000, subtype="PCM_16")
    code, out, _ = _run(capsys, "analyze", "--json", str(path))
    assert code == 0
    assert "Infinity" not in out and "NaN" not in out
    assert json.loads(out)["integrated_lufs"] is None


def test_several_files_with_a_bad_one(good, good_mono, corrupt, capsys):
    code, out, err = _run(capsys, "analyze", str(good), str(corrupt), str(good_mono))
    assert code == 4  # the corrupt file's UnreadableAudioError
    assert str(good) in out and str(good_mono) in out  # the good ones still printed
    assert out.count("integrated loudness") == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one clear error, no traceback
    assert lines[0].startswith(f"mixbridge: error: {corrupt}: ")


def test_several_files_json_with_a_bad_one(good, good_mono, corrupt, capsys):
    code, out, err = _run(capsys, "analyze", "--json", str(good), str(corrupt), str(good_mono))
    assert code == 4
    results = json.loads(out)
    assert [r["source"] for r in results] == [str(good), str(corrupt), str(good_mono)]
    assert results[1]["code"] == "unreadable" and "decoded" in results[1]["error"]
    assert "integrated_lufs" in results[0] and "integrated_lufs" in results[2]
    assert str(corrupt) in err


def test_first_failure_sets_the_exit_code(good, corrupt, tmp_path, capsys):
    missing = tmp_path / "missing.wav"
    code, out, err = _run(capsys, "analyze", str(missing), str(good), str(corrupt))
    assert code == 3  # not found came first; the corrupt file's 4 does not override it
    assert str(good) in out
    assert len(err.strip().splitlines()) == 2


@pytest.mark.parametrize("make,code", [
    (lambda p: p.write_bytes(b""), 4),
    (lambda p: p.mkdir(), 3),
    (lambda p: None, 3),
])
def test_bad_input_exit_codes(make, code, tmp_path, capsys):
    path = tmp_path / "input.wav"
    make(path)
    rc, out, err = _run(capsys, "analyze", str(path))
    assert rc == code
    assert out == ""
    assert err.count("mixbridge: error:") == 1 and str(path) in err


def test_an_internal_error_on_one_file_does_not_stop_the_batch(good, good_mono, monkeypatch,
                                                                capsys):
    """cli.py's contract: exit code 1 is an internal error, and with several files the first
    failure's code is returned *after all ran*. An unexpected exception on one file (a bug)
    must not lose the other files' results."""
    real = mixbridge.analysis.analyze.analyze_file

    def flaky(path):
        if str(path) == str(good):
            raise RuntimeError("simulated bug")
        return real(path)

    monkeypatch.setattr(mixbridge.analysis.analyze, "analyze_file", flaky)
    code, out, err = _run(capsys, "analyze", str(good), str(good_mono))
    assert code == 1
    assert str(good_mono) in out
    assert f"mixbridge: error: {good}: internal error" in err


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze"])
    assert exc.value.code == 2


def test_console_script_is_installed_and_never_shows_a_traceback(good, corrupt):
    script = Path(sys.executable).with_name("mixbridge")
    assert script.exists(), f"console script not installed at {script}"
    proc = subprocess.run([str(script), "analyze", str(good), str(corrupt)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4
    assert "Traceback" not in proc.stderr
    assert f"mixbridge: error: {corrupt}:" in proc.stderr
    assert str(good) in proc.stdout and "LUFS" in proc.stdout


def test_an_internal_error_in_master_is_one_line_with_exit_1(monkeypatch, capsys, tmp_path):
    import mixbridge.assistant.master as master

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(master, "master_file", boom)
    code = main(["master", "in.wav", "-o", str(tmp_path / "out.wav"), "--lufs", "-14"])
    err = capsys.readouterr().err
    assert code == 1
    assert "internal error" in err and "simulated bug" in err and "Traceback" not in err


def test_every_option_of_every_command_has_help():
    """`mixbridge COMMAND [SUBCOMMAND] --help` explains every option and argument (the target,
    delivery and judgment groups are declared once, with their help)."""
    import argparse

    from mixbridge.assistant.cli import build_parser

    def parsers(parser: argparse.ArgumentParser, name: str):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child_name, child in action.choices.items():
                    yield from parsers(child, f"{name} {child_name}".strip())

    found = list(parsers(build_parser(), ""))
    assert {"master", "suggest", "batch", "stems", "plugins scan", "model evaluate"} <= {n for n, _ in found}
    missing = [f"{name}: {action.option_strings or action.dest}" for name, parser in found
               for action in parser._actions
               if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help]
    assert missing == []
