"""The chain through plugins: which stages run on which insert (the plan) and the renderer
that runs it, block by block, with the built-in stages in their place."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mixbridge.effects.plugins.binding import BoundInsert
from mixbridge.effects.plugins.maps import PluginMap
from mixbridge.effects.render import ChainRenderer
from mixbridge.effects.schema import STAGE_LABELS, STAGES, ChainSettings
from mixbridge.effects.vst3 import PluginError

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class Step:
    """One step of the chain: a bound plugin insert, or a stage on the built-in renderer."""

    stages: tuple[str, ...]
    insert: BoundInsert | None = None


def plan_steps(settings: ChainSettings, plugin_map: PluginMap, dirs: Iterable[str | Path] = (),
               missing: list[str] | None = None) -> list[Step]:
    """The chain in order: an insert for each mapped group of active stages, built-ins for the rest.

    An insert is loaded only when one of its stages is active. A plugin that cannot be found or
    loaded raises PluginError, unless ``missing`` is a list: then its stages run built in and a
    line saying so is appended to ``missing``.
    """
    active = [s for s in STAGES if settings.is_on(s)]
    steps: list[Step] = []
    placed: set[str] = set()
    for stage in active:
        insert = plugin_map.insert_for(stage)
        if insert is None:
            steps.append(Step((stage,)))
        elif insert.name not in placed:
            placed.add(insert.name)
            stages = tuple(s for s in insert.stages if s in active)
            try:
                steps.append(Step(stages, BoundInsert(insert, dirs)))
            except PluginError as exc:
                if missing is None:
                    raise
                missing.append(f"{insert.plugin}: {exc.message}; " + ", ".join(STAGE_LABELS[s] for s in stages)
                               + " on the built-in stage instead")
                steps += [Step((s,)) for s in stages]
    return steps


class PluginChainRenderer:
    """Like :class:`effects.render.ChainRenderer` (consecutive blocks in, blocks out), with the
    mapped stages running in VST3 plugins.

    ``excerpt`` (``(channels, n)`` of the input, e.g. 30 s) drives the compressor calibration;
    each insert is calibrated on what reaches it in the plugin chain.
    """

    def __init__(self, settings: ChainSettings, sample_rate: int, plugin_map: PluginMap,
                 excerpt: np.ndarray | None = None, dirs: Sequence[str | Path] = (), allow_missing: bool = False):
        self.sample_rate = sample_rate
        self.plugin_map = plugin_map
        self.dirs = tuple(dirs)
        self.missing: list[str] = []  # with allow_missing: plugins not found, their stages built in
        self.steps = plan_steps(settings, plugin_map, dirs, self.missing if allow_missing else None)
        self._settings = settings
        signal = None if excerpt is None else np.ascontiguousarray(excerpt, dtype=np.float32)
        for step in self.steps:
            if step.insert is None:
                if signal is not None:
                    signal = self._builtin(step).process(signal)
                continue
            bound = step.insert
            bound.configure(settings, sample_rate, signal)
            latency = bound.plugin.latency_samples()
            if latency:
                raise PluginError(f"{bound.plugin.name} reports {latency} samples of latency; rendering "
                                  "through plugins with latency is not supported", bound.plugin.path)
            if signal is not None:
                signal = self._blend(step, signal, bound.plugin.process(signal, sample_rate, reset=True))
        self.reset()

    def _builtin(self, step: Step) -> ChainRenderer:
        return ChainRenderer(self._settings.only(step.stages), self.sample_rate)

    def reset(self) -> None:
        """Start again from silence: the next block is the start of a new signal."""
        self._builtins = {id(step): self._builtin(step) for step in self.steps if step.insert is None}
        self._started = False

    def _run(self, step: Step, block: np.ndarray) -> np.ndarray:
        if step.insert is None:
            return self._builtins[id(step)].process(block)
        return self._blend(step, block, step.insert.plugin.process(block, self.sample_rate, reset=not self._started))

    def _blend(self, step: Step, dry: np.ndarray, wet: np.ndarray) -> np.ndarray:
        """Parallel compression: the compressor's "amount" of wet, the rest dry (as the built-in)."""
        amount = self._settings.parallel_blend if "compressor" in step.stages else 1.0
        if amount >= 1.0:
            return wet
        return (amount * wet + (1.0 - amount) * dry).astype(np.float32)

    def process(self, block: np.ndarray) -> np.ndarray:
        """The next ``(channels, n)`` block of output (float32) for the next block of input."""
        out = np.ascontiguousarray(block, dtype=np.float32)
        for step in self.steps:
            out = self._run(step, out)
        self._started = True
        return out

    def describe(self) -> list[str]:
        """One line per step: plugin and the values set, or 'built-in'."""
        lines = []
        for step in self.steps:
            labels = ", ".join(STAGE_LABELS[s] for s in step.stages)
            if step.insert is None:
                lines.append(f"{labels}: built-in (no plugin mapped)")
                continue
            values = ", ".join(f"{k} {v:g}" for k, v in step.insert.values.items())
            lines.append(f"{labels}: {step.insert.plugin.name} ({values})")
            lines += [f"  note: {n}" for n in step.insert.notes]
        return lines
