"""The DAW bridge: put a chain on VST3 plugins and measure how closely the plugins reproduce
the built-in render (the suggestion itself is :func:`assistant.master.suggest_file`).

The hosting itself lives in :mod:`effects.vst3` and the maps in :mod:`effects.plugins`;
this module only joins them to the analyzer and the settings engines.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.features import Features
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import shape_mask
from mixbridge.assistant.targets import Target
from mixbridge.effects.plugins import PluginChainRenderer, load_map
from mixbridge.effects.render import render
from mixbridge.effects.schema import ChainSettings

log = logging.getLogger(__name__)


def plugin_renderer(settings: ChainSettings, excerpt: Audio, plugins: str,
                    plugin_dirs: Sequence[str | Path] = ()) -> PluginChainRenderer:
    """The chain on the plugins of map ``plugins`` (a name or a TOML path), configured on ``excerpt``."""
    return PluginChainRenderer(settings, excerpt.sample_rate, load_map(plugins), excerpt.samples, plugin_dirs)


def render_match(renderer: PluginChainRenderer, settings: ChainSettings, excerpt: Audio) -> dict:
    """How closely the plugin chain reproduces the built-in render on ``excerpt``.

    Band-spectrum difference: the 1/3-octave mid spectra of the two renders, compared over the
    bands the tonal profiles use (40 Hz-12.6 kHz); LUFS difference: integrated loudness.
    ``lufs_change_lu``: the plugin chain's loudness change on the excerpt. The renderer is reset afterwards.
    """
    renderer.reset()
    via_plugins = renderer.process(excerpt.samples)
    renderer.reset()
    built_in = render(excerpt.samples, excerpt.sample_rate, settings)
    a = analyze(Audio(via_plugins, excerpt.sample_rate, excerpt.source))
    b = analyze(Audio(built_in, excerpt.sample_rate, excerpt.source))
    mask = shape_mask(excerpt.sample_rate)
    diff = (np.asarray(a.mid_band_db) - np.asarray(b.mid_band_db))[mask]
    diff = diff[np.isfinite(diff)]
    return {
        "excerpt_s": round(excerpt.duration_s, 2),
        "band_difference_db": {"mean_abs": round(float(np.mean(np.abs(diff))), 3),
                               "max_abs": round(float(np.max(np.abs(diff))), 3)},
        "lufs_difference_lu": round(a.integrated_lufs - b.integrated_lufs, 3),
        "lufs_change_lu": round(a.integrated_lufs - measure_loudness(excerpt.samples, excerpt.sample_rate)
                                .integrated_lufs, 3),
        "true_peak_difference_db": round(a.true_peak_dbtp - b.true_peak_dbtp, 3),
    }



def estimated_gain_db(features: Features, match: dict, target: Target) -> float:
    """The finalizer's gain for the whole track, estimated without rendering it: the track's
    loudness plus the chain's loudness change on the excerpt (from :func:`render_match`), to the target."""
    return float(target.lufs - (features.integrated_lufs + match["lufs_change_lu"]))
