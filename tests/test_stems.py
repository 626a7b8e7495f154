"""``mixbridge stems``: one shared bus decision; the processed stems keep their balance and sum
to the mastered mix (measured from the written files); the linked compressor; bad stem sets.

The stems are synthetic (drum-like noise bursts and a kick, a bass sine, pad chords, a
vocal-like formant tone). Runs use the DSP engine (``--engine dsp``), as test_master does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pedalboard as pb
import pytest
import soundfile as sf
from conftest import ebur128_integrated_lufs
from scipy.signal import butter, lfilter
from test_master import _run, groove, unwritable_folder  # noqa: F401 (a fixture)

import mixbridge.effects.compressor
from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.assistant.master import resolve_target
from mixbridge.assistant.stems import (
    SUBSONIC_HZ,
    StemOptions,
    eq_moves,
    low_spectrum,
    master_stems,
    measure_correction,
)
from mixbridge.effects.bus import render_bus
from mixbridge.effects.compressor import ballistics_coefficient, compressor_gain, peak_envelope
from mixbridge.effects.finalize import FinalizeSpec, finalize
from mixbridge.effects.limiter import TruePeakLimiter
from mixbridge.effects.render import render
from mixbridge.effects.schema import ChainSettings

SR = 44100
DSP = ("--engine", "dsp")
STEM_NAMES = ("bass", "drums", "pad", "vocals")


def song_stems(sample_rate: int, seconds: float = 4.0, seed: int = 3) -> dict[str, np.ndarray]:
    """Four stems of one song, ``(channels, n)`` float64: stereo drums (noise bursts and a
    pitch-swept kick), a mono bass sine, stereo pad chords, a mono vocal-like formant tone.
    Their loudness differs by about 12 LU (pad quietest, bass loudest)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    drums = np.zeros((2, n))
    for k, start in enumerate(np.arange(0.0, seconds, 0.25)):
        i = int(start * sample_rate)
        m = min(int(0.12 * sample_rate), n - i)
        tt = np.arange(m) / sample_rate
        if k % 4 == 0:
            hit = 2.0 * np.sin(2 * np.pi * (45 + 90 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.1)
        else:
            hit = rng.standard_normal(m) * np.exp(-tt / 0.02)
        drums[0, i : i + m] += 0.3 * hit
        drums[1, i : i + m] += 0.25 * hit
    bass = 0.3 * np.sin(2 * np.pi * np.where((t // 1.0) % 2 == 0, 55.0, 73.4) * t)[None]
    pad = np.zeros((2, n))
    for freq, pan in ((220.0, 0.3), (277.2, 0.7), (329.6, 0.5)):
        tone = sum(np.sin(2 * np.pi * h * freq * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 5))
        pad[0] += 0.04 * (1 - pan) * tone
        pad[1] += 0.04 * pan * tone
    phase = 2 * np.pi * np.cumsum(180.0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / sample_rate
    source = sum(np.sin(h * phase) / h for h in range(1, 30))
    vocal = np.zeros(n)
    for centre, half_width in ((700, 100), (1200, 120), (2600, 200)):  # three formants
        b, a = butter(2, [centre - half_width, centre + half_width], btype="band", fs=sample_rate)
        vocal += lfilter(b, a, source)
    vocal *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)
    vocal = (0.25 * vocal / np.abs(vocal).max())[None]
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
    return {"bass": bass * fade, "drums": drums * fade, "pad": pad * fade, "vocals": vocal * fade}


def _write_stems(folder: Path, stems: dict[str, np.ndarray], sample_rate: int = SR,
                 subtype: str = "PCM_24") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in stems.items():
        sf.write(str(folder / f"{name}.wav"), x.T, sample_rate, subtype=subtype)
    return folder


def _read(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return data.T


def _residual_db(out: Path, names) -> float:
    """RMS of (sum of the written stems - the written mix master), dB relative to the master's RMS."""
    master = _read(out / "mix-master.wav")
    diff = sum(_read(out / f"{n}.wav") for n in names) - master
    return 20 * math.log10(np.sqrt(np.mean(diff**2)) / np.sqrt(np.mean(master**2)))


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    return _write_stems(tmp_path_factory.mktemp("song") / "song", song_stems(SR))


@pytest.fixture(scope="module")
def run24(song, tmp_path_factory):
    out = tmp_path_factory.mktemp("out24") / "out"
    code, stdout, stderr = _run("stems", song, "-o", out, "--target", "spotify", *DSP)
    return {"code": code, "stdout": stdout, "stderr": stderr, "out": out,
            "report": json.loads((out / "stems-report.json").read_text()) if code == 0 else None}


# ---- the main path ---------------------------------------------------------------------------
def test_stems_sum_to_the_master_at_24_bits(run24):
    assert run24["code"] == 0, run24["stderr"]
    out = run24["out"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.wav" for n in STEM_NAMES] + ["mix-master.wav", "stems-report.json"])
    residual = _residual_db(out, STEM_NAMES)
    # Five independently dithered 24-bit files: the floor is ~-137.5 dBFS, ~120 dB under this master.
    assert residual < -110.0
    r = run24["report"]["residual"]
    assert r["rms_below_master_db"] == pytest.approx(-residual, abs=0.1)
    assert r["rms_dbfs"] == pytest.approx(r["quantisation_floor_dbfs"], abs=1.0)
    assert r["mix_rendered_alone_deviation_db"] < -60.0


def test_the_mix_master_meets_the_target(run24):
    master = _read(run24["out"] / "mix-master.wav")
    assert ebur128_integrated_lufs(master, SR) == pytest.approx(-14.0, abs=0.1)
    report = run24["report"]
    assert report["mix_master"]["output"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.1)
    assert report["mix_master"]["output"]["true_peak_dbtp"] <= -1.0


def test_stems_keep_their_balance_and_are_not_normalised(run24, song):
    """Each stem's loudness change = what the bus's linear stages (EQ, width) do to that stem's
    spectrum + one gain shared by all (compressor, finalizer, limiter); never a per-stem target."""
    report = run24["report"]
    stems = {s["name"]: s for s in report["stems"]}
    settings = ChainSettings.from_dict(report["bus"]["settings"])
    linear = settings.replace(enabled={"compressor": False})
    shared = []
    for name in STEM_NAMES:
        x = _read(song / f"{name}.wav")
        x = np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x
        eq_change = (measure_loudness(render(x.astype(np.float32), SR, linear), SR).integrated_lufs
                     - measure_loudness(x, SR).integrated_lufs)
        shared.append(stems[name]["change_db"] - eq_change)
    assert max(shared) - min(shared) < 1.0  # the balance moved only by the bus EQ
    inputs = [stems[n]["input_lufs"] for n in STEM_NAMES]
    outputs = [stems[n]["output_lufs"] for n in STEM_NAMES]
    assert max(inputs) - min(inputs) > 8.0  # the mix's balance: the pad sits far under the bass
    # independent normalisation would have put every stem at the -14 LUFS target: the spread stays
    assert max(outputs) - min(outputs) > 8.0
    # every stem's measured loudness in the report is what the written file reads
    for name in STEM_NAMES:
        assert measure_loudness(_read(run24["out"] / f"{name}.wav"), SR).integrated_lufs == pytest.approx(
            stems[name]["output_lufs"], abs=0.01)


def test_with_a_flat_bus_every_stem_changes_alike(song, tmp_path):
    """No EQ: the only per-stem differences come from the shared compressor and limiter gain curves
    (the drums, which trigger the compressor, are turned down most: that is bus compression)."""
    chain = ChainSettings.create({"compressor.threshold_db": -30.0, "compressor.ratio": 3.0},
                                 {"compressor": True})
    chain_path = chain.save(tmp_path / "chain.json")
    out = tmp_path / "out"
    code, stdout, err = _run("stems", song, "-o", out, "--lufs", "-12", "--chain", chain_path,
                             "--no-stem-corrections", "--bit-depth", "32f")
    assert code == 0, err
    report = json.loads((out / "stems-report.json").read_text())
    changes = [s["change_db"] for s in report["stems"]]
    inputs = [s["input_lufs"] for s in report["stems"]]
    assert max(changes) - min(changes) < 3.5
    assert max(inputs) - min(inputs) > 3.0 * (max(changes) - min(changes))
    assert report["engine"] == "chain-file"
    assert _residual_db(out, STEM_NAMES) < -130.0  # 32-bit float: only float rounding remains


def test_float_output_sums_exactly(song, tmp_path):
    out = tmp_path / "out"
    code, _, err = _run("stems", song, "-o", out, *DSP, "--bit-depth", "32f")
    assert code == 0, err
    assert sf.info(str(out / "vocals.wav")).subtype == "FLOAT"
    assert _residual_db(out, STEM_NAMES) < -130.0
    report = json.loads((out / "stems-report.json").read_text())
    assert report["residual"]["quantisation_floor_dbfs"] is None


def test_cli_summary_names_stems_suggestions_and_the_bus(run24):
    text = run24["stdout"]
    for name in STEM_NAMES:
        assert f"    {name} " in text
    assert "bus settings:" in text and "sum of stems − mix master" in text
    assert "high-pass at" in text  # the kick and the bass carry sub-sonic energy (see the report test)


def test_report_records_centring_and_corrections(run24):
    stems = {s["name"]: s for s in run24["report"]["stems"]}
    assert stems["bass"]["channels_in"] == 1 and stems["bass"]["centred"] is True
    assert stems["drums"]["channels_in"] == 2 and stems["drums"]["centred"] is False
    assert sf.info(str(run24["out"] / "bass.wav")).channels == 2
    pad = stems["pad"]["correction"]
    assert pad["highpass_hz"] is None and pad["low_edge_hz"] > 150  # lowest note 220 Hz
    for s in stems.values():
        c = s["correction"]
        if c["highpass_hz"] is not None:
            assert 10.0 <= c["highpass_hz"] <= 30.0
            assert c["applied"] == (c["loss_at_low_edge_db"] <= 1.0)
            assert c["subsonic_share_db"] > -40.0 or c["dc_offset_dbfs"] > -50.0


# ---- per-stem corrections and suggestions -----------------------------------------------------
def test_rumble_gets_a_highpass_a_clean_stem_does_not():
    t = np.arange(4 * SR) / SR
    voice = 0.2 * np.sin(2 * np.pi * 220 * t)[None]
    rumble = voice + 0.05 * np.sin(2 * np.pi * 8.0 * t)[None]  # -12 dB of 8 Hz under the voice
    clean = measure_correction(Audio(voice, SR), analyze(Audio(voice, SR)))
    assert clean.highpass_hz is None
    assert clean.low_edge_hz == pytest.approx(220, abs=2)
    dirty = measure_correction(Audio(rumble, SR), analyze(Audio(rumble, SR)))
    assert dirty.subsonic_share_db == pytest.approx(-12.0, abs=0.5)
    # cutoff: the highest up to 30 Hz costing <= 0.5 dB at 220 Hz -> the 30 Hz cap
    assert dirty.highpass_hz == pytest.approx(30.0) and dirty.loss_at_low_edge_db < 0.5
    from mixbridge.assistant.stems import apply_correction

    fixed = apply_correction(Audio(rumble, SR), dirty).samples
    freqs, power, _ = low_spectrum(fixed, SR)
    _, before, _ = low_spectrum(rumble, SR)
    below = freqs < SUBSONIC_HZ
    assert 10 * np.log10(power[below].sum() / before[below].sum()) < -15.0  # 8 Hz vs 30 Hz, 12 dB/oct


def test_dc_offset_gets_a_highpass_whose_cutoff_spares_the_bass():
    t = np.arange(4 * SR) / SR
    bass = 0.3 * np.sin(2 * np.pi * 41.2 * t)[None] + 0.01  # E1 with a -40 dBFS DC offset
    c = measure_correction(Audio(bass, SR), analyze(Audio(bass, SR)))
    assert c.highpass_hz is not None and c.highpass_hz == pytest.approx(10.0, abs=0.1)
    assert c.loss_at_low_edge_db < 0.6


def test_a_highpass_that_would_cut_the_stems_own_low_end_is_only_recommended():
    t = np.arange(4 * SR) / SR
    sub = 0.3 * np.sin(2 * np.pi * 22.0 * t)[None] + 0.3 * np.sin(2 * np.pi * 12.0 * t)[None]
    c = measure_correction(Audio(sub, SR), analyze(Audio(sub, SR)))
    assert c.highpass_hz == pytest.approx(10.0) and c.loss_at_low_edge_db > 1.0
    assert not c.applied and "remove the rumble at the source" in c.describe()


def test_no_stem_corrections_reports_instead_of_applying(song, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = _run("stems", song, "-o", out, *DSP, "--no-stem-corrections")
    assert code == 0, err
    report = json.loads((out / "stems-report.json").read_text())
    suggested = [s for s in report["stems"] if s["correction"]["highpass_hz"] is not None]
    assert suggested and all(not s["correction"]["applied"] for s in suggested)
    assert "recommended, not applied" in stdout


def test_eq_moves_name_the_stem_that_carries_the_band():
    t = np.arange(4 * SR) / SR
    rng = np.random.default_rng(1)
    b, a = butter(4, 5000, btype="high", fs=SR)
    hats = lfilter(b, a, 0.1 * rng.standard_normal((2, t.size)))
    bass = np.repeat(0.3 * np.sin(2 * np.pi * 55 * t)[None], 2, axis=0)
    features = {"hats": analyze(Audio(hats, SR)), "bass": analyze(Audio(bass, SR))}
    chain = ChainSettings.create({"high_shelf.gain_db": 4.0, "high_shelf.freq_hz": 8000.0,
                                  "low_shelf.gain_db": -3.0, "low_shelf.freq_hz": 80.0,
                                  "peak2.gain_db": 0.2})
    moves = {m.stage: m for m in eq_moves(chain, features, SR)}
    assert set(moves) == {"high_shelf", "low_shelf"}  # a 0.2 dB band is not worth a suggestion
    assert moves["high_shelf"].dominant() == "hats" and moves["high_shelf"].shares["hats"] > 0.95
    assert moves["low_shelf"].dominant() == "bass" and moves["low_shelf"].shares["bass"] > 0.95
    assert sum(moves["high_shelf"].shares.values()) == pytest.approx(1.0)


# ---- the linked compressor and bus -------------------------------------------------------------
def _reference_envelope(x: np.ndarray, sample_rate: int, attack_ms: float, release_ms: float) -> np.ndarray:
    """The decoupled peak detector, one sample at a time (the oracle)."""
    a_r = math.exp(-2 * math.pi * 1000 / (release_ms * sample_rate))
    a_a = ballistics_coefficient(attack_ms, sample_rate)
    out = np.empty(x.shape)
    for c in range(x.shape[0]):
        held = smooth = 0.0
        for n, v in enumerate(np.abs(x[c])):
            held = max(v, a_r * held)
            smooth = a_a * smooth + (1 - a_a) * held
            out[c, n] = smooth
    return out


def test_envelope_matches_the_per_sample_recursion_across_blocks(monkeypatch, rng):
    x = rng.standard_normal((2, 6000)) * np.repeat(np.exp(-np.arange(6000) / 800.0)[None], 2, 0)
    x[:, 3000:3100] = 0.0  # silence inside: the held peak decays through it
    monkeypatch.setattr(mixbridge.effects.compressor, "BLOCK_FRAMES", 777)  # many blocks: the carries matter
    ours = peak_envelope(x, 8000, attack_ms=2.0, release_ms=30.0)
    np.testing.assert_allclose(ours, _reference_envelope(x, 8000, 2.0, 30.0), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("sample_rate", (8000, 44100, 96000))
def test_compressor_static_curve(sample_rate, sine):
    """A steady sine 10 dB over the threshold at 4:1 settles at -7.5 dB, plus the makeup."""
    x = sine(1000.0, sample_rate, 1.0, -10.0)
    chain = ChainSettings.create({"compressor.threshold_db": -20.0, "compressor.ratio": 4.0,
                                  "compressor.attack_ms": 5.0, "compressor.release_ms": 500.0,
                                  "compressor.makeup_db": 2.0}, {"compressor": True})
    gain_db = 20 * np.log10(compressor_gain(x, sample_rate, chain)[:, sample_rate // 2 :])
    assert gain_db == pytest.approx(-7.5 + 2.0, abs=0.1)
    half = compressor_gain(x, sample_rate, chain.replace({"compressor.amount_percent": 50.0}))
    full = compressor_gain(x, sample_rate, chain)
    np.testing.assert_allclose(half, 0.5 * full + 0.5, rtol=1e-6)
    below = compressor_gain(0.01 * x, sample_rate, chain)  # -50 dB: under the threshold
    assert 20 * np.log10(below) == pytest.approx(2.0, abs=1e-4)
    assert np.all(compressor_gain(x, sample_rate, chain.replace(enabled={"compressor": False})) == 1.0)


def test_compressor_is_close_to_pedalboards():
    x = groove(SR, 4.0).astype(np.float32)
    chain = ChainSettings.create({"compressor.threshold_db": -20.0, "compressor.ratio": 4.0,
                                  "compressor.attack_ms": 10.0, "compressor.release_ms": 150.0},
                                 {"compressor": True})
    ours = compressor_gain(x, SR, chain)
    theirs = pb.Compressor(threshold_db=-20.0, ratio=4.0, attack_ms=10.0, release_ms=150.0)(x, float(SR))
    loud = np.abs(x) > 0.05
    ours_db = 20 * np.log10(ours[loud])
    theirs_db = 20 * np.log10(np.abs(theirs[loud] / x[loud]))
    # README: "their mean gain reduction differs by 0.3 dB" (0.33 measured; per sample, median 0.41 dB)
    assert np.mean(ours_db) == pytest.approx(np.mean(theirs_db), abs=0.35)
    assert np.median(np.abs(ours_db - theirs_db)) < 0.45


def test_bus_parts_sum_to_the_mix_and_reverb_is_linear(rng):
    stems = song_stems(SR, 3.0)
    parts = [np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x for x in stems.values()]
    chain = ChainSettings.create({"reverb.wet": 0.3, "reverb.room_size": 0.8, "compressor.threshold_db": -25.0,
                                  "compressor.ratio": 3.0, "stereo.width_percent": 130.0,
                                  "peak3.gain_db": 3.0}, {"reverb": True, "compressor": True})
    bus = render_bus(parts, SR, chain)
    summed = np.sum(bus.parts, axis=0, dtype=np.float64)
    assert np.max(np.abs(summed - bus.mix)) < 1e-6
    assert bus.direct_deviation_db < -110.0  # Freeverb, a peak band and width are linear
    assert bus.compressor_min_gain_db < -3.0


def test_bus_expander_gain_is_the_mixs_and_equals_the_renderers(rng):
    """The expander's gain, computed on the mix, is applied to every stem: the stems still sum to
    the mix, and with no compressor the bus mix equals render() of the mix."""
    stems = song_stems(SR, 3.0)
    parts = [np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x for x in stems.values()]
    chain = ChainSettings.create({"expander.threshold_db": -30.0, "expander.ratio": 1.8, "peak3.gain_db": 3.0},
                                 {"expander": True})
    bus = render_bus(parts, SR, chain)
    assert np.max(np.abs(np.sum(bus.parts, axis=0, dtype=np.float64) - bus.mix)) < 1e-6
    mix = np.asarray(np.sum(parts, axis=0, dtype=np.float64), dtype=np.float32)
    rendered = render(mix, SR, chain)
    np.testing.assert_allclose(bus.mix, rendered, rtol=0.0, atol=1e-5)
    assert np.max(np.abs(rendered - render(mix, SR, chain.replace(enabled={"expander": False})))) > 0.01
    assert bus.compressor_min_gain_db == 0.0


def test_peak_detector_streams_like_the_per_sample_recursion(rng):
    from mixbridge.effects.compressor import PeakDetector

    x = rng.standard_normal((2, 6000)) * np.repeat(np.exp(-np.arange(6000) / 800.0)[None], 2, 0)
    detector = PeakDetector(8000, attack_ms=2.0, release_ms=30.0)
    blocks = np.concatenate([detector(b) for b in np.array_split(x, [1, 500, 3001], axis=1)], axis=1)
    np.testing.assert_allclose(blocks, _reference_envelope(x, 8000, 2.0, 30.0), rtol=1e-9, atol=1e-15)


def test_finalize_exposes_a_plan_that_reproduces_its_output(rng):
    x = groove(SR, 4.0).astype(np.float32)
    result = finalize(x, SR, FinalizeSpec(-9.0, -1.0))
    assert result.limiting_db > 0.5 and result.block > 0
    again = TruePeakLimiter.apply(x, result.block_gain_db, result.block, result.gain_db)
    np.testing.assert_array_equal(again, result.samples)


# ---- input policy ----------------------------------------------------------------------------
def test_all_mono_stems_stay_mono(tmp_path):
    stems = song_stems(SR)
    folder = _write_stems(tmp_path / "song", {"bass": stems["bass"], "vocals": stems["vocals"]})
    out = tmp_path / "out"
    code, _, err = _run("stems", folder, "-o", out, *DSP)
    assert code == 0, err
    assert sf.info(str(out / "bass.wav")).channels == 1 and sf.info(str(out / "mix-master.wav")).channels == 1
    assert _residual_db(out, ("bass", "vocals")) < -110.0


def test_a_silent_stem_stays_silent(tmp_path):
    stems = song_stems(SR)
    stems["mute"] = np.zeros((2, stems["pad"].shape[1]))
    folder = _write_stems(tmp_path / "song", stems)
    out = tmp_path / "out"
    code, _, err = _run("stems", folder, "-o", out, *DSP)
    assert code == 0, err
    assert not np.any(_read(out / "mute.wav"))
    report = json.loads((out / "stems-report.json").read_text())
    mute = next(s for s in report["stems"] if s["name"] == "mute")
    assert mute["silent"] and mute["output_lufs"] is None


def test_pad_policy_pads_the_shorter_stems(tmp_path):
    stems = song_stems(SR)
    stems["vocals"] = stems["vocals"][:, : -SR // 2]  # half a second short
    folder = _write_stems(tmp_path / "song", stems)
    code, _, err = _run("stems", folder, "-o", tmp_path / "refused", *DSP)
    assert code == 5
    assert "different lengths" in err and "vocals.wav 154350 frames (3.500 s)" in err and "--pad" in err
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "out"
    code, _, err = _run("stems", folder, "-o", out, *DSP, "--pad")
    assert code == 0, err
    assert sf.info(str(out / "vocals.wav")).frames == 4 * SR
    report = json.loads((out / "stems-report.json").read_text())
    assert {s["name"]: s["padded_frames"] for s in report["stems"]}["vocals"] == SR // 2
    assert _residual_db(out, STEM_NAMES) < -110.0


def test_different_rates_are_refused_naming_files_and_rates(tmp_path):
    stems = song_stems(SR)
    folder = _write_stems(tmp_path / "song", {k: v for k, v in stems.items() if k != "pad"})
    sf.write(str(folder / "pad.wav"), song_stems(48000)["pad"].T, 48000, subtype="PCM_24")
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 5
    assert "different sample rates" in err and "pad.wav 48000 Hz" in err and "bass.wav 44100 Hz" in err


def test_corrupt_stem_refuses_the_set_naming_it(tmp_path):
    folder = _write_stems(tmp_path / "song", song_stems(SR))
    (folder / "guitar.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    (folder / "notes.txt").write_text("not a stem: ignored")
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 4
    assert str(folder / "guitar.wav") in err and "cannot be mastered without this stem" in err
    assert not (tmp_path / "out").exists()


def test_truncated_stem_and_a_six_channel_stem_are_both_named(tmp_path):
    folder = _write_stems(tmp_path / "song", song_stems(SR))
    data = (folder / "pad.wav").read_bytes()
    (folder / "pad.wav").write_bytes(data[: len(data) // 2])
    sf.write(str(folder / "surround.wav"), np.zeros((4 * SR, 6)), SR)
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 4
    assert "pad.wav" in err and "truncated" in err and "surround.wav" in err and "6 channels" in err


def test_a_six_channel_stem_is_refused(tmp_path):
    folder = _write_stems(tmp_path / "song", song_stems(SR))
    sf.write(str(folder / "surround.wav"), np.zeros((4 * SR, 6)), SR)
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 5 and "surround.wav" in err and "6 channels" in err


def test_all_silent_stems_are_refused(tmp_path):
    folder = _write_stems(tmp_path / "song", {"a": np.zeros((2, 4 * SR)), "b": np.zeros((1, 4 * SR))})
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 5 and "all 2 stems are silent" in err


def test_stems_that_cancel_are_refused(tmp_path):
    x = song_stems(SR)["pad"]
    folder = _write_stems(tmp_path / "song", {"a": x, "b": -x})
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 5 and "sum to silence" in err


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    code, _, err = _run("stems", tmp_path / "empty", "-o", tmp_path / "out")
    assert code == 2 and "holds no audio files" in err and str(tmp_path / "empty") in err
    code, _, err = _run("stems", tmp_path / "nowhere", "-o", tmp_path / "out")
    assert code == 3 and "no such folder" in err


def test_output_folder_equal_to_input_is_refused(song):
    code, _, err = _run("stems", song, "-o", song, *DSP)
    assert code == 6 and "is the stems folder itself" in err


def test_unwritable_output_folder(song, unwritable_folder):  # noqa: F811 (the fixture)
    out = unwritable_folder / "mixbridge-stems-test"
    code, _, err = _run("stems", song, "-o", out, *DSP)
    assert code == 6 and str(out) in err
    assert not out.exists()


def test_existing_outputs_need_overwrite(run24, song):
    code, _, err = _run("stems", song, "-o", run24["out"], *DSP)
    assert code == 6 and "mix-master.wav" in err and "--overwrite" in err


def test_a_stem_named_like_the_master_is_refused(tmp_path):
    stems = song_stems(SR)
    folder = _write_stems(tmp_path / "song", {"bass": stems["bass"], "mix-master": stems["pad"]})
    code, _, err = _run("stems", folder, "-o", tmp_path / "out", *DSP)
    assert code == 2 and "mix-master" in err


def test_library_entry_point(song, tmp_path):
    target = resolve_target("apple-music")
    report = master_stems(song, tmp_path / "out", target, StemOptions(engine="dsp", bit_depth="16"))
    assert report.bit_depth == "16" and len(report.stems) == 4
    assert sf.info(str(tmp_path / "out" / "drums.wav")).subtype == "PCM_16"
    # 16 bits: five dithered files put the floor near -89 dBFS
    assert report.residual.rms_dbfs == pytest.approx(report.residual.quantisation_floor_dbfs, abs=1.0)
    assert report.mix_output.integrated_lufs == pytest.approx(target.lufs, abs=0.1)
