"""A look-ahead true-peak limiter: a gain curve that keeps the interpolated peak under a ceiling.

The gain is computed from the linked true-peak envelope (BS.1770-5 Annex 2 interpolation, see
:func:`analysis.truepeak.peak_envelope`) on a grid of short blocks (~0.5 ms), in dB:

1. required reduction per block ``req[k] = min(0, ceiling - max(envelope in block k))``;
2. look-ahead hold: ``h[k] = min(req[k-1 .. k+L])`` (L blocks of look-ahead);
3. release at a fixed rate: ``r[k] = min over j<=k of (h[j] + rate * (k - j))``, capped at 0;
4. attack smoothing: ``g[k] = mean(r[k-L .. k])``;
5. per sample, linear interpolation from ``g[k]`` (block start) to ``g[k+1]``.

Every window in step 4 holds only hold values whose window covers blocks k and k+1, so both
ends of the interpolation in step 5 are at most ``req[k]``: no sample's envelope passes the
ceiling. All steps are vectorised; the solver in :mod:`effects.finalize` iterates on the
block grid only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOOKAHEAD_MS = 5.0
RELEASE_DB_PER_S = 40.0
BLOCK_S = 0.0005


def block_size(sample_rate: int) -> int:
    """Samples per gain block (~0.5 ms)."""
    return max(1, int(round(BLOCK_S * sample_rate)))


@dataclass(frozen=True)
class TruePeakLimiter:
    """Limiter settings; :meth:`block_gain_db` plans the gain, :meth:`apply` applies it."""

    ceiling_dbtp: float
    lookahead_ms: float = LOOKAHEAD_MS
    release_db_per_s: float = RELEASE_DB_PER_S

    def block_gain_db(self, block_envelope_db: np.ndarray, sample_rate: int,
                      input_gain_db: float = 0.0) -> np.ndarray:
        """Gain in dB (<= 0) at the start of each block, for the envelope after ``input_gain_db``.

        Parameters
        ----------
        block_envelope_db : np.ndarray, shape (blocks,)
            Per-block maximum of the true-peak envelope, in dB.
        """
        block = block_size(sample_rate)
        req = np.minimum(0.0, self.ceiling_dbtp - input_gain_db - block_envelope_db.astype(np.float64))
        k = req.size
        if k == 0 or req.min() >= 0.0:
            return np.zeros(k)
        look = max(1, int(np.ceil(self.lookahead_ms * 1e-3 * sample_rate / block)))
        hold = _window_min(req, back=1, ahead=look)
        ramp = (self.release_db_per_s * block / sample_rate) * np.arange(k)
        released = np.minimum(0.0, np.minimum.accumulate(hold - ramp) + ramp)
        # trailing mean over [k - L, k]; before the start, repeat released[0] (<= req[0..L])
        cum = np.concatenate(([0.0], np.cumsum(np.concatenate((np.full(look, released[0]), released)))))
        return (cum[look + 1 :] - cum[:k]) / (look + 1)

    @staticmethod
    def apply(samples: np.ndarray, block_gain_db: np.ndarray, block: int, input_gain_db: float = 0.0,
              start_frame: int = 0) -> np.ndarray:
        """``samples`` times the input gain and the gain curve, interpolated linearly per sample
        from block start k to block start k+1 (float32, one block row at a time in numpy).

        ``samples`` may be any slice of the signal the curve was planned for, starting at
        ``start_frame``: the result equals the same slice of the whole signal's result.
        """
        n = samples.shape[1]
        first, offset = divmod(start_frame, block)
        blocks = -(-(offset + n) // block)
        knots = block_gain_db[first : first + blocks + 1]
        if knots.size < blocks + 1:  # past the last block start the curve holds its last value
            knots = np.concatenate((knots, block_gain_db[-1:] if block_gain_db.size else [0.0]))
        knots = np.power(10.0, (knots + input_gain_db) / 20.0).astype(np.float32)
        ramp = np.arange(block, dtype=np.float32) / np.float32(block)
        gain = knots[:blocks, None] + (knots[1 : blocks + 1] - knots[:blocks])[:, None] * ramp
        return (samples * gain.reshape(-1)[offset : offset + n]).astype(np.float32, copy=False)


def _window_min(values: np.ndarray, back: int, ahead: int) -> np.ndarray:
    """``out[k] = min(values[k-back .. k+ahead])``; values outside the array count as 0 dB."""
    padded = np.concatenate((np.zeros(back), values, np.zeros(ahead)))
    return np.lib.stride_tricks.sliding_window_view(padded, back + ahead + 1).min(axis=1)
