"""The master pipeline: load -> analyze -> settings -> render -> finalize -> save -> report.

``master_file`` is the library entry point the CLI (and the batch engine) call. Every step's
result goes into a :class:`MasterReport`, whose JSON keys are documented in README.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from assistant import audio as audio_io
from assistant.analyze import analyze, analyze_file_cached
from assistant.atomic import write_text
from assistant.audio import Audio
from assistant.errors import OutputError, UsageError
from assistant.features import Features
from assistant.targets import (
    DEFAULT_CEILING_DBTP,
    DEFAULT_PROFILE,
    Target,
    load_profile,
    load_target,
    profile_from_features,
    reference_lufs,
    tonal_error_db,
)
from effects.finalize import MAX_LIMITING_DB, FinalizeSpec, finalize
from effects.render import render
from effects.schema import ChainSettings

log = logging.getLogger(__name__)

REPORT_VERSION = 1
DEFAULT_TARGET = "spotify"  # when neither --target, --reference nor --lufs is given
ENGINES = ("model", "dsp")
DEFAULT_ENGINE = "model"
MIN_MASTER_S = 1.0
DC_HIGHPASS_DBFS = -50.0  # a DC offset above this is removed by the high-pass...
DC_HIGHPASS_HZ = 20.0  # ...at this cutoff (two first-order sections: no audible bass loss)


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

    def to_dict(self) -> dict:
        t = self.target
        return {
            "report_version": REPORT_VERSION,
            "input": {"path": self.input_path, "features": self.input_features.to_dict()},
            "target": {"name": t.name, "lufs": t.lufs, "ceiling_dbtp": t.ceiling_dbtp,
                       "profile": t.profile.name, "profile_description": t.profile.description},
            "engine": self.engine,
            "settings": self.settings.to_dict(),
            "finalizer": {"gain_db": round(self.gain_db, 3), "limiting_db": round(self.limiting_db, 3)},
            "output": {"path": self.output_path, "bit_depth": self.bit_depth,
                       "features": self.output_features.to_dict()},
            "tonal_error_db": {"before": round(self.tonal_error_before_db, 3),
                               "after": round(self.tonal_error_after_db, 3)},
            "warnings": list(self.warnings),
        }


def resolve_target(target: str | None = None, references: Sequence[str] = (), lufs: float | None = None,
                   ceiling_dbtp: float | None = None, profile: str | None = None,
                   progress: Callable[[str], None] | None = None) -> Target:
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
            feats.append(analyze_file_cached(ref))
        chosen_profile = profile_from_features(
            feats, name="reference", description="measured from " + ", ".join(Path(r).name for r in references))
        ref_lufs = reference_lufs(feats)
    elif profile:
        chosen_profile = load_profile(profile)
    if chosen_profile is None:
        chosen_profile = load_profile(DEFAULT_PROFILE)
    out_lufs = lufs if lufs is not None else base.lufs if base else ref_lufs
    out_ceiling = ceiling_dbtp if ceiling_dbtp is not None else base.ceiling_dbtp if base else DEFAULT_CEILING_DBTP
    if not -70.0 <= out_lufs <= 0.0:
        raise UsageError(f"--lufs {out_lufs} is outside -70..0 LUFS")
    if not -20.0 <= out_ceiling <= 0.0:
        raise UsageError(f"--ceiling {out_ceiling} is outside -20..0 dBTP")
    name = base.name if base and lufs is None and ceiling_dbtp is None else "custom"
    if references and not base and lufs is None:
        name = "reference"
    return Target(name, float(out_lufs), float(out_ceiling), chosen_profile,
                  base.description if base else "")


def suggest_settings(audio: Audio, features: Features, target: Target, engine: str = DEFAULT_ENGINE,
                     refine: bool = True) -> ChainSettings:
    """Chain settings that move ``features`` toward ``target`` with the chosen engine.

    ``model``: the shipped learned model (numpy), optionally refined in a closed loop;
    ``dsp``: the signal-processing baseline. Either way, a DC offset switches the high-pass on.
    """
    settings = _engine_settings(audio, features, target, engine, refine)
    if features.dc_offset_dbfs > DC_HIGHPASS_DBFS and not settings.is_on("highpass"):
        settings = settings.replace({"highpass.cutoff_hz": DC_HIGHPASS_HZ}, {"highpass": True})
    return settings


def _engine_settings(audio: Audio, features: Features, target: Target, engine: str, refine: bool) -> ChainSettings:
    if engine == "dsp":
        from models.baseline import predict_dsp

        return predict_dsp(features, target.profile)
    if engine == "model":
        from models.net import TargetDescriptor
        from models.predict import predict_model
        from models.predict import refine as refine_loop

        descriptor = TargetDescriptor.from_profile(target.profile)
        settings = predict_model(features, descriptor)
        if refine:
            settings = refine_loop(audio.samples, audio.sample_rate, features, descriptor, settings,
                                   lambda x, sr: analyze(Audio(x, sr)))
        return settings
    raise UsageError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")


def master_audio(audio: Audio, target: Target, settings: ChainSettings, bit_depth: str = "24",
                 max_limiting_db: float = MAX_LIMITING_DB) -> tuple[Audio, float, float, tuple[str, ...]]:
    """Render and finalize in memory; returns (output at its written precision, gain, limiting, warnings)."""
    rendered = render(audio.samples, audio.sample_rate, settings)
    if not np.isfinite(rendered).all():
        raise OutputError("the effect chain produced NaN/Inf samples", audio.source)
    result = finalize(rendered, audio.sample_rate,
                      FinalizeSpec(target.lufs, target.ceiling_dbtp, max_limiting_db), audio.source)
    del rendered  # hour-long files: keep at most three copies of the audio alive
    # Dither and rounding add at most 2 LSB (< 0.001 dB at 16 bits near full scale), far inside
    # the finalizer's ceiling margin; the report's output analysis re-measures the written samples.
    written = audio_io.quantize(result.samples, bit_depth)
    return (Audio(written, audio.sample_rate, audio.source), result.gain_db, result.limiting_db,
            result.warnings)


def master_file(input_path: str | Path, output_path: str | Path, target: Target, engine: str = DEFAULT_ENGINE,
                chain: ChainSettings | None = None, refine: bool = True, bit_depth: str = "24",
                overwrite: bool = False,
                max_limiting_db: float = MAX_LIMITING_DB,
                progress: Callable[[str], None] | None = None) -> MasterReport:
    """Master one file to ``target``; see the module docstring."""
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.exists() and output_path.resolve() == input_path.resolve() and not overwrite:
        raise OutputError("is the input file; choose another output or pass --overwrite", output_path)
    if output_path.exists() and not overwrite:
        raise OutputError("already exists; pass --overwrite to replace it", output_path)
    if output_path.suffix.lower() not in audio_io.WRITE_FORMATS:
        raise OutputError(f"cannot write {output_path.suffix or 'a file without extension'}; use .wav or .flac",
                          output_path)
    step = progress or (lambda message: None)
    step("loading")
    audio = audio_io.load(input_path)
    if audio.duration_s < MIN_MASTER_S:
        raise UsageError(f"is {audio.duration_s:.3f} s long; mastering needs at least {MIN_MASTER_S:.0f} s",
                         input_path)
    step("analysing")
    before = analyze(audio)
    if not math.isfinite(before.integrated_lufs):
        raise UsageError("is silent (no measurable loudness); nothing to master", input_path)
    step("choosing settings")
    settings = chain if chain is not None else suggest_settings(audio, before, target, engine, refine)
    step("rendering")
    out, gain_db, limiting_db, warnings = master_audio(audio, target, settings, bit_depth, max_limiting_db)
    sr = audio.sample_rate
    del audio
    step("writing")
    # The samples are already at the written precision: save them without a second dither.
    audio_io.save(out, output_path, bit_depth=bit_depth, dither=False, overwrite=True)
    after = dataclasses.replace(analyze(out), source=str(output_path))
    if after.true_peak_dbtp > target.ceiling_dbtp:
        warnings += (f"output true peak {after.true_peak_dbtp:.2f} dBTP is over the "
                     f"{target.ceiling_dbtp:.1f} dBTP ceiling",)
    if not warnings and abs(after.integrated_lufs - target.lufs) > 0.1:
        warnings += (f"output reads {after.integrated_lufs:.2f} LUFS, not {target.lufs:.1f}",)
    return MasterReport(
        input_path=str(input_path), output_path=str(output_path), target=target,
        engine="chain-file" if chain is not None else engine, settings=settings,
        input_features=before, output_features=after, gain_db=gain_db, limiting_db=limiting_db,
        bit_depth=bit_depth,
        tonal_error_before_db=tonal_error_db(before.mid_band_db, target.profile, sr),
        tonal_error_after_db=tonal_error_db(after.mid_band_db, target.profile, sr),
        warnings=tuple(warnings) + tuple(before.notes),
    )


def write_report(report: MasterReport, path: str | Path) -> Path:
    return write_text(path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
