"""One family of errors, each with a stable code and a CLI exit code.

Every message names the file (when there is one) and the problem, so a batch log line is
enough to act on. Validation never uses ``assert``.
"""

from __future__ import annotations

from pathlib import Path


class MixbridgeError(Exception):
    """Base of every error Mixbridge raises on purpose.

    Parameters
    ----------
    message : str
        What is wrong and, where possible, how to fix it.
    path : str or Path, optional
        The file concerned; it prefixes the message.
    """

    code = "error"
    exit_code = 1

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class UsageError(MixbridgeError):
    """Arguments that cannot work together (bad option values, unknown target...)."""

    code = "usage"
    exit_code = 2


class InputNotFoundError(MixbridgeError):
    """The path does not exist or is a directory where a file was expected."""

    code = "not_found"
    exit_code = 3


class UnreadableAudioError(MixbridgeError):
    """The file exists but cannot be decoded: empty, corrupt, truncated or not audio."""

    code = "unreadable"
    exit_code = 4


class InvalidAudioError(MixbridgeError):
    """The audio decodes but is outside our input policy (no samples, NaN/Inf, >2 channels, rate)."""

    code = "invalid_audio"
    exit_code = 5


class OutputError(MixbridgeError):
    """The output cannot be written (unwritable folder, same as input, bad format)."""

    code = "output"
    exit_code = 6


class SettingsError(MixbridgeError):
    """A chain, target or preset file is invalid (schema version, out-of-range value)."""

    code = "settings"
    exit_code = 7
