"""The stems pipeline: load, correct, decide the bus on the mix, render every stem through
the same bus, write, report (see the package docstring)."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.audio import Audio
from mixbridge.analysis.errors import InvalidAudioError, OutputError
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.progress import Progress
from mixbridge.analysis.progress import silent as no_progress
from mixbridge.analysis.truepeak import amplitude_to_db, true_peak_dbtp
from mixbridge.assistant.decide import suggest_settings
from mixbridge.assistant.master import MIN_MASTER_S
from mixbridge.assistant.options import MasterOptions
from mixbridge.assistant.profile_choice import with_profile_for
from mixbridge.assistant.stems.attribution import eq_moves, stem_suggestions
from mixbridge.assistant.stems.lowend import apply_correction, measure_correction
from mixbridge.assistant.stems.report import (
    MIX_MASTER_NAME,
    OUTPUT_SUFFIX,
    REPORT_NAME,
    StemResult,
    StemsReport,
    measure_residual,
)
from mixbridge.assistant.stems.stemset import find_stems, load_stems
from mixbridge.assistant.targets import Target
from mixbridge.effects.bus import render_bus
from mixbridge.effects.finalize import FinalizeSpec, finalize
from mixbridge.effects.limiter import TruePeakLimiter

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StemOptions(MasterOptions):
    """How ``master_stems`` works: the master's options (``chain``: bus settings to apply instead
    of suggesting them) and the stem-set policy; the CLI's defaults come from here."""

    pad: bool = False  # pad shorter stems with silence at the end instead of refusing the set
    corrections: bool = True  # apply the per-stem high-pass where it is measured to be needed


def master_stems(song_dir: str | Path, out_dir: str | Path, target: Target, options: StemOptions = StemOptions(), *,
                 progress: Progress | None = None) -> StemsReport:
    """Master one song's stems with one shared bus decision (see the package docstring): writes
    ``<stem>.wav`` for every stem, ``mix-master.wav`` and ``stems-report.json`` in ``out_dir``."""
    song_dir, out_dir = Path(song_dir), Path(out_dir)
    step = progress or no_progress
    paths = find_stems(song_dir, out_dir)
    names = [p.stem for p in paths]
    outputs, master_path, report_path = _output_paths(out_dir, names, options.overwrite)
    step(f"loading {len(paths)} stems")
    stems, channels_in, padded = load_stems(paths, song_dir, options.pad)
    silent = [not np.any(s.samples) for s in stems]
    if all(silent):
        raise InvalidAudioError(f"all {len(stems)} stems are silent; nothing to master", song_dir)
    sr = stems[0].sample_rate
    _prepare_output(out_dir)

    step("analysing the stems")
    features = [analyze(s) for s in stems]
    corrections = [measure_correction(s, f, options.corrections) for s, f in zip(stems, features)]
    for name, c in zip(names, corrections):
        if c.highpass_hz is not None:
            log.info("%s: %s", name, c.describe())
    stems = [apply_correction(s, c) for s, c in zip(stems, corrections)]
    mix = Audio(np.asarray(np.sum([s.samples for s in stems], axis=0, dtype=np.float32)), sr,
                f"{song_dir} (sum of stems)")
    if mix.duration_s < MIN_MASTER_S:
        raise InvalidAudioError(f"the stems are {mix.duration_s:.3f} s long; mastering needs at least "
                         f"{MIN_MASTER_S:.0f} s", song_dir)
    step("analysing the mix")
    mix_before = analyze(mix)
    if not math.isfinite(mix_before.integrated_lufs):
        raise InvalidAudioError("the stems sum to silence (no measurable loudness); nothing to master", song_dir)
    step("choosing the bus settings on the mix")
    target = with_profile_for(target, mix_before)
    decision = None
    if options.chain is None:
        decision = suggest_settings(mix, mix_before, target, options.engine, options.refine, options.judgment,
                                    options.max_limiting_db)
        settings = decision.settings
    else:
        settings = options.chain
    moves = eq_moves(settings, dict(zip(names, features)), sr)

    step("rendering the bus on the mix and on every stem")
    bus = render_bus([s.samples for s in stems], sr, settings)
    del stems
    log.info("bus: sum of processed stems vs the mix rendered alone: %.1f dB", bus.direct_deviation_db)
    if not all(np.isfinite(x).all() for x in (bus.mix, *bus.parts)):
        raise OutputError("the effect chain produced NaN/Inf samples", song_dir)
    step("finalizing the mix")
    result = finalize(bus.mix, sr, FinalizeSpec(target.lufs, target.ceiling_dbtp, options.max_limiting_db),
                      str(song_dir))
    warnings = list(result.warnings)

    step("writing")
    master_written = audio_io.quantize(result.samples, options.bit_depth, dither=True, seed=0)
    audio_io.save(Audio(master_written, sr, str(master_path)), master_path, options.bit_depth, dither=False)
    results, stem_sum = _write_stems(paths, outputs, bus.parts, result, features, corrections, channels_in, padded,
                                     silent, moves, options.bit_depth, warnings)
    residual = measure_residual(stem_sum, master_written, options.bit_depth, sum(not s for s in silent))
    del stem_sum
    mix_after = analyze(Audio(master_written, sr, str(master_path)))
    if mix_after.true_peak_dbtp > target.ceiling_dbtp:
        warnings.append(f"mix master true peak {mix_after.true_peak_dbtp:.2f} dBTP is over the "
                        f"{target.ceiling_dbtp:.1f} dBTP ceiling")
    report = StemsReport(
        input_dir=str(song_dir), output_dir=str(out_dir), target=target,
        engine="chain-file" if options.chain else options.engine, sample_rate=sr,
        frames=mix.frames, bit_depth=options.bit_depth, stems=tuple(results), settings=settings,
        eq_moves=moves, compressor_min_gain_db=bus.compressor_min_gain_db, gain_db=result.gain_db,
        limiting_db=result.limiting_db, mix_master_path=str(master_path), mix_input=mix_before,
        mix_output=mix_after, residual=residual, direct_deviation_db=bus.direct_deviation_db,
        warnings=tuple(warnings) + tuple(mix_before.notes), goal=decision.goal if decision else None,
        moves=decision.moves if decision else (), notes=decision.notes if decision else (), limiter=result.trace)
    write_text(report_path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    log.info("stems residual: %.1f dB RMS below the master (%s)", residual.rms_below_master_db, options.bit_depth)
    return report


def _write_stems(paths, outputs, parts, result, features, corrections, channels_in, padded, silent, moves,
                 bit_depth: str, warnings: list[str]) -> tuple[list[StemResult], np.ndarray]:
    """Each stem through the finalizer's gain curve, written at ``bit_depth`` with its own
    dither (none on a silent stem, so it stays exactly silent); returns the per-stem results
    and the sum of the written stems (for the residual). A stem that would clip adds a warning."""
    sr = features[0].sample_rate
    stem_sum, results = np.zeros(parts[0].shape), []
    for i, (path, out_path, part) in enumerate(zip(paths, outputs, parts)):
        name, f = path.stem, features[i]
        out = TruePeakLimiter.apply(part, result.block_gain_db, result.block, result.gain_db)
        if bit_depth != "32f" and np.max(np.abs(out)) >= 1.0:
            warnings.append(f"stem {name} peaks at {amplitude_to_db(float(np.max(np.abs(out)))):+.2f} dBFS after "
                            f"the shared bus gain: clipped at {bit_depth} bits, so the stems no longer "
                            "sum to the master; use --bit-depth 32f")
        written = audio_io.quantize(out, bit_depth, dither=not silent[i], seed=i + 1)
        audio_io.save(Audio(written, sr, str(out_path)), out_path, bit_depth, dither=False)
        stem_sum += written
        results.append(StemResult(
            name=name, input_path=str(path), output_path=str(out_path), channels_in=channels_in[i],
            centred=channels_in[i] < written.shape[0], padded_frames=padded[i], silent=silent[i],
            input_lufs=f.integrated_lufs, output_lufs=measure_loudness(written, sr).integrated_lufs,
            input_true_peak_dbtp=f.true_peak_dbtp, output_true_peak_dbtp=true_peak_dbtp(written, sr),
            correction=corrections[i], suggestions=stem_suggestions(name, f, silent[i], corrections[i], moves)))
    return results, stem_sum


def _output_paths(out_dir: Path, names: list[str], overwrite: bool) -> tuple[list[Path], Path, Path]:
    """Where each stem, the mix master and the report go; refused if any exists, unless ``overwrite``."""
    outputs = [out_dir / f"{n}{OUTPUT_SUFFIX}" for n in names]
    master_path, report_path = out_dir / f"{MIX_MASTER_NAME}{OUTPUT_SUFFIX}", out_dir / REPORT_NAME
    existing = [p.name for p in (*outputs, master_path, report_path) if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"already holds {', '.join(existing)}; pass --overwrite to replace them", out_dir)
    return outputs, master_path, report_path


def _prepare_output(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and check that it can be written, before any long work."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror or exc})", out_dir) from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError("the output folder is not writable", out_dir)
