"""An upward expander: the level over a threshold raised further, to give back the dynamics a
compressor took (a mix matched to a more dynamic reference).

Stereo-linked, with ``x`` the input and ``e`` the envelope of its loudest channel (the
compressor's decoupled peak detector, :class:`effects.compressor.PeakDetector`, on
``max_c |x_c[n]|``):

    g_dB[n] = min((ratio - 1) * max(0, 20 log10 e[n] - threshold_db), range_db)

and every channel is multiplied by ``10^(g_dB / 20)``. Below the threshold it does nothing; a
level ``d`` dB over it comes out ``ratio * d`` dB over it, until the gain reaches ``range_db``.
The gain only rises, so the loud passages and the peaks come up against the rest; the
finalizer then sets the loudness and holds the ceiling. One gain for all channels keeps the
image where it is.

Pedalboard has no upward expander, so the built-in renderer runs this one (numpy, streaming:
:class:`Expander` keeps the detector's state from block to block); the stems pipeline applies
its gain, computed on the mix, to every stem (:mod:`effects.bus`). No plugin of zam-plugins
expands upward, so the plugin path runs it built in.
"""

from __future__ import annotations

import numpy as np

from mixbridge.effects.compressor import LEVEL_FLOOR, PeakDetector
from mixbridge.effects.schema import ChainSettings


class Expander:
    """The chain's expander stage, streaming: :meth:`gain` and :meth:`process` take consecutive
    ``(channels, n)`` blocks; the joined output equals one call on the whole."""

    def __init__(self, settings: ChainSettings, sample_rate: int):
        self.threshold_db = settings["expander.threshold_db"]
        self.ratio = settings["expander.ratio"]
        self.range_db = settings["expander.range_db"]
        self._detector = PeakDetector(sample_rate, settings["expander.attack_ms"], settings["expander.release_ms"])

    def level_db(self, block: np.ndarray) -> np.ndarray:
        """The detector's level (dBFS, ``(1, n)`` float64) for the next block: the envelope of
        the loudest channel."""
        env = self._detector(np.max(np.abs(np.asarray(block)), axis=0, keepdims=True))
        level = np.log10(np.maximum(env, LEVEL_FLOOR, out=env), out=env)
        level *= 20.0
        return level

    def gain(self, block: np.ndarray) -> np.ndarray:
        """The linear gain, ``(1, n)`` float32, for the next block (>= 1)."""
        return expansion_gain(self.level_db(block), self.threshold_db, self.ratio, self.range_db)

    def process(self, block: np.ndarray) -> np.ndarray:
        return np.asarray(block, dtype=np.float32) * self.gain(block)


def expansion_gain(level_db: np.ndarray, threshold_db: float, ratio: float, range_db: float) -> np.ndarray:
    """The static curve: the linear gain (float32, >= 1) for the detector's ``level_db``
    (:meth:`Expander.level_db`). One level serves every ratio and threshold tried on the same
    input."""
    g = np.asarray(level_db, dtype=np.float64) - threshold_db
    np.maximum(g, 0.0, out=g)
    g *= ratio - 1.0
    np.minimum(g, range_db, out=g)
    return np.power(10.0, g / 20.0).astype(np.float32)


def expander_gain(samples: np.ndarray, sample_rate: int, settings: ChainSettings) -> np.ndarray:
    """The expander stage's linear gain for ``samples`` (its input), ``(1, n)`` float32; all
    ones when the stage is off."""
    x = np.asarray(samples)
    if not settings.active("expander"):
        return np.ones((1, x.shape[1]), dtype=np.float32)
    return Expander(settings, sample_rate).gain(x)
