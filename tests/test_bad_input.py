"""Every bad input gets one clear error (our error class, its exit code, the file and the
problem in the message); the edge cases the input policy accepts are analysed cleanly."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from mixbridge.analysis.analyze import analyze, analyze_file
from mixbridge.analysis.audio import Audio, iter_blocks, load, save
from mixbridge.analysis.errors import (
    InputNotFoundError,
    InvalidAudioError,
    MixbridgeError,
    OutputError,
    UnreadableAudioError,
)
from mixbridge.assistant.options import MasterOptions

ENTRY_POINTS = {"load": load, "analyze_file": analyze_file}


def _expect_error(entry, path, error_type, exit_code, *words):
    """``entry(path)`` raises exactly ``error_type`` whose message names the file and the problem."""
    with pytest.raises(MixbridgeError) as err:
        ENTRY_POINTS[entry](path)
    exc = err.value
    assert type(exc) is error_type, f"{type(exc).__name__}: {exc}"
    assert exc.exit_code == exit_code
    assert exc.path == str(path)
    assert str(path) in str(exc)
    for word in words:
        assert word.lower() in exc.message.lower(), f"{word!r} not in {exc.message!r}"
    return exc


# ---- files that cannot be used ---------------------------------------------------------
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_empty_file(entry, tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _expect_error(entry, path, UnreadableAudioError, 4, "empty", "0 bytes")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_zero_length_audio(entry, write_audio):
    path = write_audio("nothing.wav", np.zeros((2, 0)), 48000, subtype="PCM_16")
    assert path.stat().st_size > 0  # a valid header, no frames
    _expect_error(entry, path, InvalidAudioError, 5, "no audio samples")


def test_zero_length_array():
    with pytest.raises(InvalidAudioError, match="no audio samples"):
        Audio(np.zeros((2, 0)), 48000)


@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf))
def test_nan_and_inf_arrays_are_refused(bad):
    x = np.zeros((2, 48000))
    x[1, 24000] = bad
    with pytest.raises(InvalidAudioError, match=r"NaN or Inf.*channel 1, 0\.500 s"):
        Audio(x, 48000)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_nan_in_a_float_wav_names_file_and_time(entry, write_audio):
    # 15 s at 8 kHz: the NaN sits in the second 10 s read block, so the block offset counts.
    x = np.full((1, 15 * 8000), 0.1, dtype=np.float32)
    x[0, int(12.5 * 8000)] = np.nan
    path = write_audio("nan.wav", x, 8000, subtype="FLOAT")
    _expect_error(entry, path, InvalidAudioError, 5, "NaN", "12.500 s")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_more_than_two_channels(entry, write_audio):
    path = write_audio("surround.wav", np.zeros((6, 4800)), 48000, subtype="PCM_16")
    _expect_error(entry, path, InvalidAudioError, 5, "6 channels", "mono or stereo")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_random_bytes_named_wav(entry, rng, tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(rng.bytes(5000))
    _expect_error(entry, path, UnreadableAudioError, 4, "cannot be decoded")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_text_file_named_flac(entry, tmp_path):
    path = tmp_path / "notes.flac"
    path.write_text("these are my mix notes\n" * 50)
    _expect_error(entry, path, UnreadableAudioError, 4, "cannot be decoded")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_directory(entry, tmp_path):
    folder = tmp_path / "album.wav"
    folder.mkdir()
    _expect_error(entry, folder, InputNotFoundError, 3, "directory")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_missing_path(entry, tmp_path):
    _expect_error(entry, tmp_path / "missing.wav", InputNotFoundError, 3, "no such file")


@pytest.mark.parametrize("sample_rate", (4000, 384000))
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_unsupported_sample_rates_are_refused(entry, sample_rate, write_audio):
    path = write_audio("rate.wav", np.zeros((2, sample_rate // 10)), sample_rate, subtype="PCM_16")
    _expect_error(entry, path, InvalidAudioError, 5, f"{sample_rate} Hz", "8000")


@pytest.mark.parametrize("sample_rate", (4000, 384000))
def test_unsupported_sample_rates_are_refused_for_arrays(sample_rate):
    with pytest.raises(InvalidAudioError, match=f"{sample_rate} Hz"):
        Audio(np.zeros((2, 100)), sample_rate)


@pytest.mark.parametrize("sample_rate", (44100.7, None, "48000", 0, -48000),
                         ids=("fractional", "none", "string", "zero", "negative"))
def test_sample_rate_must_be_a_whole_number_of_hz(sample_rate):
    """Validated once at the boundary with our error type: never truncated to an int, never
    a bare TypeError from a comparison."""
    with pytest.raises(InvalidAudioError, match="sample rate"):
        Audio(np.zeros((2, 100)), sample_rate)


@pytest.mark.parametrize("sample_rate", (48000, np.int64(48000), 48000.0))
def test_integral_sample_rates_of_any_numeric_type_are_accepted(sample_rate):
    audio = Audio(np.zeros((2, 100)), sample_rate)
    assert audio.sample_rate == 48000 and type(audio.sample_rate) is int


# ---- truncated files -------------------------------------------------------------------
TRUNCATABLE = (  # formats whose header (or, for Ogg, the end-of-stream page) shows a cut
    (".wav", "PCM_16"), (".wav", "PCM_24"), (".wav", "FLOAT"),
    (".aiff", "PCM_16"), (".aiff", "PCM_24"), (".flac", "PCM_16"),
    (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III"),
)


@pytest.mark.parametrize("keep", (0.5, 0.751), ids=("half", "three-quarters-odd-byte"))
@pytest.mark.parametrize("ext,subtype", TRUNCATABLE)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_truncated_file_is_refused(entry, ext, subtype, keep, noise, write_audio):
    """A file cut short is refused (UnreadableAudioError, exit 4, naming the file), as the
    README's input policy says: never mastered as if it were complete."""
    rate = 44100 if ext == ".mp3" else 48000
    full = write_audio(f"full{ext}", noise(rate, 2.0, -20.0, 2), rate, subtype=subtype)
    data = full.read_bytes()
    cut = full.with_name(f"cut{ext}")
    cut.write_bytes(data[: int(len(data) * keep)])
    _expect_error(entry, cut, UnreadableAudioError, 4, "truncated")


def test_streamed_wav_with_unknown_length_loads_in_full(noise, write_audio):
    """A WAV written to a pipe (``ffmpeg ... -f wav - > out.wav``) cannot seek back to fill
    in its sizes: RIFF and data sizes stay 0xFFFFFFFF. It is complete, not truncated, and
    libsndfile reads it by the file length."""
    x = noise(44100, 1.0, -20.0, 2)
    path = write_audio("piped.wav", x, 44100, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[4:8] = b"\xff\xff\xff\xff"
    i = data.find(b"data")
    data[i + 4 : i + 8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))

    audio = load(path)
    assert audio.frames == x.shape[1]
    np.testing.assert_allclose(audio.samples, x, atol=2.0**-15)


# ---- output paths ----------------------------------------------------------------------
def test_output_folder_that_does_not_exist(tmp_path):
    dest = tmp_path / "no" / "such" / "folder" / "out.wav"
    with pytest.raises(OutputError, match="does not exist") as err:
        save(Audio(np.zeros((2, 100)), 48000), dest)
    assert str(dest) in str(err.value) and err.value.exit_code == 6


def test_output_path_is_a_directory(tmp_path):
    dest = tmp_path / "out.wav"
    dest.mkdir()
    with pytest.raises(OutputError, match="directory") as err:
        save(Audio(np.zeros((2, 100)), 48000), dest)
    assert str(dest) in str(err.value)
    assert dest.is_dir() and os.listdir(dest) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: a read-only folder does not stop root writing")
def test_output_folder_is_read_only(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError) as err:
            save(Audio(np.zeros((2, 100)), 48000), folder / "out.wav")
        assert str(folder / "out.wav") in str(err.value) and err.value.exit_code == 6
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


# ---- accepted edge cases ---------------------------------------------------------------
@pytest.mark.filterwarnings("error")  # no RuntimeWarning (divide by zero, log10(0)...)
@pytest.mark.parametrize("channels", (1, 2))
def test_silence_is_analysed_with_undefined_loudness(channels):
    features = analyze(Audio(np.zeros((channels, 5 * 48000)), 48000))

    assert features.integrated_lufs == -math.inf
    assert features.max_momentary_lufs == -math.inf
    assert features.sample_peak_dbfs == -math.inf
    assert features.clipped_samples == 0
    assert any("silent" in n for n in features.notes)
    data = json.loads(features.to_json())  # allow_nan=False inside: no NaN/Infinity tokens
    assert data["integrated_lufs"] is None
    assert data["true_peak_dbtp"] is None
    assert np.all(np.isfinite(_model_input(features)))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("channels", (1, 2))
@pytest.mark.parametrize("sample_rate", (8000, 48000, 192000))
def test_one_millisecond_clip(sample_rate, channels, sine):
    x = sine(1000.0, sample_rate, 0.001, -6.0, channels)
    features = analyze(Audio(x, sample_rate))

    assert features.duration_s == pytest.approx(0.001)
    assert features.integrated_lufs == -math.inf
    assert any("integrated loudness is undefined" in n for n in features.notes)
    assert features.sample_peak_dbfs == pytest.approx(-6.0, abs=0.5)
    assert json.loads(features.to_json())["integrated_lufs"] is None
    assert np.all(np.isfinite(_model_input(features)))


@pytest.mark.parametrize("channels", (1, 2))
@pytest.mark.parametrize("sample_rate", (8000, 192000))
def test_mono_and_extreme_rates_analyse(sample_rate, channels, noise, write_audio):
    path = write_audio("n.wav", noise(sample_rate, 2.0, -20.0, channels), sample_rate,
                       subtype="PCM_24")
    features = analyze_file(path)
    assert (features.sample_rate, features.channels) == (sample_rate, channels)
    assert features.duration_s == pytest.approx(2.0)
    assert math.isfinite(features.integrated_lufs)
    assert features.rms_dbfs == pytest.approx(-20.0, abs=0.1)


@pytest.mark.parametrize("subtype", ("FLOAT", "PCM_16", "PCM_24"))
def test_clipped_input_is_counted_and_noted(subtype, sine, write_audio, caplog):
    x = np.clip(sine(100.0, 48000, 1.0, 3.5, 2), -1.0, 1.0)  # +3.5 dBFS sine, clipped
    expected = int(np.count_nonzero(np.abs(x) >= 0.9999))
    path = write_audio("hot.wav", x, 48000, subtype=subtype)

    caplog.set_level(logging.WARNING)
    features = analyze_file(path)

    assert expected > 1000
    assert features.clipped_samples == expected
    assert any("clipped" in n for n in features.notes)
    assert any(str(path) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_unclipped_input_has_no_clip_note(sine):
    features = analyze(Audio(sine(100.0, 48000, 1.0, -1.0, 2), 48000))
    assert features.clipped_samples == 0
    assert not any("clipped" in n for n in features.notes)


# ---- a 1-hour file ---------------------------------------------------------------------
@pytest.mark.slow
def test_one_hour_file_streams_with_bounded_memory(tmp_path):
    """3600 s of 8 kHz mono 16-bit (~57 MB) written block by block, then analysed by
    streaming. A mono 1 kHz sine at -23 dBFS peak reads -23 - 3.01 LUFS (BS.1770 mono,
    G = 1.0). Memory: decoding the whole file as float32 alone would take 115 MB."""
    sample_rate, seconds = 8000, 3600
    amp = 10 ** (-23 / 20)
    path = tmp_path / "hour.wav"
    with sf.SoundFile(str(path), "w", sample_rate, 1, "PCM_16") as f:
        block = 60 * sample_rate
        for start in range(0, seconds * sample_rate, block):
            n = np.arange(start, start + block)
            f.write(amp * np.sin(2 * np.pi * 1000.0 * n / sample_rate))
    assert path.stat().st_size > 57_000_000

    tracemalloc.start()
    try:
        features = analyze_file(path)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert features.duration_s == pytest.approx(seconds)
    assert features.integrated_lufs == pytest.approx(-23.0 - 3.0103, abs=0.05)
    assert features.loudness_range_lu == pytest.approx(0.0, abs=0.1)
    assert peak_bytes < 100e6, f"peak traced memory {peak_bytes / 1e6:.0f} MB"


def test_iter_blocks_streams_in_blocks(write_audio):
    path = write_audio("b.wav", np.zeros((2, 25 * 8000)), 8000, subtype="PCM_16")
    sizes = [b.shape for b in iter_blocks(path, block_frames=8000 * 10)]
    assert sizes == [(2, 80000), (2, 80000), (2, 40000)]


@pytest.mark.parametrize("keep", (0.3, 0.7, 0.97))
@pytest.mark.parametrize("ext,subtype", ((".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")))
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_truncated_lossy_files_are_refused_with_both_durations(entry, ext, subtype, keep, noise, write_audio):
    """libsndfile decodes a cut Ogg up to its last whole page and a cut MP3 up to its last frame,
    silently; both are refused like a cut WAV (exit 4)."""
    full = write_audio(f"full{ext}", noise(44100, 3.0, -20.0, 2), 44100, subtype=subtype)
    ENTRY_POINTS[entry](full)  # the whole file is fine
    cut = full.with_name(f"cut{ext}")
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * keep)])
    exc = _expect_error(entry, cut, UnreadableAudioError, 4, "truncated")
    assert re.search(r"\d\.\d\d s", exc.message)  # the decoded duration (and the declared one, for MP3)


# ---- float samples beyond full scale --------------------------------------------------------
def test_float_samples_over_full_scale_are_normal_work(write_audio, tmp_path):
    """A float mix peaking at +20 dBFS is legitimate: analysed without a warning, mastered."""
    from mixbridge.assistant.master import master_file, resolve_target

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 48000 * 4)) * 2.0).astype(np.float32)  # peaks near +18 dBFS
    path = write_audio("hot.wav", x, 48000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = analyze_file(path)
    assert features.sample_peak_dbfs > 12.0 and math.isfinite(features.integrated_lufs)
    report = master_file(path, tmp_path / "m.wav", resolve_target("spotify"), MasterOptions(engine="dsp"))
    assert abs(report.output_features.integrated_lufs + 14.0) <= 0.1


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_absurd_float_samples_are_refused_naming_position_and_peak(entry, write_audio):
    """Finite but absurd values (a float body overwritten by garbage): refused, exit 5, with the
    first offending position and the peak; no overflow warning on the way."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, 48000 * 3)) * 0.1).astype(np.float32)
    x[1, 72000] = 3.2e38  # 770 dBFS
    x[0, 90000] = -5000.0
    path = write_audio("garbage.wav", x, 48000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exc = _expect_error(entry, path, InvalidAudioError, 5, "beyond full scale", "1.500 s", "channel 1",
                            "+770 dBFS", "+60 dBFS")
    assert "corrupt" in exc.message


def test_a_sample_just_under_the_bound_is_accepted():
    x = np.zeros((1, 48000), np.float32)
    x[0, 10] = 999.0  # +59.99 dBFS
    Audio(x, 48000)
    x[0, 10] = 1001.0
    with pytest.raises(InvalidAudioError, match="beyond full scale"):
        Audio(x, 48000)


def _model_input(features) -> np.ndarray:
    """What the learned model is given for these features (toward the default profile)."""
    from mixbridge.assistant.targets import DEFAULT_PROFILE, load_profile
    from mixbridge.models.net import TargetDescriptor, input_vector

    return input_vector(features, TargetDescriptor.from_profile(load_profile(DEFAULT_PROFILE)))
