"""Restoration out of family: held-out real recordings, degraded by processors that no part of
Mixbridge renders with (and the model never trained on), mastered with the original as the
reference, and measured against it. ``mixbridge model evaluate --restoration`` runs it;
``bench/bench_restore.py`` runs the same with Matchering beside it.

Degradation families (each seeded; the ones whose tool this machine lacks are left out, and
the table says which ran):

- ``ffmpeg-eq``: two ``equalizer`` bells and a ``highshelf`` or ``lowshelf`` (ffmpeg's biquads);
- ``ffmpeg-dynamics``: ``acompressor`` (threshold, ratio, attack, release drawn), an ``equalizer``;
- ``ffmpeg-space``: ``aecho`` (two early reflections), ``extrastereo`` (narrower or wider), a shelf;
- ``zam``: ZamEQ2 (two bells, two shelves) then ZamCompX2, VST3 plugins of zam-plugins;
- ``sox``: ``bass``, ``treble``, ``equalizer``, ``compand``, ``reverb``.

Methods: ``none`` (the degraded input as it is), ``none→finalizer`` (the finalizer alone: the
reference's loudness under the ceiling), ``original→finalizer`` (the original delivered so: the
floor of any method that keeps the ceiling), and ``master`` with each engine, with and without
the refinement.

Measures against the original: tonal error (mean |band-shape difference| over the tonal bands,
level removed, dB); dynamics error (the mean of the crest, PLR and LRA differences); width
error (side/mid ratio, %); the MR-STFT distance relative to the degraded input's, as DeepAFx-ST
measured it and over the whole band (``models.evaluate``); delivery
(within +-0.1 LU of the reference's loudness, true peak under -1 dBTP).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mixbridge.analysis.analyze import analyze
from mixbridge.analysis.audio import Audio, load, save
from mixbridge.analysis.errors import MixbridgeError
from mixbridge.analysis.progress import Progress, silent
from mixbridge.analysis.spectrum import side_mid_ratio
from mixbridge.assistant.judge import Amounts, JudgeOptions
from mixbridge.assistant.master import master_file, resolve_target
from mixbridge.assistant.options import ENGINES, MasterOptions
from mixbridge.assistant.targets import Target, profile_from_features, tonal_error_db
from mixbridge.effects.plugins.maps import locate
from mixbridge.effects.vst3 import HostedPlugin, PluginError
from mixbridge.models.evaluate import mrstft_distance, mrstft_fullband_distance

log = logging.getLogger(__name__)

BASELINES = ("none", "none→finalizer", "original→finalizer")
ENGINE_METHODS = tuple(f"{e}{suffix}" for e in ENGINES[::-1] for suffix in ("", "+refine"))  # dsp, dsp+refine, model, ...
CLIP_START_S = 30.0  # clips start here, past most intros


def _ffmpeg(src: Path, dest: Path, chain: str) -> str:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-af", chain, "-c:a", "pcm_s24le",
                    str(dest)], check=True, capture_output=True)
    return f"ffmpeg -af {chain}"


def _bell(rng: np.random.Generator) -> str:
    return (f"equalizer=f={rng.uniform(150, 6000):.0f}:t=o:w={rng.uniform(0.7, 2.0):.2f}"
            f":g={rng.choice([-1, 1]) * rng.uniform(2.5, 6):.1f}")


def _shelf(rng: np.random.Generator) -> str:
    kind = str(rng.choice(["highshelf", "lowshelf"]))
    freq = rng.uniform(3000, 8000) if kind == "highshelf" else rng.uniform(80, 250)
    return f"{kind}=f={freq:.0f}:g={rng.choice([-1, 1]) * rng.uniform(3, 6):.1f}"


def ffmpeg_eq(src: Path, dest: Path, rng: np.random.Generator) -> str:
    return _ffmpeg(src, dest, ",".join([_bell(rng), _bell(rng), _shelf(rng)]))


def ffmpeg_dynamics(src: Path, dest: Path, rng: np.random.Generator) -> str:
    comp = (f"acompressor=threshold={rng.uniform(-30, -16):.0f}dB:ratio={rng.uniform(2.5, 6):.1f}"
            f":attack={rng.uniform(2, 30):.0f}:release={rng.uniform(60, 300):.0f}:makeup=2")
    return _ffmpeg(src, dest, ",".join([comp, _bell(rng)]))


def ffmpeg_space(src: Path, dest: Path, rng: np.random.Generator) -> str:
    d1, d2 = rng.uniform(25, 45), rng.uniform(55, 90)
    echo = f"aecho=0.9:0.8:{d1:.0f}|{d2:.0f}:{rng.uniform(0.2, 0.35):.2f}|{rng.uniform(0.12, 0.25):.2f}"
    width = f"extrastereo=m={rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.3, 1.7)]):.2f}"
    return _ffmpeg(src, dest, ",".join([echo, width, _shelf(rng)]))


def zam(src: Path, dest: Path, rng: np.random.Generator) -> str:
    audio = load(src)
    eq = HostedPlugin(locate("ZamEQ2"), dual_mono=True)
    eq_values = {"boost_cut_l_db": rng.uniform(-6, 6), "frequency_l_hz": rng.uniform(80, 250),
                 "boost_cut_1_db": rng.uniform(-6, 6), "frequency_1_hz": rng.uniform(200, 1500),
                 "boost_cut_2_db": rng.uniform(-6, 6), "frequency_2_hz": rng.uniform(1500, 6000),
                 "boost_cut_h_db": rng.uniform(-6, 4), "frequency_h_hz": rng.uniform(4000, 10000)}
    comp = HostedPlugin(locate("ZamCompX2"))
    comp_values = {"threshold_db": rng.uniform(-30, -16), "ratio": rng.uniform(2, 6),
                   "attack_ms": rng.uniform(2, 30), "release_ms": rng.uniform(60, 400)}
    eq.set_values({k: float(v) for k, v in eq_values.items()})
    comp.set_values({k: float(v) for k, v in comp_values.items()})
    out = comp.process(eq.process(audio.samples, audio.sample_rate), audio.sample_rate)
    out = out / max(1.0, float(np.max(np.abs(out))) / 0.9)
    save(Audio(out.astype(np.float32), audio.sample_rate), dest, "24")
    return "ZamEQ2 + ZamCompX2: " + ", ".join(f"{k} {v:.1f}" for k, v in {**eq_values, **comp_values}.items())


def sox(src: Path, dest: Path, rng: np.random.Generator) -> str:
    effects = ["bass", f"{rng.uniform(-6, 6):.1f}", "treble", f"{rng.uniform(-6, 5):.1f}",
               "equalizer", f"{rng.uniform(300, 3000):.0f}", "1q", f"{rng.uniform(-5, 5):.1f}",
               "compand", "0.01,0.2", f"6:-70,-60,-{rng.uniform(15, 25):.0f}", "-3", "-90", "0.1",
               "reverb", f"{rng.uniform(10, 30):.0f}", "gain", "-n", "-1"]
    subprocess.run(["sox", str(src), "-b", "24", str(dest), *effects], check=True, capture_output=True)
    return "sox " + " ".join(effects)


FAMILIES: dict[str, Callable[[Path, Path, np.random.Generator], str]] = {
    "ffmpeg-eq": ffmpeg_eq, "ffmpeg-dynamics": ffmpeg_dynamics, "ffmpeg-space": ffmpeg_space, "zam": zam, "sox": sox}


def available_families() -> list[str]:
    """The families whose tools this machine has (ffmpeg, zam-plugins, sox)."""
    names = ["ffmpeg-eq", "ffmpeg-dynamics", "ffmpeg-space"] if shutil.which("ffmpeg") else []
    try:
        locate("ZamEQ2"), locate("ZamCompX2")
        names.append("zam")
    except PluginError:
        pass
    if shutil.which("sox"):
        names.append("sox")
    return names


def measures(path: Path, original: Audio, original_features, target: Target,
             degraded: dict | None = None) -> dict:
    """``path`` measured against the original (see the module docstring); ``dynamics`` is the
    mean of the crest, PLR and LRA errors."""
    audio = load(path)
    f = analyze(audio)
    profile = profile_from_features([original_features], "original", reference=True)
    width = (abs(side_mid_ratio(f.width) / side_mid_ratio(original_features.width) - 1.0) * 100.0
             if f.channels == 2 and original_features.width > 0 else 0.0)
    n = min(audio.frames, original.frames)
    distance = mrstft_distance(audio.samples[:, :n], original.samples[:, :n], audio.sample_rate)
    fullband = mrstft_fullband_distance(audio.samples[:, :n], original.samples[:, :n])
    crest = abs(f.crest_factor_db - original_features.crest_factor_db)
    plr = abs(f.plr_db - original_features.plr_db)
    lra = abs(f.loudness_range_lu - original_features.loudness_range_lu)

    def ratio(value: float, key: str) -> float:  # to the degraded input's own distance
        return value / degraded[key] if degraded and degraded[key] else 1.0

    return {"tonal_db": tonal_error_db(f.mid_band_db, profile, f.sample_rate),
            "crest_db": crest, "plr_db": plr, "lra_lu": lra, "dynamics": (crest + plr + lra) / 3.0,
            "width_pct": width, "mrstft": distance, "mrstft_fullband": fullband,
            "mrstft_ratio": ratio(distance, "mrstft"), "mrstft_fullband_ratio": ratio(fullband, "mrstft_fullband"),
            "delivered": bool(abs(f.integrated_lufs - target.lufs) <= 0.1
                              and f.true_peak_dbtp <= target.ceiling_dbtp + 0.005)}


def restore(original: Path, degraded: Path, work: Path,
            extra: dict[str, Callable[[Path, Path, Path], None]] | None = None) -> dict[str, dict]:
    """Every method on one degraded clip, measured against ``original``. ``extra`` maps more
    method names to ``run(degraded, original, out)`` (the bench adds Matchering so)."""
    extra = dict(extra or {})
    original_audio = load(original)
    original_features = analyze(original_audio)
    target = resolve_target(None, [str(original)])
    none = measures(degraded, original_audio, original_features, target)
    rows = {"none": {**none, "delivered": False}}
    out = work / "restored.wav"
    deliver_only = MasterOptions(judgment=JudgeOptions(Amounts(0.0, 0.0, 0.0, 0.0)), overwrite=True)

    def run(method: str) -> None:
        if method in extra:
            extra[method](degraded, original, out)
        elif method.endswith("→finalizer"):
            master_file(original if method.startswith("original") else degraded, out, target, deliver_only)
        else:
            engine, _, refine = method.partition("+")
            master_file(degraded, out, target, MasterOptions(engine=engine, refine=bool(refine), overwrite=True))

    for method in (*BASELINES[1:], *ENGINE_METHODS, *extra):
        try:
            run(method)
        except (MixbridgeError, subprocess.CalledProcessError) as exc:
            log.warning("restoration: %s failed on %s (%s)", method, degraded, exc)
            continue
        rows[method] = measures(out, original_audio, original_features, target, none)
    out.unlink(missing_ok=True)
    return rows


def cut_clip(src: Path, seconds: float, dest: Path) -> Path:
    """``seconds`` of ``src`` from CLIP_START_S (or its start, if shorter), as 24-bit WAV."""
    audio = load(src)
    start = int(CLIP_START_S * audio.sample_rate)
    if audio.samples.shape[1] < start + int(seconds * audio.sample_rate):
        start = 0
    clip = audio.samples[:, start: start + int(seconds * audio.sample_rate)]
    save(Audio(np.ascontiguousarray(clip), audio.sample_rate), dest, "24")
    return dest


def restoration(tracks: Sequence[Path], per_track: int = 3, seconds: float = 30.0,
                extra: dict[str, Callable[[Path, Path, Path], None]] | None = None,
                progress: Progress | None = None) -> list[dict]:
    """:func:`restore` on ``per_track`` degraded clips of each track, each from another family
    (seeded by the track's place and the clip's). Returns one row per clip: track, family, the
    degradation, and the methods' measures."""
    families = available_families()
    if not families:
        raise MixbridgeError("no degradation tool found: restoration needs ffmpeg, zam-plugins or sox")
    step = progress or silent
    rows = []
    with tempfile.TemporaryDirectory(prefix="mixbridge-restoration-") as tmp:
        work = Path(tmp)
        for i, track in enumerate(tracks):
            original = cut_clip(Path(track), seconds, work / "original.wav")
            for k in range(per_track):
                family = families[(i + k) % len(families)]
                degraded = work / "degraded.wav"
                how = FAMILIES[family](original, degraded, np.random.default_rng(1000 * i + k))
                rows.append({"track": Path(track).stem, "family": family, "degradation": how,
                             "methods": restore(original, degraded, work, extra)})
                step(f"restoration: {Path(track).stem} {family} ({len(rows)}/{len(tracks) * per_track})")
    return rows
