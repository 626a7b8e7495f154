"""Atomic file writes (a temporary name in the destination folder, then rename), and the cache root.

A crash, Ctrl-C or a failed write never leaves a half-written file at the destination, and
the destination is only replaced once the new file is complete. This module is a leaf.
"""

from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mixbridge.analysis.errors import OutputError

PART_SUFFIX = ".part"
SCRATCH_SUFFIX = ".scratch.part"  # ends in PART_SUFFIX: remove_leftovers() finds these too


@contextmanager
def atomic_path(path: str | Path) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it over ``path`` if the block succeeds.

    Raises
    ------
    OutputError
        If the folder is missing or not writable, or the rename fails.
    """
    path = Path(path)
    tmp = _temporary_next_to(path, PART_SUFFIX)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a normal file follows the umask
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"write failed ({exc.strerror or exc})", path) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def _temporary_next_to(path: Path, suffix: str) -> str:
    """Create an empty hidden file in ``path``'s folder; OutputError naming ``path`` if impossible."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError("is a directory", path)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"folder {folder} {what}", path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write in {folder} ({exc.strerror})", path) from exc
    os.close(fd)
    return tmp


def check_writable(path: str | Path) -> Path:
    """Refuse, before any work, an output that cannot be written: its folder missing or not
    writable, or ``path`` a folder (the same test the final write makes: a temporary file is
    created next to it and removed)."""
    path = Path(path)
    os.unlink(_temporary_next_to(path, PART_SUFFIX))
    return path


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed by a signal left behind.

    :func:`atomic_path` cleans up after errors and Ctrl-C, but a process killed outright
    (SIGKILL, the out-of-memory killer) runs no clean-up. Call this only when no other process
    is writing ``path``. Returns the removed files.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(glob.escape(_temp_prefix(path)) + "*" + PART_SUFFIX):
        try:
            tmp.unlink()
        except FileNotFoundError:
            continue
        removed.append(tmp)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def cache_root() -> Path:
    """Where Mixbridge keeps caches: ``$MIXBRIDGE_CACHE`` or ``~/.cache/mixbridge``."""
    return Path(os.environ.get("MIXBRIDGE_CACHE", Path.home() / ".cache" / "mixbridge"))


@contextmanager
def scratch_path(path: str | Path) -> Iterator[str]:
    """Yield a temporary work file next to ``path`` (e.g. a first pass's output that a second
    pass reads back, on the disk that will hold ``path``), deleted when the block ends,
    however it ends.

    Raises
    ------
    OutputError
        If the folder is missing or not writable.
    """
    tmp = _temporary_next_to(Path(path), SCRATCH_SUFFIX)
    try:
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
