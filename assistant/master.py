"""The master pipeline: analyze -> settings -> render -> finalize -> save -> report.

``master_file`` is the library entry point the CLI (and the batch engine) call. Every step's
result goes into a :class:`MasterReport`, whose JSON keys are documented in README.md.

``master_file`` streams, so memory stays bounded for any length (an hour of stereo 44.1 kHz
peaks near 0.7 GB RSS): the input is analysed in blocks; the settings engine sees a 30 s excerpt
(what the model's refinement renders anyway); pass 1 renders block by block while measuring
what the finalizer needs, keeping the rendered blocks in memory in place of a held input (see
HOLD_BYTES), else in a float32 scratch file next to the output; pass 2 takes them in order,
applies the finalizer's gain and limiter curve, dithers and writes the output to a
temporary name renamed at the end; the report re-measures the written file by streaming.
``master_audio`` is the in-memory form of the same render and finalizer.
"""

from __future__ import annotations

import json
import logging
import math
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.analyze import (
    OUT_OF_PHASE_NOTE,
    StreamAnalyzer,
    analyze_file,
    analyze_file_cached,
    as_heard_inverted,
    is_cached,
)
from mixbridge.analysis.atomic import atomic_path, check_writable, scratch_path, write_text
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.blocks import ahead, fanned_out, file_threads
from mixbridge.analysis.errors import InvalidAudioError, MixbridgeError, OutputError, UsageError
from mixbridge.analysis.features import Features
from mixbridge.analysis.progress import Progress, silent
from mixbridge.assistant.decide import Decision, suggest_settings
from mixbridge.assistant.evidence import Move, goal_to_dict
from mixbridge.assistant.judge import (
    Goal,
    JudgeOptions,
    inverted_polarity,
)
from mixbridge.assistant.options import DEFAULT_ENGINE, MasterOptions
from mixbridge.assistant.profile_choice import with_profile_for
from mixbridge.assistant.targets import (
    AUTO_PROFILE,
    DEFAULT_CEILING_DBTP,
    DEFAULT_PROFILE,
    Target,
    load_profile,
    load_target,
    profile_from_features,
    reference_lufs,
    tonal_error_db,
)
from mixbridge.effects.finalize import (
    MAX_LIMITING_DB,
    BlockStatsMeter,
    FinalizePlan,
    FinalizeSpec,
    LimiterTrace,
    apply_stream,
    finalize,
    finalize_from_stats,
    limiter_trace,
)
from mixbridge.effects.render import ChainRenderer, render
from mixbridge.effects.schema import ChainSettings
from mixbridge.models.predict import excerpt_spans

log = logging.getLogger(__name__)

REPORT_VERSION = 1
DEFAULT_TARGET = "spotify"  # when neither --target, --reference nor --lufs is given
MIN_MASTER_S = 1.0
STREAM_BLOCK_FRAMES = audio_io.DITHER_BLOCK_FRAMES  # ~24 s at 44.1 kHz; dither as in master_audio
# An input whose samples take at most this much memory (float32: 6 minutes of 44.1 kHz stereo)
# is decoded once, by its analysis, and its blocks are held for the excerpt and the render; a
# longer one is read again block by block, so memory stays bounded for any length.
HOLD_BYTES = 128 << 20


@dataclass(frozen=True)
class MasterReport:
    input_path: str
    output_path: str
    target: Target
    engine: str
    settings: ChainSettings
    input_features: Features
    output_features: Features
    gain_db: float
    limiting_db: float
    bit_depth: str
    tonal_error_before_db: float
    tonal_error_after_db: float
    warnings: tuple[str, ...] = field(default_factory=tuple)
    plugins: dict | None = None  # with --plugins: the map, the chain on the plugins, the match figures
    goal: Goal | None = None  # the judgment behind the settings (None for --chain)
    moves: tuple[Move, ...] = ()  # one evidence line per stage or measurement
    notes: tuple[str, ...] = ()  # the judgment's notes (as delivered, DC high-pass, boosts scaled)
    limiter: LimiterTrace | None = None  # the finalizer over time (the HTML report's plots)

    def to_dict(self) -> dict:
        t = self.target
        return {
            "report_version": REPORT_VERSION,
            "input": {"path": self.input_path, "features": self.input_features.to_dict()},
            "target": {"name": t.name, "lufs": t.lufs, "ceiling_dbtp": t.ceiling_dbtp,
                       "profile": t.profile.name, "profile_description": t.profile.description},
            "engine": self.engine,
            "settings": self.settings.to_dict(),
            "finalizer": {"gain_db": round(self.gain_db, 3), "limiting_db": round(self.limiting_db, 3)}
            | ({"timeline": self.limiter.to_dict()} if self.limiter else {}),
            "output": {"path": self.output_path, "bit_depth": self.bit_depth,
                       "features": self.output_features.to_dict()},
            "tonal_error_db": {"before": round(self.tonal_error_before_db, 3),
                               "after": round(self.tonal_error_after_db, 3)},
            "warnings": list(self.warnings),
            "judgment": judgment_dict(self.goal, self.moves, self.notes),
        } | ({"plugins": self.plugins} if self.plugins else {})


def judgment_dict(goal: Goal | None, moves: Sequence[Move], notes: Sequence[str] = ()) -> dict | None:
    """The report's ``judgment``: the goal's evidence, one record per move (with its text), notes."""
    if goal is None:
        return None
    return goal_to_dict(goal) | {"moves": [m.to_dict() for m in moves], "notes": list(notes)}


def resolve_target(target: str | None = None, references: Sequence[str] = (), lufs: float | None = None,
                   ceiling_dbtp: float | None = None, profile: str | None = None,
                   progress: Progress | None = None, *, analysis_threads: int = 2) -> Target:
    """Turn the CLI's target options into one Target.

    ``--target`` gives LUFS, ceiling and a default profile; ``--reference`` tracks give the
    profile (and, without ``--target``/``--lufs``, the loudness); ``--lufs``/``--ceiling``
    override the delivery figures; ``--profile`` names a shipped profile or a TOML file.
    """
    if references and profile:
        raise UsageError("use either --reference or --profile, not both")
    if target is None and not references and lufs is None:
        target = DEFAULT_TARGET
        log.info("no target given: using %s", DEFAULT_TARGET)
    base = load_target(target) if target else None
    chosen_profile = base.profile if base else None
    ref_lufs = None
    if references:
        feats = []
        for ref in references:
            if progress:
                progress(f"analysing reference {ref}")
            feats.append(analyze_file_cached(ref, threads=analysis_threads))
        chosen_profile = profile_from_features(
            feats, name="reference", description="measured from " + ", ".join(Path(r).name for r in references),
            reference=True)
        ref_lufs = reference_lufs(feats)
    elif profile == AUTO_PROFILE:
        chosen_profile = load_profile(DEFAULT_PROFILE)  # replaced per mix by with_profile_for
    elif profile:
        chosen_profile = load_profile(profile)
    if chosen_profile is None:
        chosen_profile = load_profile(DEFAULT_PROFILE)
    out_lufs = lufs if lufs is not None else base.lufs if base else ref_lufs
    out_ceiling = ceiling_dbtp if ceiling_dbtp is not None else base.ceiling_dbtp if base else DEFAULT_CEILING_DBTP
    assert out_lufs is not None  # a target, a level or references: the default target otherwise (above)
    if not -70.0 <= out_lufs <= 0.0:
        raise UsageError(f"--lufs {out_lufs} is outside -70..0 LUFS")
    if not -20.0 <= out_ceiling <= 0.0:
        raise UsageError(f"--ceiling {out_ceiling} is outside -20..0 dBTP")
    name = base.name if base and lufs is None and ceiling_dbtp is None else "custom"
    if references and not base and lufs is None:
        name = "reference"
    return Target(name, float(out_lufs), float(out_ceiling), chosen_profile,
                  base.description if base else "", auto_profile=profile == AUTO_PROFILE and not references)


def analysis_threads(input_path: str | Path, references: Sequence[str | Path] = ()) -> tuple[int, int]:
    """Threads for the input's analysis (:func:`analysing_beside`) and the references'
    (:func:`resolve_target`'s ``analysis_threads``) when they run side by side: the longer of the
    two jobs splits its meters in two, the other keeps to one thread (a 3-minute input beside a
    4.3-minute reference: 1.2 s instead of 1.3 s, the same CPU; four threads on two cores cost
    15 % more CPU). Alone (no reference, or every reference cached), the input splits."""
    if file_threads() < 2:
        return 1, 1
    pending = [ref for ref in references if not is_cached(ref)]
    if not pending:
        return 2, 2
    try:
        input_s = audio_io.info(input_path).duration_s
        references_s = sum(audio_io.info(ref).duration_s for ref in pending)  # analysed one after another
    except MixbridgeError:  # the analyses will say what is wrong with which file
        return 1, 1
    return (2, 1) if input_s > references_s else (1, 2)


def _holds(path: str | Path) -> bool:
    """Whether ``path``'s samples are held in memory for a master (:data:`HOLD_BYTES`); a file
    that cannot be read is not (its analysis says why)."""
    try:
        meta = audio_io.info(path)
    except MixbridgeError:
        return False
    return meta.frames * meta.channels * 4 <= HOLD_BYTES


class InputAnalysis:
    """The input's analysis, running in a second thread (:func:`analysing_beside`). Called, it
    gives the Features (waiting for them, and raising the analysis's error, e.g. an unreadable
    input); :meth:`samples` gives the blocks the analysis decoded, held when the file is no
    larger than :data:`HOLD_BYTES`, so a master reads its input once."""

    def __init__(self, pending: Future, kept: list[np.ndarray] | None):
        self._pending, self._kept = pending, kept

    def __call__(self) -> Features:
        return self._pending.result()

    def samples(self) -> list[np.ndarray] | None:
        """The input's ``(channels, n)`` float32 blocks of ``STREAM_BLOCK_FRAMES`` as read, or
        None (not held). A master's render consumes them (the list ends empty)."""
        self()
        return self._kept


@contextmanager
def analysing_beside(path: str | Path, threads: int = 2) -> Iterator[InputAnalysis]:
    """Analyse ``path`` in a second thread while the caller does other work (typically the
    reference's analysis in :func:`resolve_target`), so the two use both cores; a 3-minute track
    and its reference take about 0.8 s instead of 1.15 s. ``threads`` as in
    :func:`analysis.analyze.analyze_file`, chosen with the references' by :func:`analysis_threads`.
    Yields the :class:`InputAnalysis` (give it, and its ``samples``, to :func:`master_file`)."""
    kept: list[np.ndarray] | None = [] if _holds(path) else None
    with ThreadPoolExecutor(1, thread_name_prefix="mixbridge-analysis") as pool:
        pending = pool.submit(analyze_file, path, threads=threads, keep=kept)
        try:
            yield InputAnalysis(pending, kept)
        finally:
            pending.cancel()


def master_audio(audio: Audio, target: Target, settings: ChainSettings, bit_depth: str = "24",
                 max_limiting_db: float = MAX_LIMITING_DB) -> tuple[Audio, float, float, tuple[str, ...]]:
    """Render and finalize in memory; returns (output at its written precision, gain, limiting, warnings)."""
    rendered = render(audio.samples, audio.sample_rate, settings)
    if not np.isfinite(rendered).all():
        raise OutputError("the effect chain produced NaN/Inf samples", audio.source)
    result = finalize(rendered, audio.sample_rate,
                      FinalizeSpec(target.lufs, target.ceiling_dbtp, max_limiting_db), audio.source)
    del rendered  # keep at most three copies of the audio alive
    # Dither and rounding add at most 2 LSB (< 0.001 dB at 16 bits near full scale), far inside
    # the finalizer's ceiling margin; the report's output analysis re-measures the written samples.
    written = audio_io.quantize(result.samples, bit_depth)
    return (Audio(written, audio.sample_rate, audio.source), result.gain_db, result.limiting_db,
            result.warnings)


@dataclass(frozen=True)
class Suggestion:
    features: Features
    decision: Decision  # the settings, the judgment and its evidence
    excerpt: Audio  # the part of the track the settings were refined on
    target: Target  # with --profile auto: the profile chosen for this mix

    @property
    def settings(self) -> ChainSettings:
        return self.decision.settings


def suggest_file(path: str | Path, target: Target, *, engine: str = DEFAULT_ENGINE, refine: bool = True,
                 judgment: JudgeOptions = JudgeOptions(), max_limiting_db: float = MAX_LIMITING_DB,
                 progress: Progress | None = None,
                 input_features: Callable[[], Features] | None = None,
                 input_samples: Callable[[], list[np.ndarray] | None] | None = None) -> Suggestion:
    """Analyse ``path`` and suggest the chain that moves it toward ``target`` (no rendering);
    ``input_features`` and ``input_samples`` as in :func:`master_file`."""
    step = progress or silent
    step("analysing")
    features = input_features() if input_features else analyze_file(path)
    if not math.isfinite(features.integrated_lufs):
        raise InvalidAudioError("is silent (no measurable loudness); nothing to suggest", path)
    step("choosing settings")
    held = input_samples() if input_samples else None
    excerpt = excerpt_of(path, held)
    decision, target = decide(features, excerpt, target, engine, refine, judgment, max_limiting_db,
                              _heard_inverted(path, held))
    return Suggestion(features, decision, excerpt, target)


def _heard_inverted(path: Path | str, held: list[np.ndarray] | None) -> Callable[[Features], Features]:
    """For :func:`decide`: the track's analysis (given) as heard with the right channel inverted
    (:func:`analysis.analyze.as_heard_inverted`), from its held blocks when it has them, else
    from the file."""
    def heard(features: Features) -> Features:
        return as_heard_inverted(features, held if held else audio_io.iter_blocks(path, STREAM_BLOCK_FRAMES))
    return heard


def input_notes(features: Features, settings: ChainSettings) -> tuple[str, ...]:
    """The input's analysis notes for a report; the out-of-phase one says so when the chain's
    polarity stage puts the channels back in phase."""
    fixed = settings.is_on("polarity")
    return tuple(f"{note}; the chain's polarity stage puts them back in phase"
                 if fixed and note.startswith(OUT_OF_PHASE_NOTE) else note for note in features.notes)


def decide(features: Features, excerpt: Audio, target: Target, engine: str, refine: bool, judgment: JudgeOptions,
           max_limiting_db: float, heard_inverted: Callable[[Features], Features]) -> tuple[Decision, Target]:
    """:func:`assistant.decide.suggest_settings` for a track (``features`` its analysis,
    ``excerpt`` from it), and the target with its profile chosen.

    A stereo mix whose right channel's polarity is inverted (:func:`assistant.judge.inverted_polarity`)
    is judged as heard with it inverted back (``heard_inverted(features)``: the track's analysis so);
    the chain's first stage, ``polarity``, then inverts it, and the first line of the evidence
    says why."""
    move = None
    if inverted_polarity(features):
        measured = features.correlation
        features = heard_inverted(features)
        excerpt = Audio(audio_io.invert_right(excerpt.samples), excerpt.sample_rate, excerpt.source)
        move = Move("width", "polarity", f"stereo correlation {measured:+.2f}", None, None, None, "", "inverted",
                    "right channel's polarity inverted, before the rest of the chain; correlation then "
                    f"{features.correlation:+.2f}")
    target = with_profile_for(target, features)
    decision = suggest_settings(excerpt, features, target, engine, refine, judgment, max_limiting_db)
    if move is not None:
        decision = replace(decision, settings=decision.settings.replace(enabled={"polarity": True}),
                           moves=(move, *decision.moves))
    return decision, target


def master_file(input_path: str | Path, output_path: str | Path, target: Target,
                options: MasterOptions = MasterOptions(), *, progress: Progress | None = None,
                plugins: str | None = None, plugin_dirs: Sequence[str | Path] = (),
                input_features: Callable[[], Features] | None = None,
                input_samples: Callable[[], list[np.ndarray] | None] | None = None) -> MasterReport:
    """Master one file to ``target`` as ``options`` say; see the module docstring.

    ``plugins``: render the chain through the VST3 plugins of this map (see
    :mod:`effects.plugins`); the report then says how closely they match the built-in render.
    ``input_features``: the input's analysis, started earlier by :func:`analysing_beside`, and
    ``input_samples`` the samples it held (its :meth:`InputAnalysis.samples`). Without them the
    input is analysed here; either way a file no larger than :data:`HOLD_BYTES` is decoded once.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    o = options
    if output_path.exists() and output_path.resolve() == input_path.resolve() and not o.overwrite:
        raise OutputError("is the input file; choose another output or pass --overwrite", output_path)
    if output_path.exists() and not o.overwrite:
        raise OutputError("already exists; pass --overwrite to replace it", output_path)
    audio_io.output_format(output_path, o.bit_depth)  # refuse before any work
    check_writable(output_path)
    step = progress or silent
    meta = audio_io.info(input_path)
    if meta.duration_s < MIN_MASTER_S:
        raise InvalidAudioError(f"is {meta.duration_s:.3f} s long; mastering needs at least {MIN_MASTER_S:.0f} s",
                         input_path)
    step("analysing")
    held: list[np.ndarray] | None  # the input's blocks, decoded once by its analysis (small files)
    if input_features:
        before = input_features()
        held = input_samples() if input_samples else None
    else:
        held = [] if _holds(input_path) else None
        before = analyze_file(input_path, keep=held)
    if not math.isfinite(before.integrated_lufs):
        raise InvalidAudioError("is silent (no measurable loudness); nothing to master", input_path)
    sr = meta.sample_rate
    # the excerpt the model refines on is also what plugins are calibrated and compared on
    excerpt = excerpt_of(input_path, held) if o.chain is None or plugins else None
    decision = None
    if o.chain is None:
        step("choosing settings")
        assert excerpt is not None  # read above whenever settings are suggested
        decision, target = decide(before, excerpt, target, o.engine, o.refine, o.judgment, o.max_limiting_db,
                                  _heard_inverted(input_path, held))
        settings = decision.settings
    else:
        target = with_profile_for(target, before)
        settings = o.chain
    spec = FinalizeSpec(target.lufs, target.ceiling_dbtp, o.max_limiting_db)
    renderer, plugin_report = None, None
    if plugins:
        step("loading and setting the plugins")
        assert excerpt is not None  # read above whenever plugins are used
        from mixbridge.assistant.bridge import plugin_renderer, render_match  # lazy: VST3 hosting only here

        renderer = plugin_renderer(settings, excerpt, plugins, plugin_dirs)
        plugin_report = {"map": plugins, "chain": renderer.describe(),
                         "match": render_match(renderer, settings, excerpt)}
    del excerpt
    plan, after, trace = _render_and_finalize(input_path, output_path, meta,
                                              renderer or ChainRenderer(settings, sr, file_threads()), spec,
                                              o.bit_depth, step, held)
    warnings = plan.warnings
    if after.true_peak_dbtp > target.ceiling_dbtp:
        warnings += (f"output true peak {after.true_peak_dbtp:.2f} dBTP is over the "
                     f"{target.ceiling_dbtp:.1f} dBTP ceiling",)
    if not warnings and abs(after.integrated_lufs - target.lufs) > 0.1:
        warnings += (f"output reads {after.integrated_lufs:.2f} LUFS, not {target.lufs:.1f}",)
    return MasterReport(
        input_path=str(input_path), output_path=str(output_path), target=target,
        engine="chain-file" if o.chain is not None else o.engine, settings=settings,
        input_features=before, output_features=after, gain_db=plan.gain_db, limiting_db=plan.limiting_db,
        bit_depth=o.bit_depth,
        tonal_error_before_db=tonal_error_db(before.mid_band_db, target.profile, sr),
        tonal_error_after_db=tonal_error_db(after.mid_band_db, target.profile, sr),
        warnings=tuple(warnings) + input_notes(before, settings),
        plugins=plugin_report, goal=decision.goal if decision else None,
        moves=decision.moves if decision else (), notes=decision.notes if decision else (), limiter=trace,
    )


def _render_and_finalize(input_path: Path, output_path: Path, meta: audio_io.AudioInfo, renderer,
                         spec: FinalizeSpec, bit_depth: str, step: Progress,
                         held: list[np.ndarray] | None = None) -> tuple[FinalizePlan, Features, LimiterTrace]:
    """Pass 1: render the input block by block through ``renderer`` (a ``ChainRenderer`` or a
    ``PluginChainRenderer``: anything with ``process(block)``), measuring the finalizer's block
    statistics; the rendered blocks wait in memory when the input was ``held`` (each input block
    is let go as its output is kept, so memory stays where the held input had it), else in a
    float32 scratch file next to the output. Pass 2 (repeated if the finalizer corrects): take
    them in order, apply the plan, dither and write ``output_path`` atomically, analysing the
    samples as written. Returns the finalizer's plan, the output's features (so the output is
    never read back: the finalizer's measurement is the report's) and the limiter over time.
    The meters run in a second thread, beside the rendering and the writing; the built-in
    chain runs on two cores: its channels apart (no reverb), else its two halves one block apart."""
    sr, channels = meta.sample_rate, meta.channels
    meter = BlockStatsMeter(sr, channels)
    with ExitStack() as pass1:
        step("rendering", 0, meta.frames)
        stored: list[np.ndarray] | _ScratchBlocks
        if held is not None:
            stored, blocks = [], _drained(held)
        else:
            stored = pass1.enter_context(_ScratchBlocks(pass1.enter_context(scratch_path(output_path)), channels))
            blocks = audio_io.iter_blocks(input_path, STREAM_BLOCK_FRAMES)
        if isinstance(renderer, ChainRenderer) and file_threads() > 1 and not renderer.channels_apart:
            chain_out = (renderer.back(block) for block in ahead(blocks, renderer.front))  # two halves, one block apart
        else:  # channels apart in their threads; VST3 plugins (and a batch worker beside others) on one thread
            chain_out = (renderer.process(block) for block in blocks)
        done = 0
        with fanned_out((meter.envelope, meter.power), here=False) as measure:  # beside the render
            for out in chain_out:
                if not np.isfinite(out).all():
                    raise OutputError("the effect chain produced NaN/Inf samples", input_path)
                measure(out)
                stored.append(out)
                done += out.shape[1]
                step("rendering", done, meta.frames)
        stats = meter.result()

        def rendered():
            done = 0
            for block in stored:
                yield block
                done += block.shape[1]
                step("finalizing and writing", done, meta.frames)

        outputs: list[Features] = []
        with atomic_path(output_path) as tmp:
            def write_pass(gain_db: float, block_gain_db: np.ndarray) -> tuple[float, float]:
                step("finalizing and writing", 0, meta.frames)
                analyzer = StreamAnalyzer(sr, channels, str(output_path))
                with audio_io.BlockWriter(tmp, output_path, sr, channels, bit_depth) as writer, \
                        fanned_out((writer.write_quantized, analyzer.levels, analyzer.spectrum),
                                   here=False) as write_and_measure:
                    # the file written and the samples measured in threads beside the limiter and the dither
                    apply_stream(rendered(), gain_db, block_gain_db, stats.block,
                                 lambda block: write_and_measure(writer.quantize(block)))
                outputs.append(analyzer.result())
                return outputs[-1].integrated_lufs, outputs[-1].true_peak_dbtp

            plan = finalize_from_stats(stats, spec, write_pass, str(input_path))
        return plan, outputs[-1], limiter_trace(stats, plan)


class _ScratchBlocks:
    """Pass 1's rendered blocks in a float32 scratch file: :meth:`append` them, then iterate
    them in order, as often as pass 2 runs."""

    def __init__(self, path: str, channels: int):
        self._path, self._channels = path, channels
        self._sizes: list[int] = []

    def __enter__(self) -> "_ScratchBlocks":
        self._file = open(self._path, "w+b")
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()

    def append(self, block: np.ndarray) -> None:
        np.ascontiguousarray(block, dtype=np.float32).tofile(self._file)
        self._sizes.append(block.shape[1])

    def __iter__(self) -> Iterator[np.ndarray]:
        self._file.seek(0)
        for n in self._sizes:
            yield np.fromfile(self._file, np.float32, self._channels * n).reshape(self._channels, n)


def _drained(blocks: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The held input's blocks, in order, each let go as it is rendered (the list ends empty):
    the write pass then holds the rendered samples only."""
    while blocks:
        yield blocks.pop(0)


def excerpt_of(path: str | Path, blocks: Sequence[np.ndarray] | None = None) -> Audio:
    """The excerpt of ``path`` that settings are refined, and plugins calibrated, on: read from
    the file, or cut from its ``blocks`` (consecutive, as the analysis held them) with the same
    values."""
    meta = audio_io.info(path)
    spans = excerpt_spans(meta.frames, meta.sample_rate)
    if blocks is None:
        return audio_io.load_spans(path, spans)
    starts = np.cumsum([0] + [b.shape[1] for b in blocks])
    parts = [block[:, max(a - s0, 0): b - s0] for a, b in spans
             for block, s0, s1 in zip(blocks, starts[:-1], starts[1:]) if s0 < b and a < s1]
    return Audio(np.concatenate(parts, axis=1), meta.sample_rate, str(path))


def write_report(report: MasterReport, path: str | Path) -> Path:
    return write_text(path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
