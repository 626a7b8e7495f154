"""A feed-forward compressor whose gain curve is exposed, so one curve can drive many signals.

The stems pipeline needs the compressor's gain computed on the mix and applied, sample for
sample, to every stem; pedalboard's ``Compressor`` (JUCE ``dsp::Compressor``) does not expose
its gain, so this module computes one with the schema's parameters and applies it itself.

Per channel (unlinked, like JUCE), with ``x`` the input of one channel:

1. level: ``|x[n]|``;
2. release: ``p[n] = max(|x[n]|, a_R * p[n-1])`` — the peak held and decaying exponentially;
3. attack: ``e[n] = a_A * e[n-1] + (1 - a_A) * p[n]`` — a one-pole smoother of the held peak;
4. static curve: ``g_dB[n] = (1/ratio - 1) * max(0, 20 log10 e[n] - threshold_db)``.

Steps 2–3 are the *decoupled peak detector* of Giannoulis, Massberg & Reiss, "Digital Dynamic
Range Compressor Design — A Tutorial and Analysis", JAES 60(6), 2012. Step 4 is JUCE's
``pow(env / threshold, 1/ratio - 1)`` in dB. The coefficients use JUCE's ``BallisticsFilter``
formula ``a = exp(-2 pi * 1000 / (time_ms * sample_rate))`` so the times mean the same as in
the built-in renderer.

How it differs from :func:`effects.render.render`'s pedalboard compressor: JUCE's detector is
one branching one-pole (attack while the level rises, release toward the level while it
falls); here release and attack are two decoupled steps. On a music-like loop (threshold
−20 dB, 4:1, 10/150 ms) the mean gain reduction on loud samples reads 3.4 dB here against
3.1 dB in pedalboard (median per-sample difference 0.4 dB).

Vectorised: in the log domain step 2 is ``P[n] = max(X[n], P[n-1] + L)`` with ``L = log a_R``,
whose solution is a running maximum of ``X[k] - k L`` plus ``n L`` (one ``np.maximum.accumulate``
per block); step 3 is a one-pole section of :func:`analysis.iir.sosfilt` with its state carried across
blocks.
A 3-minute stereo track at 44.1 kHz takes about half a second.
"""

from __future__ import annotations

import math

import numpy as np

from mixbridge.analysis.blocks import chunks
from mixbridge.analysis.iir import sosfilt
from mixbridge.effects.schema import ChainSettings

BLOCK_FRAMES = 1 << 16  # bounded temporaries; also keeps k*L small next to X in float64
LEVEL_FLOOR = 1e-20  # |x| below this counts as this (-400 dBFS): log of zero avoided


def ballistics_coefficient(time_ms: float, sample_rate: int) -> float:
    """One-pole coefficient for a JUCE ``BallisticsFilter`` time (0 below 1 µs: instant)."""
    if time_ms < 1e-3:
        return 0.0
    return math.exp(-2.0 * math.pi * 1000.0 / (time_ms * sample_rate))


class PeakDetector:
    """The decoupled peak detector (steps 1–3 of the module docstring), per channel, streaming:
    feed consecutive ``(channels, n)`` blocks of any sizes; the held peak and the smoother's
    state carry over, so the blocks' envelopes joined equal one call on the whole."""

    def __init__(self, sample_rate: int, attack_ms: float, release_ms: float):
        self._log_step = -2.0 * math.pi * 1000.0 / (release_ms * sample_rate)  # log(a_R), < 0
        a_attack = ballistics_coefficient(attack_ms, sample_rate)
        self._smoother = np.array([[1.0 - a_attack, 0.0, 0.0, 1.0, -a_attack, 0.0]])  # step 3 as one section
        self._held_log = np.empty((0, 1))  # per channel, set by the first block
        self._state = np.empty((0, 1, 2))

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """The linear envelope (>= 0, float64) of the next block, same shape."""
        x = np.asarray(samples)
        channels, n = x.shape
        if self._held_log.shape[0] != channels:  # the first block
            self._held_log = np.full((channels, 1), math.log(LEVEL_FLOOR))
            self._state = np.zeros((channels, 1, 2))
        ramp = np.arange(min(BLOCK_FRAMES, n)) * self._log_step
        out = np.empty((channels, n))
        start = 0
        for part in chunks(x, BLOCK_FRAMES):
            level = np.log(np.maximum(np.abs(part, dtype=np.float64), LEVEL_FLOOR))
            r = ramp[: level.shape[1]]
            held = np.maximum(np.maximum.accumulate(level - r, axis=1) + r, self._held_log + r + self._log_step)
            self._held_log = held[:, -1:]
            out[:, start : start + level.shape[1]], self._state = sosfilt(self._smoother, np.exp(held), self._state)
            start += level.shape[1]
        return out


def peak_envelope(samples: np.ndarray, sample_rate: int, attack_ms: float, release_ms: float) -> np.ndarray:
    """Decoupled peak detector (steps 1–3 of the module docstring), per channel.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, n)
    attack_ms, release_ms : float
        Ballistics times in ms (JUCE's definition).

    Returns
    -------
    np.ndarray, shape (channels, n), float64
        The linear envelope, >= 0.
    """
    return PeakDetector(sample_rate, attack_ms, release_ms)(samples)


def compressor_gain(samples: np.ndarray, sample_rate: int, settings: ChainSettings) -> np.ndarray:
    """Linear gain per channel and sample of the chain's compressor stage, for ``samples``.

    Includes the makeup gain and the parallel amount: ``amount * g * makeup + (1 - amount)``,
    so the compressor's output is exactly ``samples * gain``. All ones when the stage is off.

    Parameters
    ----------
    samples : np.ndarray, shape (channels, n)
        The compressor's input (after trim, high-pass and EQ).

    Returns
    -------
    np.ndarray, shape (channels, n), float32
    """
    x = np.asarray(samples)
    if not settings.is_on("compressor"):
        return np.ones(x.shape, dtype=np.float32)
    env = peak_envelope(x, sample_rate, settings["compressor.attack_ms"], settings["compressor.release_ms"])
    g = np.log(np.maximum(env, LEVEL_FLOOR, out=env), out=env)  # in place: one (channels, n) array
    g *= 20.0 / math.log(10.0)  # level in dB
    g -= settings["compressor.threshold_db"]
    np.maximum(g, 0.0, out=g)
    g *= 1.0 / settings["compressor.ratio"] - 1.0  # gain reduction in dB
    g += settings["compressor.makeup_db"]
    amount = settings.parallel_blend
    np.power(10.0, g / 20.0, out=g)
    g *= amount
    g += 1.0 - amount
    return g.astype(np.float32)
