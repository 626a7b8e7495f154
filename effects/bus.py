"""The master-bus chain rendered on a mix and on its parts (stems) with shared gains.

``render_bus(mix, parts, ...)`` runs the chain on the mix and on every part so that the
processed parts still sum to the processed mix:

- the linear stages (trim, high-pass, EQ; then reverb and stereo width) are applied to each
  signal as they are — a sum of filtered parts is the filtered sum. Pedalboard's ``Reverb``
  (Freeverb) is linear too: reverb(a) + reverb(b) - reverb(a + b) measured -135 dB RMS
  relative to the output;
- the non-linear stages, the upward expander and the compressor, are replaced by their gains
  (:func:`effects.expander.expander_gain`, :func:`effects.compressor.compressor_gain`): computed
  once, on the sum of the parts, and every part is multiplied by that same gain curve (the
  expander's linked, the compressor's per channel).

The processed mix is then the sum of the processed parts, exactly; rendering the mix on its own
through the same code gives the same result up to float32 filter noise (measured on every call,
:attr:`BusRender.direct_deviation_db`). A bus render of a mix differs from
:func:`effects.render.render` only by the compressor model (see :mod:`effects.compressor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mixbridge.effects.compressor import compressor_gain
from mixbridge.effects.expander import expander_gain
from mixbridge.effects.render import ChainRenderer, stereo_width
from mixbridge.effects.schema import LINEAR_STAGES, STAGES, ChainSettings

PRE_STAGES = tuple(s for s in STAGES[: STAGES.index("expander")] if s in LINEAR_STAGES)  # linear, before the dynamics


@dataclass(frozen=True)
class BusRender:
    """The processed parts and their sum, ``(channels, n)`` float32 each, and what was measured."""

    mix: np.ndarray  # the sum of ``parts``, so the parts sum to it by construction
    parts: tuple[np.ndarray, ...]
    compressor_min_gain_db: float  # lowest compressor gain (makeup and amount included); 0 when off
    direct_deviation_db: float  # ``mix`` against the mix rendered on its own, dB RMS relative (-inf: equal)


def render_bus(parts: Sequence[np.ndarray], sample_rate: int, settings: ChainSettings) -> BusRender:
    """Render the chain on each of ``parts`` with the expander's and the compressor's gain of their sum.

    The processed mix is the sum of the processed parts. The mix is also rendered on its own
    (its own compressor gain, the same code) and the difference reported: it is the float32
    rounding noise of the filters, whose noise gain is high for low-frequency shelves
    (about -86 dB relative for a -12 dB shelf at 100 Hz; -130 dB and below otherwise).

    Parameters
    ----------
    parts : sequence of np.ndarray, each shape (channels, n)
    """
    pre, reverb = settings.only(PRE_STAGES), settings.only(("reverb",))
    width = settings["stereo.width_percent"] if settings.is_on("stereo") else 100.0

    def through(stages: ChainSettings, x: np.ndarray) -> np.ndarray:
        return ChainRenderer(stages, sample_rate).process(x)

    def total(signals: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(np.sum(signals, axis=0, dtype=np.float64), dtype=np.float32)

    def finish(x_pre: np.ndarray, gain: np.ndarray) -> np.ndarray:
        return stereo_width(through(reverb, x_pre * gain), width)

    def dynamics_gain(x_pre: np.ndarray) -> tuple[np.ndarray, float]:
        """The expander's gain times the compressor's (on the expanded signal), and the
        compressor's lowest gain in dB."""
        expanded = expander_gain(x_pre, sample_rate, settings)
        compressed = compressor_gain(x_pre * expanded, sample_rate, settings)
        return expanded * compressed, float(20.0 * np.log10(max(float(compressed.min()), 1e-12)))

    processed = [through(pre, p) for p in parts]
    gain, min_gain_db = dynamics_gain(total(processed))
    for i, x in enumerate(processed):
        processed[i] = finish(x, gain)
    del gain
    mix = total(processed)
    direct_pre = through(pre, total(parts))
    direct = finish(direct_pre, dynamics_gain(direct_pre)[0])
    deviation = float(np.sqrt(np.mean(np.square(direct - mix, dtype=np.float64))))
    level = float(np.sqrt(np.mean(np.square(direct, dtype=np.float64))))
    deviation_db = 20.0 * np.log10(deviation / level) if deviation > 0 and level > 0 else -np.inf
    return BusRender(mix, tuple(processed), min_gain_db, float(deviation_db))
