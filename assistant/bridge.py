"""The DAW bridge: put a chain on VST3 plugins and measure how closely the plugins reproduce
the built-in render (the suggestion itself is :func:`assistant.master.suggest_file`).

The hosting itself lives in :mod:`effects.vst3` and the maps in :mod:`effects.plugins`;
this module only joins them to the analyzer and the settings engines.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.features import Features
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import shape_mask
from mixbridge.assistant.targets import Target
from mixbridge.effects import dawproject, rfxchain
from mixbridge.effects.dawproject import Mix, PluginDevice, write_dawproject
from mixbridge.effects.plugins import PluginChainRenderer, configured_limiter, load_map, stage_values
from mixbridge.effects.render import render
from mixbridge.effects.rfxchain import ReaperFx, write_rfxchain
from mixbridge.effects.schema import STAGE_LABELS, ChainSettings

log = logging.getLogger(__name__)


def plugin_renderer(settings: ChainSettings, excerpt: Audio, plugins: str,
                    plugin_dirs: Sequence[str | Path] = (), allow_missing: bool = False) -> PluginChainRenderer:
    """The chain on the plugins of map ``plugins`` (a name or a TOML path), configured on ``excerpt``;
    ``allow_missing``: a plugin not found leaves its stages built in (``renderer.missing`` says which)."""
    return PluginChainRenderer(settings, excerpt.sample_rate, load_map(plugins), excerpt.samples, plugin_dirs,
                               allow_missing)


def plugin_devices(renderer: PluginChainRenderer, sample_rate: int) -> list[PluginDevice]:
    """Each plugin insert of a configured renderer as a DAWproject device, its state the same
    ``.vstpreset`` bytes that :func:`effects.plugins.export_presets` writes for it."""
    return [PluginDevice(step.stages, step.insert.plugin.name, step.insert.plugin.vendor,
                         step.insert.plugin.class_id, step.insert.plugin.preset_bytes(sample_rate),
                         step.insert.insert.layout == "dual-mono")
            for step in renderer.steps if step.insert is not None]


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


def chain_gain_db(settings: ChainSettings, excerpt: Audio, features: Features, target: Target) -> float:
    """:func:`estimated_gain_db` for the built-in chain: its loudness change on the excerpt."""
    change = (measure_loudness(render(excerpt.samples, excerpt.sample_rate, settings), excerpt.sample_rate)
              .integrated_lufs - measure_loudness(excerpt.samples, excerpt.sample_rate).integrated_lufs)
    return float(target.lufs - (features.integrated_lufs + change))


def _target_text(target: Target) -> str:
    return (f"target {target.name}: {target.lufs:.1f} LUFS integrated, {target.ceiling_dbtp:.1f} dBTP "
            f"ceiling, profile {target.profile.name}")


def export_suffix(kind: str) -> str:
    """The file suffix of a DAW export ``kind`` (its writer's)."""
    return rfxchain.SUFFIX if kind == "rfxchain" else dawproject.SUFFIX


def export_daw(kind: str, path: str | Path, settings: ChainSettings, input_path: str | Path, target: Target,
               gain_db: float, renderer: PluginChainRenderer | None = None) -> Path:
    """The chain for a DAW, as ``kind``: a ``.dawproject``
    (:func:`export_dawproject`) or a REAPER FX chain (:func:`export_rfxchain`)."""
    if kind == "rfxchain":
        if renderer is None:
            raise ValueError("a REAPER FX chain holds VST3 plugins: pass the chain's plugin renderer")
        return export_rfxchain(path, settings, input_path, target, gain_db, renderer)
    return export_dawproject(path, settings, input_path, target, gain_db, renderer)


def export_dawproject(path: str | Path, settings: ChainSettings, input_path: str | Path, target: Target,
                      gain_db: float, renderer: PluginChainRenderer | None = None) -> Path:
    """The mix with ``settings`` on its track as a ``.dawproject`` (:mod:`effects.dawproject`):
    the plugin inserts of ``renderer`` as VST3 devices with their state, the rest generic."""
    meta = audio_io.info(input_path)
    devices = plugin_devices(renderer, meta.sample_rate) if renderer is not None else []
    return write_dawproject(path, settings, Mix(Path(input_path), meta.sample_rate, meta.channels, meta.duration_s),
                            gain_db, target.ceiling_dbtp, _target_text(target), devices, version("mixbridge"))


def export_rfxchain(path: str | Path, settings: ChainSettings, input_path: str | Path, target: Target,
                    gain_db: float, renderer: PluginChainRenderer) -> Path:
    """The chain as a REAPER FX chain (:mod:`effects.rfxchain`): each plugin insert of
    ``renderer`` with its exact state (a mono-only plugin twice, one per channel), the map's
    limiter last with the finalizer's gain; the stages no plugin carries, with their values and
    place, in the file's comment block."""
    sample_rate = audio_io.info(input_path).sample_rate
    fxs: list[ReaperFx] = []
    comment = [f"Mixbridge {version('mixbridge')}: the chain for {Path(input_path).name}, {_target_text(target)}",
               "Load with REAPER's FX chain menu (Load FX chain). In signal order:"]
    for number, step in enumerate(renderer.steps, 1):
        labels = ", ".join(STAGE_LABELS[s] for s in step.stages)
        if step.insert is None:
            comment.append(f"{number}. {labels}: no VST3 carries it; insert your own here and set: "
                           + stage_values(settings, step.stages))
            continue
        plugin = step.insert.plugin
        instances = ((0,), (1,)) if step.insert.insert.layout == "dual-mono" else ((0, 1),)
        preset = plugin.preset_bytes(sample_rate)
        fxs += [ReaperFx(plugin.name, plugin.vendor, Path(plugin.path).name, plugin.class_id, preset, channels)
                for channels in instances]
        twice = " (twice, dual mono: channel 1, then channel 2)" if len(instances) == 2 else ""
        comment.append(f"{number}. {plugin.name}{twice}: {labels}")
        if "compressor" in step.stages and settings["compressor.amount_percent"] < 100.0:
            comment.append(f"   parallel compression: set its wet/dry mix to {settings['compressor.amount_percent']:.0f} %")
    last = len(renderer.steps) + 1
    limiter = renderer.plugin_map.limiter
    if limiter is not None:
        plugin, text = configured_limiter(limiter, renderer, gain_db, target.ceiling_dbtp)
        fxs.append(ReaperFx(plugin.name, plugin.vendor, Path(plugin.path).name, plugin.class_id,
                            plugin.preset_bytes(sample_rate)))
        comment.append(f"{last}. {plugin.name}: the finalizer, {text}; the gain is estimated from the "
                       "loudest 30 s, check the meter")
    else:
        comment.append(f"{last}. a true-peak limiter of your own: {gain_db:+.2f} dB of gain into a "
                       f"{target.ceiling_dbtp:.1f} dBTP ceiling (the plugin map names no limiter)")
    return write_rfxchain(path, fxs, comment)
