"""End to end: ``mixbridge master`` / ``mixbridge profile`` in-process, and ``master_file``.

Every output is re-measured from the written file, with our analyzer and with libebur128.
The settings engine is the DSP baseline (``--engine dsp``), the one the README documents.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ebur128_integrated_lufs, ebur128_true_peak_dbtp

import mixbridge.analysis.audio
from mixbridge.analysis.analyze import analyze_file
from mixbridge.analysis.features import Features
from mixbridge.assistant.cli import main
from mixbridge.assistant.master import master_file, resolve_target
from mixbridge.assistant.options import MasterOptions
from mixbridge.assistant.targets import load_profile, load_target, target_names
from mixbridge.assistant.text import NO_CHANGES
from mixbridge.effects.schema import ChainSettings, describe

REPO = Path(__file__).resolve().parents[1]
DSP = ("--engine", "dsp")


def groove(sample_rate: int, seconds: float = 4.0, channels: int = 2, seed: int = 7,
           peak: float = 0.5) -> np.ndarray:
    """A music-like loop: pitch-swept kick on the beat, hats off the beat (panned), a saw-ish
    bass line and a four-note chord spread across the stereo field. ``(channels, n)``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    out = np.zeros((2, n))
    beat = 0.5  # 120 BPM
    for start in np.arange(0.0, seconds, beat):
        i = int(start * sample_rate)
        m = min(int(0.35 * sample_rate), n - i)
        tt = np.arange(m) / sample_rate
        out[:, i : i + m] += 0.8 * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.12)
        j = int((start + beat / 2) * sample_rate)
        if j < n:
            m = min(int(0.05 * sample_rate), n - j)
            hat = np.diff(rng.standard_normal(m) * np.exp(-np.arange(m) / sample_rate / 0.01), prepend=0.0)
            out[0, j : j + m] += 0.15 * hat
            out[1, j : j + m] += 0.10 * hat
    bass_phase = 2 * np.pi * np.cumsum(np.where((t // 1.0) % 2 == 0, 55.0, 41.2)) / sample_rate
    out += 0.25 * sum(np.sin(h * bass_phase) / h for h in range(1, 6))
    for freq, pan in ((220.0, 0.3), (261.6, 0.7), (329.6, 0.5), (440.0, 0.2)):
        tone = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) + 0.3 * np.sin(4 * np.pi * freq * t)
        out[0] += 0.06 * (1 - pan) * tone
        out[1] += 0.06 * pan * tone
    out *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)  # 10 ms fades
    out *= peak / np.max(np.abs(out))
    return out if channels == 2 else out.mean(axis=0, keepdims=True)


def _write(path: Path, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> Path:
    sf.write(str(path), samples.T, sample_rate, subtype=subtype)
    return path


def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _measure(path: Path) -> tuple[float, float, Features]:
    """(our integrated LUFS, libebur128's integrated LUFS, our Features) of a written file."""
    features = analyze_file(path)
    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return features.integrated_lufs, ebur128_integrated_lufs(data.T, sr), features


def _assert_meets(path: Path, lufs: float, ceiling: float) -> Features:
    ours, theirs, features = _measure(path)
    assert ours == pytest.approx(lufs, abs=0.1)
    assert theirs == pytest.approx(lufs, abs=0.1)
    assert features.true_peak_dbtp <= ceiling
    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    # libebur128's interpolator, not the one our limiter shares with our meter (EBU 3341: +0.2 dB)
    assert ebur128_true_peak_dbtp(data.T, sr) <= ceiling + 0.2
    return features


@pytest.fixture
def mix(tmp_path) -> Path:
    """4 s stereo 44.1 kHz music-like mix, 24-bit WAV, about -19 LUFS."""
    return _write(tmp_path / "mix.wav", groove(44100), 44100)


@pytest.fixture
def reference(tmp_path) -> Path:
    """A different, louder 4 s stereo 48 kHz track to aim for."""
    x = groove(48000, 4.0, 2, seed=11, peak=0.95)
    return _write(tmp_path / "ref.wav", x, 48000)


@pytest.fixture(scope="module")
def spotify_run(tmp_path_factory):
    """One master of a music-like mix to spotify, with --report and --save-chain."""
    folder = tmp_path_factory.mktemp("spotify")
    mix = _write(folder / "mix.wav", groove(44100), 44100)
    out, report, chain = folder / "master.wav", folder / "report.json", folder / "chain.json"
    code, stdout, stderr = _run("master", mix, "-o", out, "--target", "spotify", *DSP,
                                "--report", report, "--save-chain", chain)
    return {"code": code, "stdout": stdout, "stderr": stderr, "mix": mix, "out": out,
            "report": report, "chain": chain, "folder": folder}


# ---- the main path ---------------------------------------------------------------------------
def test_master_to_spotify_meets_the_spec(spotify_run):
    assert spotify_run["code"] == 0, spotify_run["stderr"]
    out = spotify_run["out"]
    assert out.exists()
    features = _assert_meets(out, -14.0, -1.0)
    assert features.sample_rate == 44100 and features.channels == 2
    assert sf.info(str(out)).subtype == "PCM_24"  # the default bit depth
    assert sf.info(str(out)).frames == sf.info(str(spotify_run["mix"])).frames
    leftovers = sorted(p.name for p in spotify_run["folder"].iterdir())
    assert leftovers == ["chain.json", "master.wav", "mix.wav", "report.json"]


def test_master_of_the_bundled_example(tmp_path):
    out = tmp_path / "groove-master.wav"
    code, _, err = _run("master", REPO / "examples" / "groove.flac", "-o", out, "--target", "spotify", *DSP)
    assert code == 0, err
    _assert_meets(out, -14.0, -1.0)


def _numbers(line: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d+\.\d+", line)]


def test_master_prints_before_and_after_and_the_settings(spotify_run):
    stdout = spotify_run["stdout"]
    lines = stdout.splitlines()
    report = json.loads(spotify_run["report"].read_text())
    before, after = report["input"]["features"], report["output"]["features"]
    assert str(spotify_run["mix"]) in lines[0] and str(spotify_run["out"]) in lines[0]
    assert "spotify" in lines[1] and "-14.0 LUFS" in lines[1] and "-1.0 dBTP" in lines[1]
    rows = {"integrated loudness": "integrated_lufs", "true peak": "true_peak_dbtp",
            "loudness range": "loudness_range_lu", "crest factor": "crest_factor_db"}
    for label, key in rows.items():
        line = next((x for x in lines if x.strip().startswith(label)), None)
        assert line is not None and "→" in line, f"no '{label}' row in:\n{stdout}"
        b, a = _numbers(line)[:2]
        assert b == pytest.approx(before[key], abs=0.06)
        assert a == pytest.approx(after[key], abs=0.06)
    tonal = next(x for x in lines if "tonal error" in x)
    assert _numbers(tonal)[:2] == pytest.approx(
        [report["tonal_error_db"]["before"], report["tonal_error_db"]["after"]], abs=0.06)
    fin = next(x for x in lines if x.strip().startswith("finalizer"))
    assert _numbers(fin)[:2] == pytest.approx(
        [report["finalizer"]["gain_db"], report["finalizer"]["limiting_db"]], abs=0.06)
    # the settings, stage by stage, as describe() words them
    start = lines.index("  settings:")
    expected = describe(ChainSettings.from_dict(report["settings"])) or [NO_CHANGES]
    assert [x.strip() for x in lines[start + 1 : start + 1 + len(expected)]] == expected


README_REPORT_KEYS = {
    "report_version": None,
    "input": ("path", "features"),
    "target": ("name", "lufs", "ceiling_dbtp", "profile", "profile_description"),
    "engine": None,
    "settings": ("schema_version", "stages"),
    "finalizer": ("gain_db", "limiting_db"),
    "output": ("path", "bit_depth", "features"),
    "tonal_error_db": ("before", "after"),
    "warnings": None,
}


def test_report_has_every_documented_key(spotify_run):
    report = json.loads(spotify_run["report"].read_text())
    for key, sub in README_REPORT_KEYS.items():
        assert key in report, f"report lacks {key!r}"
        for name in sub or ():
            assert name in report[key], f"report lacks {key}.{name}"
    assert report["report_version"] == 1
    assert report["input"]["path"] == str(spotify_run["mix"])
    assert report["output"]["path"] == str(spotify_run["out"])
    assert report["output"]["bit_depth"] == "24"
    assert report["engine"] == "dsp"
    assert report["target"] == {**report["target"], "name": "spotify", "lufs": -14.0, "ceiling_dbtp": -1.0,
                                "profile": "balanced"}
    assert isinstance(report["target"]["profile_description"], str) and report["target"]["profile_description"]
    assert isinstance(report["warnings"], list)
    for side in ("input", "output"):
        feats = report[side]["features"]
        assert {f.name for f in fields(Features)} <= set(feats)
        assert "feature_version" in feats and len(feats["band_centres_hz"]) == 31
        Features.from_dict(feats)  # round-trips
    assert report["output"]["features"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.1)
    assert report["output"]["features"]["true_peak_dbtp"] <= -1.0
    for key in ("gain_db", "limiting_db"):
        assert isinstance(report["finalizer"][key], float)
    assert report["finalizer"]["limiting_db"] >= 0.0
    assert report["tonal_error_db"]["after"] >= 0.0
    ChainSettings.from_dict(report["settings"])  # a valid chain
    assert "NaN" not in spotify_run["report"].read_text() and "Infinity" not in spotify_run["report"].read_text()


def test_saved_chain_is_reapplied_exactly(spotify_run, tmp_path):
    saved = ChainSettings.load(spotify_run["chain"])
    first = json.loads(spotify_run["report"].read_text())
    assert saved.to_dict() == first["settings"]
    out, report = tmp_path / "again.wav", tmp_path / "again.json"
    code, stdout, err = _run("master", spotify_run["mix"], "-o", out, "--target", "spotify",
                             "--chain", spotify_run["chain"], "--report", report)
    assert code == 0, err
    second = json.loads(report.read_text())
    assert second["engine"] == "chain-file"
    assert second["settings"] == first["settings"]
    assert "chain-file" in stdout
    a, _ = sf.read(str(spotify_run["out"]), dtype="float64")
    b, _ = sf.read(str(out), dtype="float64")
    assert a.shape == b.shape
    worst = float(np.max(np.abs(a - b)))
    assert worst <= 4 * 2.0 ** -23, (  # within the 24-bit dither (the dither itself is seeded)
        f"re-applied chain differs by up to {worst:.2e} ({worst * 2 ** 23:.0f} LSB at 24 bit)")
    _assert_meets(out, -14.0, -1.0)


def test_library_master_file_with_a_chain(mix, tmp_path):
    chain = ChainSettings.create({"peak2.freq_hz": 700.0, "peak2.gain_db": 2.0, "trim.gain_db": -3.0})
    target = resolve_target("apple-music")
    report = master_file(mix, tmp_path / "out.flac", target, MasterOptions(engine="dsp", chain=chain, bit_depth="16"))
    assert report.engine == "chain-file" and report.settings == chain
    assert report.output_features.integrated_lufs == pytest.approx(-16.0, abs=0.1)
    assert sf.info(str(tmp_path / "out.flac")).format == "FLAC"
    json.dumps(report.to_dict(), allow_nan=False)
    _assert_meets(tmp_path / "out.flac", -16.0, -1.0)


# ---- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bit_depth,subtype", [("16", "PCM_16"), ("24", "PCM_24"), ("32f", "FLOAT")])
def test_bit_depth_sets_the_written_subtype(bit_depth, subtype, mix, tmp_path):
    out = tmp_path / f"out{bit_depth}.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", *DSP, "--bit-depth", bit_depth)
    assert code == 0, err
    assert sf.info(str(out)).subtype == subtype
    _assert_meets(out, -14.0, -1.0)


def test_float_flac_is_refused(mix, tmp_path):
    out = tmp_path / "out.flac"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", *DSP, "--bit-depth", "32f")
    assert code == 6 and "FLAC" in err
    assert not out.exists()


def test_lufs_and_ceiling_options(mix, tmp_path):
    out, report = tmp_path / "out.wav", tmp_path / "r.json"
    code, _, err = _run("master", mix, "-o", out, "--lufs", "-20", "--ceiling", "-2", *DSP, "--report", report)
    assert code == 0, err
    _assert_meets(out, -20.0, -2.0)
    target = json.loads(report.read_text())["target"]
    assert target["lufs"] == -20.0 and target["ceiling_dbtp"] == -2.0 and target["name"] == "custom"


def test_lufs_overrides_the_targets_loudness(mix, tmp_path):
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "amazon", "--lufs", "-18", *DSP)
    assert code == 0, err
    _assert_meets(out, -18.0, -2.0)  # amazon's -2 dBTP ceiling kept


def test_mono_input_gives_mono_output(tmp_path):
    mono = _write(tmp_path / "mono.wav", groove(48000, channels=1), 48000)
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mono, "-o", out, "--target", "spotify", *DSP)
    assert code == 0, err
    assert sf.info(str(out)).channels == 1
    _assert_meets(out, -14.0, -1.0)


def test_96_khz_input_keeps_96_khz(tmp_path):
    hi = _write(tmp_path / "hi.wav", groove(96000, seconds=3.0), 96000)
    out = tmp_path / "out.wav"
    code, _, err = _run("master", hi, "-o", out, "--target", "apple-music", *DSP)
    assert code == 0, err
    info = sf.info(str(out))
    assert info.samplerate == 96000 and info.frames == 3 * 96000
    _assert_meets(out, -16.0, -1.0)


# ---- references and profiles -------------------------------------------------------------------
def test_reference_sets_the_loudness_when_no_target_is_given(mix, reference, tmp_path):
    ref_lufs = analyze_file(reference).integrated_lufs
    assert -14.0 < ref_lufs < -8.0 and abs(ref_lufs - analyze_file(mix).integrated_lufs) > 3.0
    out, report = tmp_path / "out.wav", tmp_path / "r.json"
    code, stdout, err = _run("master", mix, "-o", out, "--reference", reference, *DSP, "--report", report)
    assert code == 0, err
    target = json.loads(report.read_text())["target"]
    assert target["name"] == "reference" and target["profile"] == "reference"
    assert target["lufs"] == pytest.approx(ref_lufs, abs=0.01)
    assert target["ceiling_dbtp"] == -1.0
    _assert_meets(out, ref_lufs, -1.0)


def test_reference_with_a_target_keeps_the_targets_loudness(mix, reference, tmp_path):
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--reference", reference, "--target", "ebu-r128", *DSP)
    assert code == 0, err
    _assert_meets(out, -23.0, -1.0)


@pytest.mark.parametrize("kind", ("silent", "short"))
def test_unusable_reference_is_refused_as_audio_outside_the_policy(kind, mix, tmp_path):
    if kind == "silent":
        ref = _write(tmp_path / "ref.wav", np.zeros((2, 5 * 48000)), 48000)
    else:
        ref = _write(tmp_path / "ref.wav", groove(48000, seconds=2.0), 48000)
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--reference", ref, *DSP)
    assert code == 5
    assert str(ref) in err and "reference" in err and "3 s" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_profile_command_writes_a_profile_that_master_accepts(mix, reference, tmp_path):
    profile = tmp_path / "mine.toml"
    code, stdout, err = _run("profile", reference, mix, "-o", profile, "--name", "mine",
                             "--description", "two test tracks")
    assert code == 0, err
    assert profile.exists() and "mine" in stdout
    loaded = load_profile(str(profile))
    assert loaded.name == "mine" and loaded.description == "two test tracks"
    assert len(loaded.band_shape_db) == 31 and all(np.isfinite(loaded.band_shape_db))
    out, report = tmp_path / "out.wav", tmp_path / "r.json"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", "--profile", profile, *DSP,
                        "--report", report)
    assert code == 0, err
    assert json.loads(report.read_text())["target"]["profile"] == "mine"
    _assert_meets(out, -14.0, -1.0)


def test_profile_from_a_silent_track_is_refused(tmp_path):
    silent = _write(tmp_path / "silent.wav", np.zeros((2, 4 * 48000)), 48000)
    code, _, err = _run("profile", silent, "-o", tmp_path / "p.toml", "--name", "x")
    assert code == 5 and str(silent) in err
    assert not (tmp_path / "p.toml").exists()


README_TARGETS = {  # README "Targets and profiles": LUFS, ceiling
    "spotify": (-14, -1), "apple-music": (-16, -1), "youtube": (-14, -1), "amazon": (-14, -2),
    "deezer": (-15, -1), "tidal": (-14, -1), "aes-td1008": (-16, -1), "ebu-r128": (-23, -1),
    "atsc-a85": (-24, -2), "cd": (-9, -0.3), "club": (-8, -0.3),
}


def test_all_shipped_targets_load_with_their_profiles():
    assert set(target_names()) == set(README_TARGETS)
    for name, (lufs, ceiling) in README_TARGETS.items():
        target = load_target(name)
        assert (target.lufs, target.ceiling_dbtp) == (lufs, ceiling), name
        profile = target.profile
        assert profile.name and len(profile.band_shape_db) == 31, name
        assert all(np.isfinite(profile.band_shape_db)), name
        assert 0.0 <= profile.width <= 1.0 and profile.loudness_range_lu >= 0.0, name
    for name in ("balanced", "bass-heavy", "bright", "orchestral"):
        assert load_target("spotify", name).profile.name == name


# ---- refusals -------------------------------------------------------------------------------------
def test_unknown_target_lists_the_valid_ones(mix, tmp_path):
    code, _, err = _run("master", mix, "-o", tmp_path / "out.wav", "--target", "spotifyy", *DSP)
    assert code == 2 and "spotifyy" in err
    for name in target_names():
        assert name in err
    assert not (tmp_path / "out.wav").exists()


def test_output_equal_to_input_is_refused_without_overwrite(mix):
    original = mix.read_bytes()
    code, _, err = _run("master", mix, "-o", mix, "--target", "spotify", *DSP)
    assert code == 6 and str(mix) in err and "--overwrite" in err
    assert mix.read_bytes() == original
    code, _, err = _run("master", mix, "-o", mix, "--target", "spotify", *DSP, "--overwrite")
    assert code == 0, err
    assert mix.read_bytes() != original
    _assert_meets(mix, -14.0, -1.0)


def test_existing_output_is_refused_without_overwrite(mix, tmp_path):
    out = tmp_path / "out.wav"
    out.write_bytes(b"an earlier master")
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", *DSP)
    assert code == 6 and str(out) in err and "--overwrite" in err
    assert out.read_bytes() == b"an earlier master"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", *DSP, "--overwrite")
    assert code == 0, err
    _assert_meets(out, -14.0, -1.0)


def _chain_file(tmp_path: Path, edit) -> Path:
    data = ChainSettings.create().to_dict()
    edit(data)
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(data))
    return path


def test_chain_of_another_schema_version_is_refused(mix, tmp_path):
    chain = _chain_file(tmp_path, lambda d: d.update(schema_version=5))
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", "--chain", chain)
    assert code == 7 and str(chain) in err and "schema_version is 5" in err and "reads 1 to 4" in err
    assert not out.exists()


def _version_1(data: dict) -> None:
    data.update(schema_version=1)
    del data["stages"]["match_eq"], data["stages"]["polarity"], data["stages"]["expander"]


def test_chain_of_schema_version_1_is_read_with_the_match_eq_off(mix, tmp_path, caplog):
    """Version 1 is version 2 without the match EQ (and 3 without the polarity, 4 without the
    expander): read, logged, and they are off."""
    chain = _chain_file(tmp_path, lambda d: (_version_1(d), d["stages"]["peak2"].update(gain_db=1.5)))
    with caplog.at_level("INFO"):
        settings = ChainSettings.load(chain)
    assert settings["peak2.gain_db"] == 1.5 and not settings.active("match_eq") and not settings.is_on("expander")
    assert "schema version 1" in caplog.text and str(chain) in caplog.text
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", "--chain", chain)
    assert code == 0, err


def test_chain_of_version_1_with_a_match_eq_is_refused(mix, tmp_path):
    chain = _chain_file(tmp_path, lambda d: d.update(schema_version=1))
    code, _, err = _run("master", mix, "-o", tmp_path / "out.wav", "--target", "spotify", "--chain", chain)
    assert code == 7 and "schema_version 1 has no match_eq stage" in err


def test_chain_with_a_match_eq_band_out_of_range_is_refused(mix, tmp_path):
    chain = _chain_file(tmp_path, lambda d: d["stages"]["match_eq"].update(band_1000hz_db=13.0))
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", "--chain", chain)
    assert code == 7
    assert str(chain) in err and "match_eq.band_1000hz_db = 13" in err and "[-12, 12]" in err
    assert not out.exists()


def test_chain_with_an_out_of_range_value_is_refused(mix, tmp_path):
    chain = _chain_file(tmp_path, lambda d: d["stages"]["peak3"].update(gain_db=18.0))
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", "--chain", chain)
    assert code == 7
    assert str(chain) in err and "peak3.gain_db" in err and "[-12, 12]" in err
    assert not out.exists()


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder the process cannot create files in: read-only for a normal user; for root,
    which writes through permission bits, a "folder" that is a regular file (nothing can be
    created under it). Both live in the test's own tmp_path, which no other process touches."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        not_a_folder = tmp_path / "locked"
        not_a_folder.write_text("a file, not a folder\n")
        yield not_a_folder
        return
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def _stray_files(tmp_path: Path) -> list[str]:
    """Temporary or partial outputs left anywhere under ``tmp_path`` (ours start with '.')."""
    return sorted(str(p) for p in tmp_path.rglob(".*"))


def test_unwritable_output_folder(mix, unwritable_folder, tmp_path):
    out = unwritable_folder / "mixbridge-test-master.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", *DSP)
    assert code == 6 and str(out) in err
    assert "Traceback" not in err
    assert not out.exists()
    assert _stray_files(tmp_path) == []  # no partial file


def test_a_failed_write_leaves_no_partial_file(mix, tmp_path, monkeypatch):
    real_write = mixbridge.analysis.audio.sf.SoundFile.write

    def failing_write(self, data):  # half a block reaches the disk, then the disk is full
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mixbridge.analysis.audio.sf.SoundFile, "write", failing_write)
    out = tmp_path / "out.wav"
    code, _, err = _run("master", mix, "-o", out, "--target", "spotify", *DSP)
    assert code == 6 and str(out) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]


def test_reference_features_are_cached_and_refreshed_when_the_file_changes(tmp_path, monkeypatch):
    import mixbridge.analysis.analyze as analyze_module
    from mixbridge.analysis.analyze import analyze_file_cached

    ref = Path(__file__).resolve().parent.parent / "examples" / "groove.flac"
    copy = tmp_path / "ref.flac"
    copy.write_bytes(ref.read_bytes())
    calls = []
    real = analyze_module.analyze_file
    monkeypatch.setattr(analyze_module, "analyze_file", lambda p, **kw: calls.append(p) or real(p, **kw))
    first = analyze_file_cached(copy, tmp_path / "cache")
    second = analyze_file_cached(copy, tmp_path / "cache")
    assert len(calls) == 1 and second.integrated_lufs == pytest.approx(first.integrated_lufs, abs=1e-4)
    import os

    os.utime(copy, ns=(1, 1))  # a changed modification time means a changed file
    analyze_file_cached(copy, tmp_path / "cache")
    assert len(calls) == 2


def test_the_longer_of_two_analyses_side_by_side_splits_its_meters(tmp_path, monkeypatch):
    from mixbridge.analysis.analyze import analyze_file_cached, is_cached
    from mixbridge.assistant.master import analysis_threads

    monkeypatch.setenv("MIXBRIDGE_CACHE", str(tmp_path / "cache"))
    short, long = _write(tmp_path / "short.wav", groove(22050, 4.0), 22050), _write(tmp_path / "long.wav",
                                                                                    groove(22050, 9.0), 22050)
    assert analysis_threads(short) == (2, 2)  # alone
    assert analysis_threads(short, [long]) == (1, 2)
    assert analysis_threads(long, [short]) == (2, 1)
    assert analysis_threads(long, [short, short, short]) == (1, 2)  # references are analysed one after another
    assert analysis_threads(short, [tmp_path / "missing.wav"]) == (1, 1)  # the analysis says what is wrong
    assert not is_cached(long)
    analyze_file_cached(long)
    assert is_cached(long) and analysis_threads(short, [long]) == (2, 2)  # a cached reference costs nothing


def test_a_mix_with_one_channel_inverted_is_put_back_in_phase_once(tmp_path, monkeypatch):
    """A right channel exported upside down (the mix cancels in mono): judged as heard in phase,
    so it gets exactly the chain the in-phase mix gets, plus the polarity stage first, and the
    evidence's first line says why. Mastering the master again leaves the polarity alone."""
    x = groove(44100, 12.0)
    in_phase = _write(tmp_path / "in-phase.wav", x, 44100)
    inverted = _write(tmp_path / "inverted.wav", x * np.array([[1.0], [-1.0]], dtype=np.float32), 44100)
    spotify = resolve_target("spotify")
    normal = master_file(in_phase, tmp_path / "a.wav", spotify, MasterOptions(engine="dsp"))
    import mixbridge.analysis.audio as audio_module

    decodes, real_iter = [], audio_module.iter_blocks
    monkeypatch.setattr(audio_module, "iter_blocks", lambda p, *a: decodes.append(p) or real_iter(p, *a))
    fixed = master_file(inverted, tmp_path / "b.wav", spotify, MasterOptions(engine="dsp"))
    assert decodes == [inverted]  # the analysis as heard in phase comes from the held blocks
    assert fixed.input_features.correlation < -0.99 and fixed.settings.is_on("polarity")
    assert not normal.settings.is_on("polarity")
    assert fixed.settings.replace(enabled={"polarity": False}) == normal.settings
    assert fixed.moves[0].stage == "polarity" and "polarity inverted" in fixed.moves[0].text
    assert any("out of phase" in w and "back in phase" in w for w in fixed.warnings)
    assert fixed.output_features.correlation == pytest.approx(normal.output_features.correlation, abs=1e-3)
    assert fixed.output_features.correlation > 0.9
    again = master_file(tmp_path / "b.wav", tmp_path / "c.wav", spotify, MasterOptions(engine="dsp"))
    assert not again.settings.is_on("polarity")
