"""Feeding a whole array to a streaming meter or processor in bounded pieces."""

from __future__ import annotations

from typing import Iterator

import numpy as np


def chunks(samples: np.ndarray, frames: int) -> Iterator[np.ndarray]:
    """Consecutive ``(channels, <=frames)`` views of a ``(channels, n)`` array, in order."""
    step = max(1, int(frames))
    for start in range(0, samples.shape[-1], step):
        yield samples[..., start : start + step]
