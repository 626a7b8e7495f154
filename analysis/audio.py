"""The one audio type, and reading/writing it.

Input policy (also in README.md):

- formats: WAV, FLAC, AIFF, OGG/Vorbis, MP3 (through libsndfile); any rate from 8 kHz to
  192 kHz, kept as it is (never resampled on load);
- mono stays mono (1 channel); stereo stays stereo; more than 2 channels is refused;
- NaN or Inf samples are refused, naming the first bad position;
- float samples may exceed full scale (a master of them is normal work), but not
  MAX_SAMPLE_DBFS: no real mix reaches +60 dBFS, so such a file is corrupt (refused, naming
  the first offending position and the peak). Every meter can then square and sum safely;
- a file with no samples is refused; silence is accepted (loudness is reported as undefined);
- clipped samples are accepted, counted by the analyzer and logged as a warning;
- writes are atomic: a temporary file in the destination folder, renamed when complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import soundfile as sf

from mixbridge.analysis.atomic import atomic_path
from mixbridge.analysis.blocks import chunks
from mixbridge.analysis.errors import (
    InputNotFoundError,
    InvalidAudioError,
    OutputError,
    UnreadableAudioError,
)

log = logging.getLogger(__name__)

MAX_SAMPLE_DBFS = 60.0  # float samples beyond this (1000 x full scale) are corruption, not audio
_MAX_SAMPLE = 10.0 ** (MAX_SAMPLE_DBFS / 20.0)
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 2
READ_EXTENSIONS = (".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3")
WRITE_FORMATS = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC"}
BIT_DEPTHS = ("16", "24", "32f")
_SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
BLOCK_SECONDS = 10.0
DITHER_BLOCK_FRAMES = 1 << 20  # quantize() seeds its dither per block of this many frames


@dataclass(frozen=True, eq=False)
class Audio:
    """Immutable audio: float32 ``samples`` shaped ``(channels, n)`` and its ``sample_rate``.

    Validated once here: 1–2 channels, at least one sample, all finite, rate within
    8–192 kHz. Operations return new objects; the array is made read-only.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, n)
        Sample values, nominally within [-1, 1].
    sample_rate : int
        Samples per second, in Hz.
    source : str, optional
        Where it came from (a path), used in messages.
    """

    samples: np.ndarray
    sample_rate: int
    source: str = "<array>"

    def __post_init__(self) -> None:
        rate = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or float(rate) != int(rate):
            raise InvalidAudioError(f"sample rate must be a whole number of Hz, got {rate!r}", self.source)
        object.__setattr__(self, "sample_rate", int(rate))
        samples = np.array(self.samples, dtype=np.float32, copy=True)
        check_block(samples, self.sample_rate, self.source)
        if samples.shape[1] == 0:
            raise InvalidAudioError("contains no audio samples (zero length)", self.source)
        samples.setflags(write=False)
        view = samples.view()  # a view of a read-only base can never be made writable again
        view.setflags(write=False)
        object.__setattr__(self, "samples", view)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def frames(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def with_samples(self, samples: np.ndarray) -> "Audio":
        """A new Audio with other samples, the same rate and source."""
        return Audio(samples, self.sample_rate, self.source)

    def as_stereo(self) -> "Audio":
        """Stereo as is; mono duplicated to both channels (logged)."""
        if self.channels == 2:
            return self
        log.info("%s: mono input duplicated to two channels", self.source)
        return self.with_samples(np.repeat(self.samples, 2, axis=0))

    def blocks(self, block_frames: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive ``(channels, <=block_frames)`` views, for the streaming analyzers."""
        return chunks(self.samples, block_frames or int(BLOCK_SECONDS * self.sample_rate))


def check_block(samples: np.ndarray, sample_rate: int, source: str, offset_frames: int = 0) -> None:
    """Validate a ``(channels, n)`` block against the input policy; raise InvalidAudioError."""
    if samples.ndim != 2:
        raise InvalidAudioError(
            f"samples must be shaped (channels, n), got {samples.ndim}-d array {samples.shape}",
            source,
        )
    channels = samples.shape[0]
    if channels < 1 or channels > MAX_CHANNELS:
        raise InvalidAudioError(
            f"has {channels} channels; Mixbridge takes mono or stereo. Downmix first, e.g. "
            "`ffmpeg -i IN -ac 2 OUT.wav`",
            source,
        )
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"sample rate {sample_rate} Hz is outside the supported "
            f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz",
            source,
        )
    if not samples.size:
        return
    with np.errstate(invalid="ignore"):  # NaN compares False: found below
        peak = float(np.max(np.abs(samples)))
    if not np.isfinite(samples).all():
        channel, frame = _first(~np.isfinite(samples))
        raise InvalidAudioError(
            f"contains NaN or Inf samples (first at channel {channel}, "
            f"{(offset_frames + frame) / sample_rate:.3f} s)",
            source,
        )
    if peak > _MAX_SAMPLE:
        channel, frame = _first(np.abs(samples) > _MAX_SAMPLE)
        raise InvalidAudioError(
            f"has float samples far beyond full scale (first at channel {channel}, "
            f"{(offset_frames + frame) / sample_rate:.3f} s; peak {20.0 * np.log10(peak):+.0f} dBFS in this block): over "
            f"+{MAX_SAMPLE_DBFS:.0f} dBFS no real mix reaches, so the file is corrupt",
            source,
        )


def _first(bad: np.ndarray) -> tuple[int, int]:
    """(channel, frame) of the earliest True in a ``(channels, n)`` mask."""
    frame = int(np.argmax(bad.any(axis=0)))
    return int(np.argmax(bad[:, frame])), frame


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, without decoding the samples."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _check_path(path: Path) -> None:
    if not path.exists():
        raise InputNotFoundError("no such file", path)
    if path.is_dir():
        raise InputNotFoundError("is a directory, not an audio file", path)
    if path.stat().st_size == 0:
        raise UnreadableAudioError("is an empty file (0 bytes)", path)


def _open(path: Path) -> sf.SoundFile:
    _check_path(path)
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise UnreadableAudioError(
            f"cannot be decoded as audio ({_short_reason(exc)}); supported: "
            + ", ".join(e.lstrip(".") for e in READ_EXTENSIONS),
            path,
        ) from exc


def _short_reason(exc: Exception) -> str:
    text = str(exc).split(":")[-1].strip()
    return text or type(exc).__name__


_CONTAINERS: dict[bytes, tuple[tuple[bytes, ...], Literal["little", "big"], bytes, int]] = {
    # magic: form types, byte order, audio chunk id, bytes before the samples
    b"RIFF": ((b"WAVE",), "little", b"data", 0),
    b"FORM": ((b"AIFF", b"AIFC"), "big", b"SSND", 8),
}
_UNKNOWN_SIZE = 0xFFFFFFFF  # written by programs that stream a WAV to a pipe


def _audio_chunk_shortfall(path: Path) -> tuple[int, int] | None:
    """For WAV/AIFF: (declared, present) bytes of the audio chunk if the file is cut short.

    libsndfile silently shortens a WAV or AIFF whose audio chunk runs past the end of the
    file; we refuse it instead, so a truncated export is never mastered as if complete.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        layout = _CONTAINERS.get(head[:4])
        if layout is None or head[8:12] not in layout[0]:
            return None
        _, order, audio_id, _ = layout
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk = f.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], order)
            if chunk_id == audio_id:
                present = size - offset - 8
                if chunk_size == _UNKNOWN_SIZE:
                    return None
                return (chunk_size, present) if chunk_size > present else None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


_OGG_EOS = 0x04  # header_type flag of a logical stream's last page
_OGG_TAIL_BYTES = 1 << 17  # an Ogg page is at most 65 307 bytes: the last one starts in here
MP3_FRAME_SLACK = 2 * 1152  # decoders may drop up to a frame or two of padding at the end


def _ogg_truncation(path: Path) -> str | None:
    """Why an Ogg file is cut short, or None: its last page must be complete and carry the
    end-of-stream flag (libsndfile decodes a cut Ogg up to its last whole page, silently)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        start = max(0, size - _OGG_TAIL_BYTES)
        f.seek(start)
        tail = f.read()
    at = tail.rfind(b"OggS")
    while at >= 0 and (len(tail) - at < 27 or tail[at + 4] != 0):  # a capture pattern in the data
        at = tail.rfind(b"OggS", 0, at)
    if at < 0:
        return "no Ogg page in its last 128 KiB"
    segments = tail[at + 26]
    table = tail[at + 27 : at + 27 + segments]
    if len(table) < segments or at + 27 + segments + sum(table) > len(tail):
        return "its last Ogg page is cut short"
    if not tail[at + 5] & _OGG_EOS:
        return "it ends without its end-of-stream page"
    return None


def info(path: str | Path) -> AudioInfo:
    """Read the header of ``path``; raise a MixbridgeError if it is not usable audio."""
    path = Path(path)
    with _open(path) as f:
        meta = AudioInfo(str(path), f.samplerate, f.channels, f.frames, f.format, f.subtype)
    if meta.format in ("WAV", "AIFF"):
        shortfall = _audio_chunk_shortfall(path)
        if shortfall is not None:
            declared, present = shortfall
            raise UnreadableAudioError(
                f"is truncated: its header declares {declared} bytes of audio but only {present} "
                "are present; re-export or re-copy the file", path)
    if meta.format == "OGG":
        reason = _ogg_truncation(path)
        if reason is not None:
            raise UnreadableAudioError(f"is truncated: {reason} (it decodes to {meta.duration_s:.2f} s); "
                                       "re-export or re-copy the file", path)
    if meta.frames <= 0:
        raise InvalidAudioError("contains no audio samples (zero length)", path)
    check_block(np.zeros((meta.channels, 0), np.float32), meta.sample_rate, str(path))
    return meta


def iter_blocks(path: str | Path, block_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream ``path`` as validated float32 ``(channels, n)`` blocks, for bounded memory.

    Raises UnreadableAudioError if the file turns out truncated or corrupt part-way.
    """
    path = Path(path)
    meta = info(path)
    step = block_frames or int(BLOCK_SECONDS * meta.sample_rate)
    done = 0
    with _open(path) as f:
        while True:
            try:
                block = f.read(step, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise UnreadableAudioError(
                    f"decoding failed in the block after {done / meta.sample_rate:.2f} s "
                    f"({_short_reason(exc)}); the file is corrupt or truncated",
                    path,
                ) from exc
            if block.shape[0] == 0:
                break
            block = np.ascontiguousarray(block.T)
            check_block(block, meta.sample_rate, str(path), done)
            done += block.shape[1]
            yield block
    if done == 0:
        raise InvalidAudioError("contains no audio samples (zero length)", path)
    if meta.format == "MP3" and done < meta.frames - MP3_FRAME_SLACK:
        # the frame count of the Xing/LAME header; without one, libsndfile estimates the
        # length from the file size and a cut constant-bitrate file cannot be told apart
        raise UnreadableAudioError(
            f"is truncated: its header declares {meta.duration_s:.2f} s but only "
            f"{done / meta.sample_rate:.2f} s decode; re-export or re-copy the file", path)


def load_spans(path: str | Path, spans: Sequence[tuple[int, int]]) -> Audio:
    """Decode only the frame ranges ``[start, stop)`` of ``path``, concatenated in order (for
    instance an excerpt of a long file), as an :class:`Audio` at the file's rate."""
    path = Path(path)
    meta = info(path)
    parts = []
    with _open(path) as f:
        for start, stop in spans:
            try:
                f.seek(start)
                block = f.read(stop - start, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise UnreadableAudioError(
                    f"decoding failed at {start / meta.sample_rate:.2f} s ({_short_reason(exc)}); "
                    "the file is corrupt or truncated", path) from exc
            block = np.ascontiguousarray(block.T)
            check_block(block, meta.sample_rate, str(path), start)
            parts.append(block)
    return Audio(np.concatenate(parts, axis=1), meta.sample_rate, str(path))


def load(path: str | Path) -> Audio:
    """Decode a whole file into an :class:`Audio` at its native rate.

    Raises
    ------
    InputNotFoundError, UnreadableAudioError, InvalidAudioError
        With the path and the problem in the message.
    """
    path = Path(path)
    blocks = list(iter_blocks(path))
    samples = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    return Audio(samples, info(path).sample_rate, str(path))


def invert_right(samples: np.ndarray) -> np.ndarray:
    """A copy of stereo ``(2, n)`` samples with the right channel's polarity inverted (other
    layouts are returned as they are): the chain's polarity stage, and the analysis "as heard"
    with it."""
    if samples.shape[0] != 2:
        return samples
    return samples * np.array([[1.0], [-1.0]], dtype=samples.dtype)


def tpdf_dither(samples: np.ndarray, lsb: float, seed: int = 0) -> np.ndarray:
    """Add triangular (TPDF) dither of ±1 LSB peak, ``lsb`` being one quantisation step.

    The sum of two independent uniform variables of 1 LSB width each, so the
    quantisation error becomes signal-independent noise.
    """
    rng = np.random.default_rng(seed)
    noise = rng.random(samples.shape, dtype=np.float32)
    noise -= rng.random(samples.shape, dtype=np.float32)
    return samples + noise * np.float32(lsb)


def quantize(samples: np.ndarray, bit_depth: str, dither: bool = True, seed: int = 0) -> np.ndarray:
    """Samples as written at ``bit_depth`` ("16", "24" or "32f"): TPDF-dithered, rounded, clipped.

    Returns float32 values on the integer grid of the word length (exact: float32 holds 24
    bits), so ``soundfile`` writes them without a second rounding.
    """
    if bit_depth not in BIT_DEPTHS:
        raise OutputError(f"bit depth {bit_depth!r} is not one of {', '.join(BIT_DEPTHS)}")
    if bit_depth == "32f":
        return samples.astype(np.float32)
    scale = np.float32(2.0 ** (int(bit_depth) - 1))
    out = np.empty(samples.shape, dtype=np.float32)
    step = DITHER_BLOCK_FRAMES  # in chunks: bounded temporary memory
    for i, start in enumerate(range(0, samples.shape[-1], step)):
        x = samples[..., start : start + step].astype(np.float32) * scale  # exact: a power of two
        if dither:
            x = tpdf_dither(x, 1.0, seed + i)  # at the integer scale 1 LSB is 1.0
        np.round(x, out=x)
        np.clip(x, -scale, scale - 1, out=x)
        out[..., start : start + step] = x / scale
    return out


def output_format(path: str | Path, bit_depth: str) -> str:
    """The libsndfile format that writes ``path`` at ``bit_depth``; OutputError if there is none."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"cannot write format {path.suffix or '(none)'}; use one of "
            + ", ".join(sorted(set(WRITE_FORMATS))),
            path,
        )
    if bit_depth not in BIT_DEPTHS:
        raise OutputError(f"bit depth {bit_depth!r} is not one of {', '.join(BIT_DEPTHS)}", path)
    if fmt == "FLAC" and bit_depth == "32f":
        raise OutputError("FLAC holds integers only; use --bit-depth 16 or 24, or a .wav", path)
    return fmt


class BlockWriter:
    """Write an audio file block by block, each ``(channels, n)`` float block quantized to
    ``bit_depth`` as it comes (:func:`quantize`, TPDF dither seeded per block).

    Blocks of DITHER_BLOCK_FRAMES frames (the last may be shorter) give exactly the samples
    ``quantize`` gives for the whole signal. ``file`` is normally the temporary name from
    :func:`~analysis.atomic.atomic_path`; ``path`` (the destination) names errors.
    Use as a context manager; opening again truncates.
    """

    def __init__(self, file: str | Path, path: str | Path, sample_rate: int, channels: int,
                 bit_depth: str = "24", dither: bool = True):
        self.path = Path(path)
        self.bit_depth, self.dither = bit_depth, dither
        fmt = output_format(self.path, bit_depth)
        self._blocks = 0
        self._file = self._guard(lambda: sf.SoundFile(str(file), "w", sample_rate, channels,
                                                      subtype=_SUBTYPES[bit_depth], format=fmt))

    def write(self, block: np.ndarray) -> np.ndarray:
        """Write the next block; returns it as written (``(channels, n)`` float32, quantized), which
        is what reading the file back gives."""
        data = self.quantize(block)
        self.write_quantized(data)
        return data

    def quantize(self, block: np.ndarray) -> np.ndarray:
        """The next block as it will be written (its dither seeded by its place), for a caller
        that gives it to :meth:`write_quantized` in another thread, in order."""
        data = quantize(block, self.bit_depth, self.dither, seed=self._blocks)
        self._blocks += 1
        return data

    def write_quantized(self, data: np.ndarray) -> None:
        """Write the next block as :meth:`quantize` gave it."""
        self._guard(lambda: self._file.write(data.T))

    def close(self) -> None:
        self._guard(self._file.close)

    def __enter__(self) -> "BlockWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _guard(self, action):
        try:
            return action()
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise OutputError(f"write failed ({_short_reason(exc)})", self.path) from exc


def save(audio: Audio, path: str | Path, bit_depth: str = "24", dither: bool = True,
         overwrite: bool = True) -> Path:
    """Write ``audio`` to a WAV or FLAC file, atomically.

    The file is written to a temporary name in the destination folder and renamed over
    ``path`` only once complete, so no half-written output is ever left.

    Parameters
    ----------
    bit_depth : {"16", "24", "32f"}
        Integer PCM (TPDF dither when ``dither``) or 32-bit float.
    """
    path = Path(path)
    output_format(path, bit_depth)
    if path.exists() and not path.is_dir() and not overwrite:
        raise OutputError("already exists (use --overwrite to replace it)", path)
    with atomic_path(path) as tmp, BlockWriter(tmp, path, audio.sample_rate, audio.channels,
                                               bit_depth, dither) as writer:
        for block in audio.blocks(DITHER_BLOCK_FRAMES):
            writer.write(block)
    log.info("wrote %s (%s, %d Hz, %d ch)", path, bit_depth, audio.sample_rate, audio.channels)
    return path
