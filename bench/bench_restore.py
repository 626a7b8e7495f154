"""Restoration on held-out real recordings, degraded by processors the model never trained on,
with the original as the reference: none, DSP, DSP + refinement, model, model + refinement and
Matchering 2.0.6, side by side in one run.

    .venv/bin/python bench/bench_restore.py [--corpus /work/corpus/wav] [--tracks all] [--seconds 30]
        [--per-track 3] [--matchering-python /work/bench-venvs/matchering/bin/python] [--results MD]

**Held out.** The tracks the shipped model held out by file (``models/MODEL_CARD.md``): no clip
of them was trained on. ``--tracks all`` adds every other corpus track too (reported apart).

**Degradations** (``--per-track`` per track, each from another family, seeded):

- ``ffmpeg-eq``: two ``equalizer`` bells and a ``highshelf`` / ``lowshelf`` (ffmpeg's biquads);
- ``ffmpeg-dynamics``: ``acompressor`` (threshold, ratio, attack, release drawn) then an ``equalizer``;
- ``ffmpeg-space``: ``aecho`` (two early reflections), ``extrastereo`` (narrower or wider), a shelf;
- ``zam``: ZamEQ2 (two bells, two shelves) and ZamCompX2, the VST3 plugins of zam-plugins,
  hosted by pedalboard (their filters and detector are not ours);
- ``sox``: ``bass``, ``treble``, ``equalizer``, ``compand``, ``reverb`` (only where sox is installed).

None of these is the chain the model's training data is rendered with (``models/data.py``).

**Methods.** ``mixbridge master DEGRADED --reference ORIGINAL`` in process, with ``--engine dsp``
and ``--engine model``, each with and without ``--refine``; Matchering in its own venv
(subprocess, GPLv3, never imported here); "none" is the degraded input itself.

**Measures** against the original (the reference), on the whole clip:
tonal error (mean |band-shape difference|, 40 Hz-12.5 kHz, level removed, dB); dynamics error
(mean of |crest|, |PLR| and |LRA| differences); width error (|side/mid ratio change|, %);
MR-STFT ratio (multi-resolution STFT distance to the original, relative to the degraded
input's; level-matched); delivery (LUFS within +-0.1 of the reference's and true peak <=
-1 dBTP); per-track wins of model + refinement over DSP + refinement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import publish  # noqa: E402

from mixbridge.analysis.analyze import analyze_file  # noqa: E402
from mixbridge.analysis.audio import Audio, load, save  # noqa: E402
from mixbridge.analysis.spectrum import side_mid_ratio  # noqa: E402
from mixbridge.assistant.master import master_file, resolve_target  # noqa: E402
from mixbridge.assistant.options import MasterOptions  # noqa: E402
from mixbridge.assistant.targets import profile_from_features, tonal_error_db  # noqa: E402
from mixbridge.models.evaluate import mrstft_distance  # noqa: E402

CORPUS = Path("/work/corpus/wav")
RESULTS = ROOT / "bench" / "results" / "restore.md"
MATCHERING_PY = Path("/work/bench-venvs/matchering/bin/python")
HELD_OUT = ("fb_introzik", "nex_beast_of_insanity", "sing_awakening", "wes_casualties_of_war")  # MODEL_CARD.md
CEILING_DBTP = -1.0
METHODS = ("none", "dsp", "dsp+refine", "model", "model+refine", "matchering")
MATCHERING_CODE = ("import sys, matchering as mg; "
                   "mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])")


# ---- degradations ---------------------------------------------------------------------------------

def _ffmpeg(src: Path, dest: Path, chain: str) -> str:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-af", chain, "-c:a", "pcm_s24le",
                    str(dest)], check=True)
    return f"ffmpeg {chain}"


def _bell(rng) -> str:
    return (f"equalizer=f={rng.uniform(150, 6000):.0f}:t=o:w={rng.uniform(0.7, 2.0):.2f}"
            f":g={rng.choice([-1, 1]) * rng.uniform(2.5, 6):.1f}")


def _shelf(rng) -> str:
    kind = rng.choice(["highshelf", "lowshelf"])
    freq = rng.uniform(3000, 8000) if kind == "highshelf" else rng.uniform(80, 250)
    return f"{kind}=f={freq:.0f}:g={rng.choice([-1, 1]) * rng.uniform(3, 6):.1f}"


def ffmpeg_eq(src: Path, dest: Path, rng) -> str:
    return _ffmpeg(src, dest, ",".join([_bell(rng), _bell(rng), _shelf(rng)]))


def ffmpeg_dynamics(src: Path, dest: Path, rng) -> str:
    comp = (f"acompressor=threshold={rng.uniform(-30, -16):.0f}dB:ratio={rng.uniform(2.5, 6):.1f}"
            f":attack={rng.uniform(2, 30):.0f}:release={rng.uniform(60, 300):.0f}:makeup=2")
    return _ffmpeg(src, dest, ",".join([comp, _bell(rng)]))


def ffmpeg_space(src: Path, dest: Path, rng) -> str:
    d1, d2 = rng.uniform(25, 45), rng.uniform(55, 90)
    echo = f"aecho=0.9:0.8:{d1:.0f}|{d2:.0f}:{rng.uniform(0.2, 0.35):.2f}|{rng.uniform(0.12, 0.25):.2f}"
    width = f"extrastereo=m={rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.3, 1.7)]):.2f}"
    return _ffmpeg(src, dest, ",".join([echo, width, _shelf(rng)]))


def zam(src: Path, dest: Path, rng) -> str:
    from mixbridge.effects.vst3 import HostedPlugin

    audio = load(src)
    eq = HostedPlugin(Path("/usr/lib/vst3/ZamEQ2.vst3"), dual_mono=True)
    values = {"boost_cut_l_db": float(rng.uniform(-6, 6)), "frequency_l_hz": float(rng.uniform(80, 250)),
              "boost_cut_1_db": float(rng.uniform(-6, 6)), "frequency_1_hz": float(rng.uniform(200, 1500)),
              "boost_cut_2_db": float(rng.uniform(-6, 6)), "frequency_2_hz": float(rng.uniform(1500, 6000)),
              "boost_cut_h_db": float(rng.uniform(-6, 4)), "frequency_h_hz": float(rng.uniform(4000, 10000))}
    eq.set_values(values)
    comp = HostedPlugin(Path("/usr/lib/vst3/ZamCompX2.vst3"))
    comp_values = {"threshold_db": float(rng.uniform(-30, -16)), "ratio": float(rng.uniform(2, 6)),
                   "attack_ms": float(rng.uniform(2, 30)), "release_ms": float(rng.uniform(60, 400))}
    comp.set_values(comp_values)
    out = comp.process(eq.process(audio.samples, audio.sample_rate), audio.sample_rate)
    out = out / max(1.0, float(np.max(np.abs(out))) / 0.9)
    save(Audio(out.astype(np.float32), audio.sample_rate), dest, "24")
    return "zam " + ", ".join(f"{k} {v:.1f}" for k, v in {**values, **comp_values}.items())


def sox(src: Path, dest: Path, rng) -> str:
    effects = ["bass", f"{rng.uniform(-6, 6):.1f}", "treble", f"{rng.uniform(-6, 5):.1f}",
               "equalizer", f"{rng.uniform(300, 3000):.0f}", "1q", f"{rng.uniform(-5, 5):.1f}",
               "compand", "0.01,0.2", f"6:-70,-60,-{rng.uniform(15, 25):.0f}", "-3", "-90", "0.1",
               "reverb", f"{rng.uniform(10, 30):.0f}", "gain", "-n", "-1"]
    subprocess.run(["sox", str(src), "-b", "24", str(dest), *effects], check=True, capture_output=True)
    return "sox " + " ".join(effects)


FAMILIES = {"ffmpeg-eq": ffmpeg_eq, "ffmpeg-dynamics": ffmpeg_dynamics, "ffmpeg-space": ffmpeg_space,
            "zam": zam, "sox": sox}


def available_families() -> list[str]:
    names = ["ffmpeg-eq", "ffmpeg-dynamics", "ffmpeg-space"] if shutil.which("ffmpeg") else []
    if (Path("/usr/lib/vst3") / "ZamEQ2.vst3").exists():
        names.append("zam")
    if shutil.which("sox"):
        names.append("sox")
    return names


# ---- measures ------------------------------------------------------------------------------------

def measures(out: Path, ref_f, ref_audio: Audio, degraded_distance: float | None, target) -> dict:
    f = analyze_file(out)
    profile = profile_from_features([ref_f], "original", reference=True)
    width = (abs(side_mid_ratio(f.width) / side_mid_ratio(ref_f.width) - 1.0) * 100.0
             if f.channels == 2 and ref_f.width > 0 else 0.0)
    n = min(load(out).samples.shape[1], ref_audio.samples.shape[1])
    distance = mrstft_distance(load(out).samples[:, :n], ref_audio.samples[:, :n])
    return {
        "tonal_db": tonal_error_db(f.mid_band_db, profile, f.sample_rate),
        "crest_db": abs(f.crest_factor_db - ref_f.crest_factor_db),
        "plr_db": abs(f.plr_db - ref_f.plr_db),
        "lra_lu": abs(f.loudness_range_lu - ref_f.loudness_range_lu),
        "width_pct": width,
        "mrstft": distance,
        "mrstft_ratio": distance / degraded_distance if degraded_distance else 1.0,
        "delivered": (abs(f.integrated_lufs - target.lufs) <= 0.1 and f.true_peak_dbtp <= target.ceiling_dbtp + 0.005),
    }


def dynamics(m: dict) -> float:
    return (m["crest_db"] + m["plr_db"] + m["lra_lu"]) / 3.0


# ---- the run --------------------------------------------------------------------------------------

def run_case(original: Path, degraded: Path, tmp: Path, mpy: Path | None) -> dict:
    ref_f, ref_audio = analyze_file(original), load(original)
    target = resolve_target(None, [str(original)])
    none = measures(degraded, ref_f, ref_audio, None, target)
    row = {"none": {**none, "mrstft_ratio": 1.0, "delivered": False}}
    for method in METHODS[1:]:
        out = tmp / f"out-{method}.wav"
        t = time.perf_counter()
        try:
            if method == "matchering":
                if mpy is None:
                    continue
                subprocess.run([str(mpy), "-c", MATCHERING_CODE, str(degraded), str(original), str(out)],
                               check=True, capture_output=True)
            else:
                engine, _, refine = method.partition("+")
                master_file(degraded, out, target, MasterOptions(engine=engine, refine=bool(refine), overwrite=True))
        except (subprocess.CalledProcessError, RuntimeError, ValueError) as exc:
            print(f"      {method} failed: {exc}", flush=True)
            continue
        row[method] = {**measures(out, ref_f, ref_audio, none["mrstft"], target), "seconds": time.perf_counter() - t}
        out.unlink(missing_ok=True)
    return row


def cut(src: Path, start_s: float, seconds: float, dest: Path) -> Path:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", f"{start_s:g}", "-t", f"{seconds:g}", "-i", str(src),
                    "-c:a", "pcm_s24le", str(dest)], check=True)
    return dest


def table(rows: list[dict], title: str) -> list[str]:
    present = [m for m in METHODS if any(m in r["methods"] for r in rows)]
    lines = [f"### {title} ({len(rows)} degraded clips)", "",
             "| method | tonal error dB | dynamics error | crest / PLR / LRA error | width error % | MR-STFT ratio "
             "| delivered |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m in present:
        sel = [r["methods"][m] for r in rows if m in r["methods"]]

        def mean(key: str, sel=sel) -> float:
            return statistics.mean(s[key] for s in sel)

        delivered = "n/a" if m == "none" else f"{sum(s['delivered'] for s in sel)}/{len(sel)}"
        lines.append(f"| {m} | {mean('tonal_db'):.2f} | {statistics.mean(dynamics(s) for s in sel):.2f} | "
                     f"{mean('crest_db'):.2f} / {mean('plr_db'):.2f} / {mean('lra_lu'):.2f} | {mean('width_pct'):.1f} | "
                     f"{mean('mrstft_ratio'):.2f} | {delivered} |")
    both = [r["methods"] for r in rows if "model+refine" in r["methods"] and "dsp+refine" in r["methods"]]
    if both:
        tone_m = statistics.mean(b["model+refine"]["tonal_db"] for b in both)
        tone_d = statistics.mean(b["dsp+refine"]["tonal_db"] for b in both)
        dyn_m = statistics.mean(dynamics(b["model+refine"]) for b in both)
        dyn_d = statistics.mean(dynamics(b["dsp+refine"]) for b in both)
        wins = sum(b["model+refine"]["tonal_db"] < b["dsp+refine"]["tonal_db"] for b in both)
        worse_than_none = sum(dynamics(b["model+refine"]) > dynamics(b["none"]) for b in both)
        lines += ["", f"- model + refinement against DSP + refinement: tonal error {100 * (1 - tone_m / tone_d):+.0f} % "
                      f"better ({tone_m:.2f} vs {tone_d:.2f} dB), dynamics error {100 * (1 - dyn_m / dyn_d):+.0f} % "
                      f"better ({dyn_m:.2f} vs {dyn_d:.2f}); tonal wins {wins}/{len(both)}; dynamics worse than the "
                      f"untouched input on {worse_than_none}/{len(both)}"]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--tracks", choices=("held-out", "all"), default="held-out")
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length, taken from 30 s into each track")
    ap.add_argument("--per-track", type=int, default=3, help="degradations per track, each from another family")
    ap.add_argument("--matchering-python", type=Path, default=MATCHERING_PY)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is needed (apt-get install -y ffmpeg)")
    mpy = args.matchering_python if args.matchering_python.exists() else None
    families = available_families()
    names = sorted(p.stem for p in args.corpus.glob("*.wav"))
    tracks = [n for n in names if n in HELD_OUT] + ([n for n in names if n not in HELD_OUT]
                                                     if args.tracks == "all" else [])
    if not tracks:
        sys.exit(f"no corpus tracks in {args.corpus}")
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mixbridge-bench-restore-") as tmp_s:
        tmp = Path(tmp_s)
        for i, name in enumerate(tracks):
            original = cut(args.corpus / f"{name}.wav", 30.0, args.seconds, tmp / "original.wav")
            for k in range(args.per_track):
                family = families[(i + k) % len(families)]
                rng = np.random.default_rng(1000 * i + k)
                degraded = tmp / "degraded.wav"
                how = FAMILIES[family](original, degraded, rng)
                row = {"track": name, "held_out": name in HELD_OUT, "family": family, "degradation": how,
                       "methods": run_case(original, degraded, tmp, mpy)}
                rows.append(row)
                summary = "  ".join(f"{m} {r['tonal_db']:.2f}/{dynamics(r):.2f}" for m, r in row["methods"].items())
                print(f"[{time.perf_counter() - t0:6.0f} s] {name} {family}: {summary}", flush=True)
    held = [r for r in rows if r["held_out"]]
    others = [r for r in rows if not r["held_out"]]
    lines = ["# Restoration out of family: held-out real recordings, original as the reference", "",
             f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; {len(rows)} clips of "
             f"{args.seconds:g} s; families used: {', '.join(families)}"
             + ("" if "sox" in families else " (sox is not installed here)")
             + ("" if mpy else "; Matchering not found (see bench_master.py --help)"),
             f"- total {time.perf_counter() - t0:.0f} s on {os.cpu_count()} CPUs", "",
             "Errors against the original (lower is better); MR-STFT ratio = distance to the original / the "
             "degraded input's (1 = no better than untouched; DeepAFx-ST reports 0.43 on its own test set).", "",
             *table(held, "Held-out tracks (never trained on)")]
    if others:
        lines += ["", *table(others, "Other corpus tracks (may have been trained on)")]
    lines += ["", "## Per clip (tonal error dB / dynamics error)", "",
              "| track | family | " + " | ".join(METHODS) + " |", "|---|---|" + "---:|" * len(METHODS)]
    for r in rows:
        cells = [f"{r['methods'][m]['tonal_db']:.2f} / {dynamics(r['methods'][m]):.2f}" if m in r["methods"] else "—"
                 for m in METHODS]
        lines.append(f"| {r['track']} | {r['family']} | " + " | ".join(cells) + " |")
    lines += ["", "Degradations:", ""] + [f"- {r['track']} ({r['family']}): `{r['degradation']}`" for r in rows]
    publish(lines, args.results)
    args.results.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
