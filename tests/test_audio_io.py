"""Reading and writing audio: formats x sample rates x channels, bit depths, dither, atomic
writes and the immutability of :class:`~analysis.audio.Audio`."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from mixbridge.analysis.audio import Audio, info, load, quantize, save
from mixbridge.analysis.errors import InvalidAudioError, OutputError

RATES = (8000, 22050, 44100, 48000, 96000, 192000)
CHANNELS = (1, 2)
# name: (extension, soundfile format, subtype, lossless)
READ_FORMATS = {
    "wav": (".wav", "WAV", "PCM_24", True),
    "flac": (".flac", "FLAC", "PCM_24", True),
    "aiff": (".aiff", "AIFF", "PCM_24", True),
    "ogg": (".ogg", "OGG", "VORBIS", False),
    "mp3": (".mp3", "MP3", "MPEG_LAYER_III", False),
}
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # MPEG-1/2/2.5
LSB24 = 2.0**-23
LSB16 = 2.0**-15
SUBTYPE_OF_DEPTH = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}


def _tone(sample_rate: int, channels: int, duration_s: float = 0.25) -> np.ndarray:
    """0.5-peak sines, a different frequency per channel so a channel swap shows."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return np.stack([0.5 * np.sin(2 * np.pi * (300.0 + 200.0 * c) * t) for c in range(channels)])


# ---- load ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("fmt", list(READ_FORMATS))
def test_load_keeps_native_rate_channels_and_samples(fmt, sample_rate, channels, write_audio):
    ext, sf_format, subtype, lossless = READ_FORMATS[fmt]
    if fmt == "mp3" and sample_rate not in MP3_RATES:
        pytest.skip(f"MPEG-1/2 Layer III has no {sample_rate} Hz mode: libsndfile cannot write "
                    "this fixture (and no MP3 at this rate can exist)")
    x = _tone(sample_rate, channels)
    path = write_audio(f"tone{ext}", x, sample_rate, subtype=subtype, format=sf_format)

    audio = load(path)

    assert audio.sample_rate == sample_rate  # never resampled
    assert audio.channels == channels  # mono stays mono
    assert audio.frames == x.shape[1]
    assert audio.samples.dtype == np.float32
    assert audio.source == str(path)
    if lossless:
        np.testing.assert_allclose(audio.samples, x, rtol=0, atol=LSB24 * 1.01)
    else:
        mid = slice(x.shape[1] // 4, 3 * x.shape[1] // 4)  # away from codec edges
        for c in range(channels):
            got, want = audio.samples[c, mid].astype(np.float64), x[c, mid]
            level_db = 10 * np.log10(np.mean(got**2) / np.mean(want**2))
            assert abs(level_db) < 0.3, f"channel {c}: level off by {level_db:.2f} dB"
            assert np.corrcoef(got, want)[0, 1] > 0.99, f"channel {c} does not match its input"


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("sample_rate", (8000, 48000, 192000))
def test_info_reads_the_header(sample_rate, channels, write_audio):
    x = _tone(sample_rate, channels)
    path = write_audio("tone.wav", x, sample_rate, subtype="PCM_16")
    meta = info(path)
    assert (meta.sample_rate, meta.channels, meta.frames) == (sample_rate, channels, x.shape[1])
    assert (meta.format, meta.subtype) == ("WAV", "PCM_16")
    assert meta.duration_s == pytest.approx(x.shape[1] / sample_rate)


# ---- save ------------------------------------------------------------------------------
SAVE_CASES = [(".wav", "16"), (".wav", "24"), (".wav", "32f"), (".flac", "16"), (".flac", "24")]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("ext,bit_depth", SAVE_CASES)
def test_save_load_round_trip(ext, bit_depth, sample_rate, channels, noise, tmp_path):
    audio = Audio(noise(sample_rate, 0.1, -20.0, channels), sample_rate)  # no clipping
    out = save(audio, tmp_path / f"out{ext}", bit_depth=bit_depth)

    back = load(out)
    meta = info(out)
    assert (back.sample_rate, back.channels, back.frames) == (sample_rate, channels, audio.frames)
    assert meta.subtype == SUBTYPE_OF_DEPTH[bit_depth]
    err = back.samples.astype(np.float64) - audio.samples.astype(np.float64)
    if bit_depth == "32f":
        assert np.array_equal(back.samples, audio.samples), "32-bit float must be bit exact"
    else:
        lsb = 2.0 ** (1 - int(bit_depth))
        # TPDF dither (+-1 LSB) then rounding (+-0.5 LSB): never more than 1.5 LSB.
        assert np.max(np.abs(err)) <= 1.5 * lsb * (1 + 1e-6)


def test_32f_is_bit_exact_including_extremes(tmp_path):
    x = np.array([[0.0, 1e-30, -1e-30, 1.0, -1.0, 0.1, 1.5, -2.0, np.float32(1 / 3)]] * 2)
    audio = Audio(x, 48000)
    back = load(save(audio, tmp_path / "f.wav", bit_depth="32f"))
    assert np.array_equal(back.samples, audio.samples)


def test_16_bit_error_is_tpdf_noise_of_half_an_lsb(noise, tmp_path):
    audio = Audio(noise(48000, 1.0, -20.0, 2), 48000)
    back = load(save(audio, tmp_path / "d.wav", bit_depth="16"))
    err = (back.samples.astype(np.float64) - audio.samples) / LSB16
    # TPDF (variance 1/6 LSB^2) plus rounding (1/12): total 1/4 LSB^2, an RMS of 0.5 LSB.
    assert np.max(np.abs(err)) <= 1.5 + 1e-6
    assert np.sqrt(np.mean(err**2)) == pytest.approx(0.5, abs=0.02)
    assert abs(np.mean(err)) < 0.01


@pytest.mark.parametrize("offset_lsb", (0.0, 0.25, 0.5, 0.75))
def test_16_bit_error_moments_do_not_depend_on_the_signal(offset_lsb, tmp_path):
    """The defining property of TPDF dither: error mean 0 and power 1/4 LSB^2 whatever the
    input. Undithered rounding would give an error of -offset (mean != 0, power 0)."""
    x = np.full((1, 48000), (100.0 + offset_lsb) * LSB16)
    audio = Audio(x, 48000)
    back = load(save(audio, tmp_path / "c.wav", bit_depth="16"))
    err = (back.samples.astype(np.float64) - audio.samples) / LSB16
    assert abs(np.mean(err)) < 0.02
    assert np.sqrt(np.mean(err**2)) == pytest.approx(0.5, abs=0.02)


def _amplitude_at(x: np.ndarray, freq_hz: float, sample_rate: int) -> float:
    """Least-squares amplitude of a sine of ``freq_hz`` in ``x`` (whole periods)."""
    n = np.arange(x.size)
    return float(2.0 * np.abs(np.mean(x * np.exp(-2j * np.pi * freq_hz * n / sample_rate))))


def _harmonics_over_floor_db(err: np.ndarray, freq_hz: float, sample_rate: int) -> np.ndarray:
    """Welch power at 3f, 5f, 7f relative to the median of the error spectrum, in dB."""
    f, p = signal.welch(err, sample_rate, nperseg=4096)
    idx = [int(np.argmin(np.abs(f - h * freq_hz))) for h in (3, 5, 7)]
    return 10 * np.log10(p[idx] / np.median(p))


def test_very_low_sine_keeps_its_level_through_a_16_bit_write(tmp_path):
    """A 0.4 LSB sine would round to digital silence without dither; with TPDF it survives
    at its level, buried in noise."""
    amp = 0.4 * LSB16
    x = amp * np.sin(2 * np.pi * 1000 * np.arange(96000) / 48000)
    back = load(save(Audio(x[None], 48000), tmp_path / "low.wav", bit_depth="16"))
    got = _amplitude_at(back.samples[0].astype(np.float64), 1000, 48000)
    assert got / amp == pytest.approx(1.0, abs=0.05)


def test_16_bit_error_spectrum_is_flat_not_harmonic(tmp_path):
    x = LSB16 * np.sin(2 * np.pi * 1000 * np.arange(96000) / 48000)  # 1 LSB, periodic in 48 samples
    audio = Audio(x[None], 48000)
    back = load(save(audio, tmp_path / "h.wav", bit_depth="16"))
    err = back.samples[0].astype(np.float64) - audio.samples[0]
    over = _harmonics_over_floor_db(err, 1000, 48000)
    assert np.all(np.abs(over) < 3.0), f"harmonics stand {over} dB over the error floor"
    assert abs(np.corrcoef(err, audio.samples[0])[0, 1]) < 0.02


def test_harmonic_check_detects_undithered_quantisation():
    """The check above has teeth: plain rounding of the same sine leaves strong harmonics."""
    x = (LSB16 * np.sin(2 * np.pi * 1000 * np.arange(96000) / 48000)).astype(np.float32)
    err = quantize(x[None], "16", dither=False)[0] - x
    assert np.all(_harmonics_over_floor_db(err, 1000, 48000) > 20.0)


def test_undithered_16_bit_write_rounds_to_nearest(noise, tmp_path):
    audio = Audio(noise(48000, 0.2, -20.0, 2), 48000)
    back = load(save(audio, tmp_path / "r.wav", bit_depth="16", dither=False))
    err = back.samples.astype(np.float64) - audio.samples
    assert np.max(np.abs(err)) <= 0.5 * LSB16 * (1 + 1e-6)


def test_16_bit_write_clips_full_scale_without_wrapping(tmp_path):
    x = np.array([[1.0, -1.0, 0.99999, -0.99999, 1.0]] * 2)
    out = save(Audio(x, 48000), tmp_path / "fs.wav", bit_depth="16")
    ints, _ = sf.read(str(out), dtype="int16", always_2d=True)
    assert ints[0, 0] == 32767 and ints[4, 0] == 32767
    assert ints[1, 0] <= -32767 and ints[3, 0] <= -32766
    assert np.all(np.sign(ints[:, 0]) == np.sign(x[0]))


@pytest.mark.parametrize("name,bit_depth,problem", [
    ("out.mp3", "24", "cannot write format"),
    ("out.flac", "32f", "FLAC holds integers only"),
    ("out.wav", "8", "bit depth"),
])
def test_save_refuses_unsupported_formats(name, bit_depth, problem, tmp_path):
    with pytest.raises(OutputError, match=problem) as err:
        save(Audio(np.zeros((2, 100)), 48000), tmp_path / name, bit_depth=bit_depth)
    assert err.value.exit_code == 6
    assert not (tmp_path / name).exists()
    assert os.listdir(tmp_path) == []


# ---- atomic writes ---------------------------------------------------------------------
def test_save_leaves_only_the_output_file(tmp_path):
    save(Audio(np.zeros((2, 1000)), 48000), tmp_path / "out.wav")
    assert os.listdir(tmp_path) == ["out.wav"]


def test_save_replaces_an_existing_file(noise, tmp_path):
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"old contents")
    audio = Audio(noise(48000, 0.1, -20.0, 2), 48000)
    save(audio, dest, bit_depth="32f")
    assert np.array_equal(load(dest).samples, audio.samples)
    assert os.listdir(tmp_path) == ["out.wav"]


def test_save_refuses_to_overwrite_when_asked_not_to(tmp_path):
    dest = tmp_path / "out.wav"
    dest.write_bytes(b"old contents")
    with pytest.raises(OutputError, match="already exists"):
        save(Audio(np.zeros((2, 100)), 48000), dest, overwrite=False)
    assert dest.read_bytes() == b"old contents"


def test_saved_file_permissions_follow_the_umask(tmp_path):
    """An atomic write must not leave the output more private than a plain write would
    (``tempfile.mkstemp`` creates files 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    out = save(Audio(np.zeros((2, 100)), 48000), tmp_path / "out.wav")
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~umask)


class _SimulatedFailure(RuntimeError):
    pass


@pytest.mark.parametrize("exc_type", (_SimulatedFailure, OSError, KeyboardInterrupt))
@pytest.mark.parametrize("existing", (True, False), ids=("dest-exists", "no-dest"))
def test_failed_write_leaves_destination_untouched_and_no_part_file(
        exc_type, existing, tmp_path, monkeypatch):
    dest = tmp_path / "out.wav"
    if existing:
        dest.write_bytes(b"precious master")

    real_write = sf.SoundFile.write

    def failing_write(self, data):  # half a block reaches the disk, then the disk "fills up"
        real_write(self, data[: len(data) // 2])
        raise exc_type("simulated failure mid-write")

    monkeypatch.setattr(sf.SoundFile, "write", failing_write)
    expected = KeyboardInterrupt if exc_type is KeyboardInterrupt else OutputError
    with pytest.raises(expected) as err:
        save(Audio(np.zeros((2, 1000)), 48000), dest)

    if expected is OutputError:
        assert str(dest) in str(err.value) and err.value.exit_code == 6
    assert os.listdir(tmp_path) == (["out.wav"] if existing else [])
    if existing:
        assert dest.read_bytes() == b"precious master"


# ---- Audio -----------------------------------------------------------------------------
def test_audio_is_frozen():
    audio = Audio(np.zeros((2, 10)), 48000)
    with pytest.raises(dataclasses.FrozenInstanceError):
        audio.sample_rate = 44100
    with pytest.raises(dataclasses.FrozenInstanceError):
        audio.samples = np.ones((2, 10))


def test_audio_samples_are_read_only():
    audio = Audio(np.zeros((2, 10)), 48000)
    assert not audio.samples.flags.writeable
    with pytest.raises(ValueError):
        audio.samples[0, 0] = 1.0
    with pytest.raises(ValueError):
        audio.samples += 1.0


def test_audio_samples_cannot_be_made_writable_again():
    audio = Audio(np.zeros((2, 10)), 48000)
    with pytest.raises(ValueError):
        audio.samples.setflags(write=True)


def test_audio_copies_its_input():
    x = np.zeros((2, 10), dtype=np.float32)
    audio = Audio(x, 48000)
    x[0, 0] = 1.0
    assert audio.samples[0, 0] == 0.0


def test_operations_return_new_audio():
    mono = Audio(np.full((1, 10), 0.5), 48000, "m.wav")
    stereo = mono.as_stereo()
    assert stereo is not mono and mono.channels == 1 and stereo.channels == 2
    assert stereo.sample_rate == 48000 and stereo.source == "m.wav"
    louder = mono.with_samples(mono.samples * 2)
    assert louder is not mono and float(mono.samples[0, 0]) == 0.5
    assert float(louder.samples[0, 0]) == 1.0


@pytest.mark.parametrize("shape", ((10,), (10, 2), (3, 10), (2, 4, 4)),
                         ids=("1-d", "frames-first", "3-channels", "3-d"))
def test_audio_never_guesses_the_layout(shape):
    with pytest.raises(InvalidAudioError):
        Audio(np.zeros(shape), 48000)
