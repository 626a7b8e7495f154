"""How long work reports progress: ``progress(message, done=None, total=None)``, a stage name and,
for work that counts (files, blocks of a long file, clips, plugin bundles), how far it is. The
CLI shows it as a bar or as lines (:mod:`assistant.console`); library callers may pass nothing."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, message: str, done: float | None = None, total: float | None = None) -> None: ...


def silent(message: str, done: float | None = None, total: float | None = None) -> None:
    """The progress callable that reports nowhere."""
