"""Finding and loading one song's stem set, and the set policy (see the package docstring)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.audio import READ_EXTENSIONS, Audio
from mixbridge.analysis.errors import InputNotFoundError, InvalidAudioError, MixbridgeError, OutputError, UsageError
from mixbridge.assistant.stems.report import MIX_MASTER_NAME, OUTPUT_SUFFIX

T = TypeVar("T")

log = logging.getLogger(__name__)

def find_stems(song_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The stem files of ``song_dir`` (sorted), after checking the folders and the names.

    Raises
    ------
    InputNotFoundError
        ``song_dir`` does not exist.
    UsageError
        ``song_dir`` is a file or holds no audio; two stems would write one output.
    OutputError
        ``out_dir`` is ``song_dir``.
    """
    song_dir, out_dir = Path(song_dir), Path(out_dir)
    if not song_dir.exists():
        raise InputNotFoundError("no such folder", song_dir)
    if not song_dir.is_dir():
        raise UsageError("is a file; `stems` takes the folder holding one song's stems", song_dir)
    if out_dir.resolve() == song_dir.resolve():
        raise OutputError("is the stems folder itself; choose another output folder", out_dir)
    paths = []
    for path in sorted(song_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() not in READ_EXTENSIONS:
            continue
        if path.name.startswith("."):
            log.info("%s: hidden file skipped", path)
            continue
        paths.append(path)
    if not paths:
        raise UsageError("holds no audio files (" + ", ".join(e.lstrip(".") for e in READ_EXTENSIONS)
                         + "); put one song's stems directly in it", song_dir)
    seen: dict[str, Path] = {}
    for path in paths:
        key = path.stem.lower()
        if key == MIX_MASTER_NAME:
            raise UsageError(f"a stem may not be called {MIX_MASTER_NAME!r} (that is the mixed master's "
                             "name); rename it", path)
        if key in seen:
            raise UsageError(f"{seen[key].name} and {path.name} would both write {path.stem}{OUTPUT_SUFFIX}; "
                             "rename one", song_dir)
        seen[key] = path
    return paths


def _refuse_set(errors: list[MixbridgeError], song_dir: Path) -> None:
    """Raise the first error (its class and file), naming every bad stem, if there are any."""
    if not errors:
        return
    first = errors[0]
    others = "; ".join(str(e) for e in errors[1:])
    message = f"{first.message} — the stem set of {song_dir} cannot be mastered without this stem"
    raise type(first)(message + (f" (also: {others})" if others else ""), first.path)


def _read_set(paths: Sequence[Path], read: Callable[[Path], T], song_dir: Path) -> list[T]:
    """``read`` of every stem; the whole set is refused (:func:`_refuse_set`) if any stem fails."""
    results, errors = [], []
    for path in paths:
        try:
            results.append(read(path))
        except MixbridgeError as exc:
            errors.append(exc)
    _refuse_set(errors, song_dir)
    return results


def load_stems(paths: Sequence[Path], song_dir: Path, pad: bool = False) -> tuple[list[Audio], list[int], list[int]]:
    """Load a stem set under the input policy of the module docstring.

    Returns
    -------
    (stems, channels_in, padded_frames)
        The stems at one rate, length and channel count (mono centred when any stem is
        stereo), each stem's channel count as read, and how many frames of silence padded it.
    """
    headers = _read_set(paths, audio_io.info, song_dir)
    rates = sorted({h.sample_rate for h in headers})
    if len(rates) > 1:
        listing = ", ".join(f"{Path(h.path).name} {h.sample_rate} Hz" for h in headers)
        raise InvalidAudioError(f"the stems have different sample rates ({listing}); export them at one "
                                "rate (Mixbridge never resamples)", song_dir)
    frames = max(h.frames for h in headers)
    if not pad and any(h.frames != frames for h in headers):
        listing = ", ".join(f"{Path(h.path).name} {h.frames} frames ({h.duration_s:.3f} s)" for h in headers)
        raise InvalidAudioError(f"the stems have different lengths ({listing}); export them all from the same "
                                "start to the same end, or pass --pad to pad the shorter ones with silence "
                                "at the end", song_dir)
    loaded = _read_set(paths, audio_io.load, song_dir)
    channels = max(a.channels for a in loaded)
    stems, padded = [], []
    for audio in loaded:
        missing = frames - audio.frames
        samples = audio.samples
        if missing:
            log.info("%s: padded with %d frames (%.3f s) of silence at the end", audio.source, missing,
                     missing / audio.sample_rate)
            samples = np.concatenate((samples, np.zeros((audio.channels, missing), np.float32)), axis=1)
        stem = Audio(samples, audio.sample_rate, audio.source)
        stems.append(stem.as_stereo() if channels == 2 else stem)  # as_stereo logs the centring
        padded.append(missing)
    return stems, [a.channels for a in loaded], padded
