"""The judgment's do-no-harm and idempotence figures: a clip taken as a finished master is
mastered (in memory, exactly as ``mixbridge master`` would) and then mastered again with the
same target; the change of each pass is measured as a mastering engineer checks a master
(:func:`mixbridge.assistant.judge.measured_change`). ``mixbridge model evaluate`` prints them
beside the model's own figures; ``bench/bench_judgment.py`` measures the same on whole files."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

from mixbridge.analysis.analyze import analyze, as_heard_inverted
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.errors import InvalidAudioError, MixbridgeError
from mixbridge.analysis.features import Features
from mixbridge.analysis.progress import Progress, silent
from mixbridge.assistant.judge import JudgeOptions, measured_change
from mixbridge.assistant.master import decide, master_audio, resolve_target
from mixbridge.assistant.options import DEFAULT_ENGINE, ENGINES
from mixbridge.assistant.targets import Target
from mixbridge.effects.finalize import MAX_LIMITING_DB
from mixbridge.models.data import clips_from_file, is_score_clip

log = logging.getLogger(__name__)


def two_passes(audio: Audio, target: Target, engine: str = DEFAULT_ENGINE,
               judgment: JudgeOptions = JudgeOptions()) -> dict:
    """Master ``audio`` (in memory, as ``master`` would), then master the result again with the
    same target: the do-no-harm and idempotence figures of the judgment. Returns the
    measured change of each pass (:func:`assistant.judge.measured_change`) and whether the
    second pass set any stage."""
    features = analyze(audio)
    if not math.isfinite(features.integrated_lufs):
        raise InvalidAudioError("is silent (no measurable loudness); nothing to master", audio.source)
    first, _ = _decide(audio, features, target, engine, judgment)
    once = master_audio(audio, target, first.settings)[0]
    once_features = analyze(once)
    second, _ = _decide(once, once_features, target, engine, judgment)
    twice_features = analyze(master_audio(once, target, second.settings)[0])
    return {"pass1": measured_change(features, once_features), "pass2": measured_change(once_features, twice_features),
            "pass2_moves": any(m.values for m in second.moves) or second.settings.is_on("highpass")}


def _decide(audio: Audio, features, target: Target, engine: str, judgment: JudgeOptions):
    """:func:`assistant.master.decide` on a whole track in memory (as its own excerpt)."""
    def heard_inverted(features: Features) -> Features:
        return as_heard_inverted(features, audio.blocks())

    return decide(features, audio, target, engine, True, judgment, MAX_LIMITING_DB, heard_inverted)


def do_no_harm(files: Sequence[str | Path], clips: int,
               progress: Progress | None = None) -> dict[str, list[dict]]:
    """:func:`two_passes` for each engine on one clip of each of the first ``clips`` files
    (real recordings before rendered scores), mastered to spotify with ``--profile auto``.
    Returns the figures per engine; a clip that cannot be used (say, silent) is logged and
    skipped, not fatal."""
    step = progress or silent
    target = resolve_target("spotify", profile="auto")
    rows: dict[str, list[dict]] = {engine: [] for engine in ENGINES}
    files = sorted(files, key=is_score_clip)[:clips]
    for i, path in enumerate(files):
        try:
            samples, rate = clips_from_file(Path(path), max_clips=1)[0]
            figures = {engine: two_passes(Audio(samples, rate, str(path)), target, engine) for engine in rows}
        except MixbridgeError as exc:
            log.warning("do no harm: %s skipped (%s)", path, exc.message)
            continue
        for engine, out in rows.items():
            out.append(figures[engine])
        step(f"do no harm: {i + 1}/{len(files)} clips")
    return rows
