"""Preset export: each insert's state as a ``.vstpreset`` (exact values), the chain JSON and
the insert list a producer follows in the DAW."""

from __future__ import annotations

import logging
from pathlib import Path

from mixbridge.analysis.atomic import write_text
from mixbridge.effects.plugins.chain import PluginChainRenderer
from mixbridge.effects.plugins.maps import LimiterMap, locate
from mixbridge.effects.schema import PARAM_INDEX, STAGE_LABELS, SWITCH_TEXT, ChainSettings, format_value
from mixbridge.effects.vst3 import HostedPlugin

log = logging.getLogger(__name__)


def stage_values(settings: ChainSettings, stages: tuple[str, ...]) -> str:
    """The stages' parameters in words, for a stage the producer sets by hand."""
    return "; ".join([SWITCH_TEXT[s] for s in stages if s in SWITCH_TEXT]
                     + [f"{PARAM_INDEX[n].label} {format_value(PARAM_INDEX[n], settings[n])}"
                        for s in stages for n in PARAM_INDEX if n.startswith(s + ".")])


def export_presets(renderer: PluginChainRenderer, settings: ChainSettings, out_dir: str | Path,
                   sample_rate: int, gain_db: float | None = None, ceiling_dbtp: float | None = None,
                   target_text: str = "") -> list[Path]:
    """One ``.vstpreset`` per plugin insert of a configured renderer, plus ``INSERTS.txt``
    listing which file goes on which insert, in order (built-in stages described in words).

    With the map's ``[limiter]`` and ``gain_db`` / ``ceiling_dbtp`` (the finalizer's gain, as
    estimated by the caller, and the delivery ceiling), a last preset for that limiter."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, lines = [], ["Mixbridge suggested chain: load these on the track's inserts, top to bottom.", ""]
    for number, step in enumerate(renderer.steps, 1):
        labels = ", ".join(STAGE_LABELS[s] for s in step.stages)
        if step.insert is None:
            lines.append(f"{number}. {labels}: no plugin mapped; set by hand or use your own: "
                         + stage_values(settings, step.stages))
            continue
        bound = step.insert
        path = out_dir / f"{number:02d}-{bound.insert.plugin}.vstpreset"
        bound.plugin.save_preset(path, sample_rate)
        written.append(path)
        lines.append(f"{number}. {path.name} -> {bound.plugin.name} ({labels})")
        if bound.insert.layout == "dual-mono":
            lines.append("   mono plugin: on a stereo track the DAW runs it dual-mono (same preset on both sides)")
        if "compressor" in step.stages and settings["compressor.amount_percent"] < 100.0:
            lines.append(f"   parallel compression: blend {settings['compressor.amount_percent']:.0f} % "
                         "compressed with the dry signal (insert dry/wet, or a parallel bus)")
        if bound.insert.note:
            lines.append(f"   {bound.insert.note}")
        lines += [f"   note: {n}" for n in bound.notes]
    limiter = renderer.plugin_map.limiter
    if limiter is not None and gain_db is not None and ceiling_dbtp is not None:
        number = len(renderer.steps) + 1
        plugin, text = configured_limiter(limiter, renderer, gain_db, ceiling_dbtp)
        path = plugin.save_preset(out_dir / f"{number:02d}-{limiter.plugin}.vstpreset", sample_rate)
        written.append(path)
        lines += [f"{number}. {path.name} -> {limiter.plugin} (limiter, last): {text}"
                  + (f", aiming at {target_text}" if target_text else ""),
                  "   the gain is estimated from the track's loudest 30 s; check the meter. Mixbridge's own "
                  "finalizer (mixbridge master) lands on the target exactly, under the true-peak ceiling."]
    else:
        lines += ["", "After the chain: Mixbridge's finalizer (gain to the loudness target and a true-peak "
                  "limiter) is not part of these presets."]
    written.append(write_text(out_dir / "INSERTS.txt", "\n".join(lines) + "\n"))
    return written


def configured_limiter(limiter: LimiterMap, renderer: PluginChainRenderer, gain_db: float,
                       ceiling_dbtp: float) -> tuple[HostedPlugin, str]:
    """The map's limiter plugin set to ``gain_db`` into a ceiling under ``ceiling_dbtp``, and its settings in words."""
    plugin = HostedPlugin(locate(limiter.plugin, renderer.dirs))
    ceiling = ceiling_dbtp - limiter.margin_db
    threshold_param = plugin.param(limiter.threshold)
    lo, hi = sorted((float(threshold_param.min_value), float(threshold_param.max_value)))
    threshold = min(max(ceiling - gain_db, lo), hi)
    plugin.set_values(dict(limiter.fixed) | {limiter.ceiling: ceiling, limiter.threshold: threshold})
    text = (f"{limiter.ceiling} {ceiling:.1f} dB (sample peak, {limiter.margin_db:g} dB under the "
            f"{ceiling_dbtp:.1f} dBTP ceiling), {limiter.threshold} {threshold:.2f} dB ({ceiling - threshold:+.2f} dB "
            "of gain into the limiter)")
    if ceiling - threshold < gain_db - 1e-6:
        text += f"; the plugin's range stops it {gain_db - (ceiling - threshold):.1f} dB short of the target"
    return plugin, text
