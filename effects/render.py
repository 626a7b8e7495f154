"""ChainSettings -> a pedalboard chain -> processed samples, at the audio's native rate.

Stage order: polarity (the right channel inverted), trim, high-pass, low shelf, four peaking bands, high shelf, match EQ (a
minimum-phase FIR, :mod:`mixbridge.effects.match_eq`), upward expander (stereo-linked,
:mod:`mixbridge.effects.expander`), compressor (with a parallel dry/wet
"amount"), reverb (wet added to the unchanged dry signal), stereo width (mid/side). Works on
float32 ``(channels, n)`` arrays; the caller wraps them in ``Audio``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pedalboard as pb

from mixbridge.analysis.audio import invert_right
from mixbridge.analysis.blocks import ahead, chunks, file_threads
from mixbridge.effects.expander import Expander
from mixbridge.effects.match_eq import MatchEqFilter, overlap_add_sizes
from mixbridge.effects.schema import EQ_STAGES, MATCH_EQ_PARAMS, STAGES, ChainSettings

BEFORE_MATCH_EQ = STAGES[: STAGES.index("match_eq")]
AFTER_EXPANDER_TO_REVERB = STAGES[STAGES.index("expander") + 1: STAGES.index("reverb")]
PIPELINE_CHUNKS = 4  # render() of a chain with reverb: the stages before it this many chunks ahead
MIN_PIPELINE_FRAMES = 1 << 15  # ...each at least this long


def build_board(settings: ChainSettings) -> pb.Pedalboard:
    """The pedalboard plugins for every enabled stage except the match EQ, the expander and the
    stereo width (:class:`ChainRenderer` runs the whole chain)."""
    s = settings
    plugins: list[pb.Plugin] = []
    if s.active("trim"):
        plugins.append(pb.Gain(gain_db=s["trim.gain_db"]))
    if s.is_on("highpass"):  # two first-order sections: 12 dB/octave, -6 dB at the cutoff
        plugins += [pb.HighpassFilter(cutoff_frequency_hz=s["highpass.cutoff_hz"]) for _ in range(2)]
    filter_types = {"low_shelf": pb.LowShelfFilter, "high_shelf": pb.HighShelfFilter}
    for stage in EQ_STAGES:
        if s.active(stage):
            kind = filter_types.get(stage, pb.PeakFilter)
            plugins.append(kind(cutoff_frequency_hz=s[f"{stage}.freq_hz"], gain_db=s[f"{stage}.gain_db"],
                                q=s[f"{stage}.q"]))
    if s.is_on("compressor"):
        plugins.append(_compressor(s))
    if s.active("reverb"):
        plugins.append(pb.Reverb(room_size=s["reverb.room_size"], damping=s["reverb.damping"],
                                 wet_level=s["reverb.wet"], dry_level=1.0, width=s["reverb.width"]))
    return pb.Pedalboard(plugins)


def _compressor(s: ChainSettings) -> pb.Plugin:
    wet = pb.Pedalboard([
        pb.Compressor(threshold_db=s["compressor.threshold_db"], ratio=s["compressor.ratio"],
                      attack_ms=s["compressor.attack_ms"], release_ms=s["compressor.release_ms"]),
        pb.Gain(gain_db=s["compressor.makeup_db"]),
    ])
    amount = s.parallel_blend
    if amount >= 1.0:
        return wet
    if amount <= 0.0:
        return pb.Gain(gain_db=0.0)
    wet.append(pb.Gain(gain_db=20.0 * np.log10(amount)))
    return pb.Mix([wet, pb.Gain(gain_db=20.0 * np.log10(1.0 - amount))])


def stereo_width(samples: np.ndarray, width_percent: float) -> np.ndarray:
    """Scale the side signal by ``width_percent`` / 100 (mono input is returned as is).

    With w = width / 100: L' = a L + b R and R' = b L + a R, a = (1 + w) / 2, b = (1 - w) / 2,
    which is mid = (L + R) / 2 kept and side = (L - R) / 2 scaled by w.
    """
    if samples.shape[0] != 2 or width_percent == 100.0:
        return samples
    w = width_percent / 100.0
    a, b = np.float32((1.0 + w) / 2.0), np.float32((1.0 - w) / 2.0)
    out = np.empty_like(samples, dtype=np.float32)
    np.multiply(samples[0], a, out=out[0])
    out[0] += b * samples[1]
    np.multiply(samples[1], a, out=out[1])
    out[1] += b * samples[0]
    return out


class _Lane:
    """The chain's stages from the trim to the reverb (the polarity and the width are the
    renderer's) for the channels one lane renders, with their state from block to block:
    :meth:`front` up to the reverb, :meth:`back` the reverb."""

    def __init__(self, settings: ChainSettings, sample_rate: int):
        self._pre = build_board(settings.only(BEFORE_MATCH_EQ))
        self._match = (MatchEqFilter([settings[n] for n in MATCH_EQ_PARAMS], sample_rate)
                       if settings.active("match_eq") else None)
        self._expander = Expander(settings, sample_rate) if settings.active("expander") else None
        self._dynamics = build_board(settings.only(AFTER_EXPANDER_TO_REVERB))
        self._reverb = build_board(settings.only(("reverb",)))
        self._sample_rate = float(sample_rate)

    def front(self, block: np.ndarray) -> np.ndarray:
        out = block
        if len(self._pre):
            out = self._pre(out, self._sample_rate, reset=False)
        if self._match is not None:
            out = self._match.process(out)
        if self._expander is not None:
            out = self._expander.process(out)
        if len(self._dynamics):
            out = self._dynamics(out, self._sample_rate, reset=False)
        return out

    def back(self, block: np.ndarray) -> np.ndarray:
        return self._reverb(block, self._sample_rate, reset=False) if len(self._reverb) else block


class ChainRenderer:
    """Streaming render: feed consecutive ``(channels, n)`` blocks of any sizes to :meth:`process`.

    The plugins keep their state (filter memories, compressor envelope, reverb tail) from one
    block to the next (pedalboard's ``reset=False``) and the width stage is per sample, so the
    concatenated output equals :func:`render` of the whole signal exactly.

    ``threads`` > 1: a chain whose stages act on each channel alone (:attr:`channels_apart`:
    every stage but the reverb, which mixes the channels, the expander, whose gain is linked,
    and the width, which runs after) renders
    its channels in that many threads, each channel group through its own copy of the stages
    (pedalboard's filters and JUCE's compressor are unlinked: the same samples as one render).
    """

    def __init__(self, settings: ChainSettings, sample_rate: int, threads: int = 1):
        self._settings, self._rate = settings, int(sample_rate)
        self._width_percent = settings["stereo.width_percent"] if settings.is_on("stereo") else 100.0
        self._invert_right = settings.is_on("polarity")
        self.channels_apart = threads > 1 and not settings.active("reverb") and not settings.active("expander")
        self._threads = max(1, int(threads)) if self.channels_apart else 1
        self._lanes: list[_Lane] = []  # one per channel group, made on the first block

    def _lanes_for(self, groups: int) -> list[_Lane]:
        if not self._lanes:
            self._lanes = [_Lane(self._settings, self._rate) for _ in range(groups)]
        if len(self._lanes) != groups:  # the stages' state belongs to one way of rendering
            raise RuntimeError("a renderer renders by process() with its channels apart, or by front() and back()")
        return self._lanes

    def process(self, block: np.ndarray) -> np.ndarray:
        """The next ``(channels, n)`` block of output (float32) for the next block of input."""
        if not self.channels_apart or block.shape[0] < 2:
            return self.back(self.front(block))
        x = self._polarity(block)
        groups = np.array_split(np.arange(x.shape[0]), min(self._threads, x.shape[0]))
        lanes = self._lanes_for(len(groups))

        def lane_render(lane: _Lane, channels: np.ndarray) -> np.ndarray:
            return lane.back(lane.front(x[channels]))

        with ThreadPoolExecutor(len(groups) - 1, thread_name_prefix="mixbridge-lane") as pool:  # renders release the GIL
            rest = [pool.submit(lane_render, lane, g) for lane, g in zip(lanes[1:], groups[1:])]
            out = np.concatenate([lane_render(lanes[0], groups[0]), *(f.result() for f in rest)])
        return np.asarray(stereo_width(out, self._width_percent), dtype=np.float32)

    def front(self, block: np.ndarray) -> np.ndarray:
        """The first half of :meth:`process` (all channels together): the stages before the
        reverb. ``back(front(x))`` is ``process(x)``; each half keeps its own state, so a caller
        may run the halves in two threads, one block apart (:func:`analysis.blocks.ahead`)."""
        return self._lanes_for(1)[0].front(self._polarity(block))

    def back(self, block: np.ndarray) -> np.ndarray:
        """The second half of :meth:`process`: the reverb and the width."""
        out = self._lanes_for(1)[0].back(block)
        return np.asarray(stereo_width(out, self._width_percent), dtype=np.float32)

    def exact_block(self, frames: int) -> int:
        """``frames`` rounded up to a block length whose renders, one after another, give the same
        samples as one render of the whole: a multiple of the match EQ's overlap-add hop (the other
        stages run sample by sample)."""
        step = overlap_add_sizes(self._rate)[1] if self._settings.active("match_eq") else 1
        return max(step, -(-frames // step) * step)

    def _polarity(self, block: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(block, dtype=np.float32)
        return invert_right(out) if self._invert_right else out


def render(samples: np.ndarray, sample_rate: int, settings: ChainSettings, threads: int | None = None) -> np.ndarray:
    """Process ``(channels, n)`` samples through the chain; same shape out. ``threads`` (default
    :func:`analysis.blocks.file_threads`; 1 where the caller already renders trials side by
    side) > 1: a chain without reverb renders its channels apart (:class:`ChainRenderer`); one
    with reverb renders the stages before it in a second thread, one chunk ahead of the reverb,
    in chunks that give the same samples as one render (:meth:`ChainRenderer.exact_block`)."""
    threads = file_threads() if threads is None else threads
    renderer = ChainRenderer(settings, sample_rate, threads)
    if threads < 2 or not settings.active("reverb"):  # one thread, or the channels apart
        return renderer.process(samples)
    step = renderer.exact_block(max(samples.shape[1] // PIPELINE_CHUNKS, MIN_PIPELINE_FRAMES))
    if step >= samples.shape[1]:
        return renderer.process(samples)
    return np.concatenate([renderer.back(b) for b in ahead(chunks(samples, step), renderer.front)], axis=1)
