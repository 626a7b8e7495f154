"""Analyzer benchmark: Mixbridge vs pyloudnorm and libebur128 on the same file, in one run.

    python bench/bench_analyze.py [--track PATH] [--seconds 180] [--runs 5] [--hour-s 3600] [--profile]

- 3-minute track (the first ``--seconds`` of ``--track``; default: the first WAV in
  /work/corpus/wav, else a synthetic stand-in, flagged in the output): ``load``,
  ``analyze(load(path))`` and ``analyze_file(path)`` in-process, median of ``--runs``;
  pyloudnorm (integrated loudness only) and pyebur128 (integrated + LRA + true peak) on the
  same samples, median of ``--runs``.
- 1-hour file (the track tiled, written block by block to a temp dir, deleted afterwards):
  ``analyze_file`` wall time and peak RSS of a fresh subprocess (``os.wait4`` rusage).

Prints a markdown table and saves it to bench/results/analyze.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import BLOCK_FRAMES, cut_audio, publish  # noqa: E402

from mixbridge.analysis.analyze import analyze, analyze_file  # noqa: E402
from mixbridge.analysis.audio import load  # noqa: E402

CORPUS = Path("/work/corpus/wav")
EXAMPLE = ROOT / "examples" / "groove.flac"
RESULTS = ROOT / "bench" / "results" / "analyze.md"
GOAL_3MIN_S = 1.0
GOAL_HOUR_RSS_GB = 1.5

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from mixbridge.analysis.analyze import analyze_file
out = {{}}
if {run!r}:
    t = time.perf_counter()
    f = analyze_file({path!r})
    out = {{"wall_s": time.perf_counter() - t, "lufs": f.integrated_lufs,
           "lra": f.loudness_range_lu, "tp": f.true_peak_dbtp}}
out["vm_hwm_kb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps(out))
"""
# ru_maxrss of a child starts from the RSS of the process that forked it (Linux carries the
# high-water mark across fork/exec), so the child is started by this tiny launcher, not by the
# benchmark process holding hundreds of MB: then the child's ru_maxrss is its own true peak.
LAUNCHER = """
import json, os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
out = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
print(json.dumps({"child": json.loads(out or b"{}"), "code": proc.returncode,
                  "wall_s": time.perf_counter() - t, "maxrss_kb": usage.ru_maxrss,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def median_time(fn, runs: int):
    """(median wall s, median CPU s of this process, min wall s, last result) of ``runs`` calls.

    CPU time (all threads) is the steadier number when other processes load the machine.
    """
    walls, cpus, result = [], [], None
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), min(walls), result


def pick_track(arg: str | None) -> tuple[Path | None, str]:
    if arg:
        return Path(arg), "given with --track"
    wavs = sorted(CORPUS.glob("*.wav")) if CORPUS.is_dir() else []
    if wavs:
        return wavs[0], f"first WAV in {CORPUS}"
    return None, "SYNTHETIC"


def make_track(src: Path | None, seconds: float, dest: Path) -> tuple[Path, str]:
    """The benchmark's 3-minute file: the first ``seconds`` of ``src``, or a synthetic tiling."""
    if src is None:
        return synthesize(seconds, dest), "PCM_16"
    meta = sf.info(str(src))
    if seconds <= 0 or meta.duration <= seconds:
        return src, meta.subtype
    return cut_audio(src, seconds, dest)


def synthesize(seconds: float, dest: Path) -> Path:
    """Stand-in music when no corpus exists: examples/groove.flac tiled, else chords + beats + noise."""
    sr = 44_100
    if EXAMPLE.exists():
        clip, sr = sf.read(str(EXAMPLE), dtype="float32", always_2d=True)
    else:
        rng = np.random.default_rng(0)
        t = np.arange(int(8 * sr)) / sr
        chords = sum(np.sin(2 * np.pi * f * t) for f in (110, 220, 261.6, 329.6)) * 0.05
        beats = np.exp(-(t % 0.5) / 0.05) * np.sin(2 * np.pi * 55 * t) * 0.4
        hats = rng.standard_normal(t.size) * np.exp(-(t % 0.25) / 0.01) * 0.05
        clip = np.stack([chords + beats + hats, chords * 0.9 + beats + hats], axis=1).astype(np.float32)
    reps = int(np.ceil(seconds * sr / len(clip)))
    sf.write(str(dest), np.tile(clip, (reps, 1))[: int(seconds * sr)], sr, subtype="PCM_16")
    return dest


def tile_to(src: Path, seconds: float, dest: Path) -> Path:
    """Repeat ``src`` back to back up to ``seconds``, block by block (low memory)."""
    meta = sf.info(str(src))
    left = int(seconds * meta.samplerate)
    with sf.SoundFile(str(dest), "w", meta.samplerate, meta.channels, "PCM_16") as out:
        while left > 0:
            with sf.SoundFile(str(src)) as f:
                for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                    out.write(block[:left])
                    left -= len(block[:left])
                    if left <= 0:
                        break
    return dest


def child_run(path: Path, run: bool) -> tuple[dict, float, float, float, float]:
    """analyze_file in a fresh interpreter: (its JSON, wall s, CPU s, ru_maxrss MB, VmHWM MB)."""
    code = CHILD.format(root=str(ROOT), path=str(path), run=run)
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, sys.executable, "-c", code],
                          capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    if report["code"]:
        raise RuntimeError(f"child failed with exit code {report['code']}")
    child = report["child"]
    return child, report["wall_s"], report["cpu_s"], report["maxrss_kb"] / 1024, child["vm_hwm_kb"] / 1024


def pyloudnorm_run(samples: np.ndarray, sr: int) -> float:
    import pyloudnorm

    return pyloudnorm.Meter(sr).integrated_loudness(samples.T)


def ebur128_run(samples: np.ndarray, sr: int) -> tuple[float, float, float]:
    import pyebur128 as eb

    mode = eb.MeasurementMode
    state = eb.R128State(samples.shape[0], sr, mode.MODE_I | mode.MODE_LRA | mode.MODE_TRUE_PEAK)
    step = 10 * sr  # feed 10 s blocks, as Mixbridge streams
    for i in range(0, samples.shape[1], step):
        block = np.ascontiguousarray(samples[:, i : i + step].T).reshape(-1)
        state.add_frames(block, block.size // samples.shape[0])
    tp = max(eb.get_true_peak(state, c) for c in range(samples.shape[0]))
    return eb.get_loudness_global(state), eb.get_loudness_range(state), 20 * np.log10(tp)


def machine_facts() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("numpy", "scipy", "soundfile", "pyloudnorm", "pyebur128"))
    return [
        f"- machine: {cpu}, {os.cpu_count()} CPUs ({usable} usable), {platform.system()} {platform.release()}",
        f"- python {platform.python_version()}; {versions}; libsndfile {sf.__libsndfile_version__}",
    ]


def fmt_db(x: float) -> str:
    return f"{x:.2f}" if np.isfinite(x) else "-inf"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--track", help="a real music file (default: first WAV in /work/corpus/wav)")
    ap.add_argument("--seconds", type=float, default=180.0, help="cut the track to this length (0: whole)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hour-s", type=float, default=3600.0, help="length of the long file (0: skip)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of analyze(audio)")
    args = ap.parse_args()

    src, origin = pick_track(args.track)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mixbridge-bench-") as tmp:
        track, subtype = make_track(src, args.seconds, Path(tmp) / "track.wav")
        meta = sf.info(str(track))
        if src is None:
            print("NOTE: no --track and no corpus: using a SYNTHETIC stand-in (examples/groove.flac tiled)")
        name = src.name if src else "synthetic (groove.flac tiled)"
        print(f"track: {name} ({origin}), {meta.duration:.1f} s used, {meta.samplerate} Hz, "
              f"{meta.channels} ch, {subtype}", flush=True)

        r = args.runs
        load_start = os.getloadavg()[0]
        t_load, c_load, _, audio = median_time(lambda: load(track), r)
        t_an, c_an, t_an_min, feat = median_time(lambda: analyze(audio), r)
        t_file, c_file, _, feat_f = median_time(lambda: analyze_file(track), r)
        samples = np.ascontiguousarray(audio.samples)
        t_pln, c_pln, _, pln = median_time(lambda: pyloudnorm_run(samples, audio.sample_rate), r)
        t_eb, c_eb, _, (eb_i, eb_lra, eb_tp) = median_time(lambda: ebur128_run(samples, audio.sample_rate), r)
        print("3-minute timings done", flush=True)

        goal_s = GOAL_3MIN_S * meta.duration / 180.0  # the goal scaled to the track's length
        goal = f"≤ {goal_s:.2f} s: " + ("yes" if t_an <= goal_s else "**no**")
        rows = [
            ("Mixbridge `load(path)` (decode only)", t_load, c_load, "", "", "", ""),
            ("Mixbridge `analyze(audio)` (in memory, all features)", t_an, c_an, fmt_db(feat.integrated_lufs),
             fmt_db(feat.loudness_range_lu), fmt_db(feat.true_peak_dbtp), goal),
            ("Mixbridge `analyze_file(path)` (streaming, incl. decode)", t_file, c_file, fmt_db(feat_f.integrated_lufs),
             fmt_db(feat_f.loudness_range_lu), fmt_db(feat_f.true_peak_dbtp), ""),
            ("pyloudnorm `Meter.integrated_loudness` (I only)", t_pln, c_pln, fmt_db(pln), "", "", ""),
            ("pyebur128 / libebur128 (I + LRA + true peak)", t_eb, c_eb, fmt_db(eb_i), fmt_db(eb_lra), fmt_db(eb_tp), ""),
        ]
        lines += [
            "# Analyzer benchmark", "",
            *machine_facts(),
            f"- track: `{name}` ({origin}); first {meta.duration:.1f} s, {meta.samplerate} Hz, "
            f"{meta.channels} ch, {subtype}" + (" — **SYNTHETIC, not a real recording**" if src is None else ""),
            f"- median of {r} runs; peers are timed on the already-decoded samples (no file I/O)", "",
            f"## {meta.duration / 60:g}-minute track, in-process", "",
            "| what | median wall s | median CPU s | x realtime | I (LUFS) | LRA (LU) | TP (dBTP) | goal (wall) |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for label, t, c, i, lra, tp, g in rows:
            lines.append(f"| {label} | {t:.3f} | {c:.3f} | {meta.duration / t:.0f} | {i} | {lra} | {tp} | {g} |")
        lines.append(f"\n(`analyze` fastest run: {t_an_min:.3f} s.)")

        if args.hour_s > 0:
            long_path = Path(tmp) / "hour.wav"
            t = time.perf_counter()
            tile_to(track, args.hour_s, long_path)
            gen_s = time.perf_counter() - t
            size_mb = long_path.stat().st_size / 1e6
            print(f"long file written ({size_mb:.0f} MB, {gen_s:.1f} s)", flush=True)
            _, base_wall, _, base_rss, base_hwm = child_run(long_path, run=False)
            res, wall, cpu, rss, hwm = child_run(long_path, run=True)
            ok = "yes" if rss / 1024 <= GOAL_HOUR_RSS_GB else "**no**"
            lines += [
                "", f"## {args.hour_s / 60:g}-minute file, fresh subprocess (`analyze_file`)", "",
                "| what | value | goal |", "|---|---:|---|",
                f"| file | {size_mb:.0f} MB, 16-bit WAV (track tiled; in page cache) | |",
                f"| `analyze_file` wall time (inside child) | {res['wall_s']:.1f} s "
                f"({args.hour_s / res['wall_s']:.0f}x realtime) | |",
                f"| child process wall time / CPU time (incl. interpreter + imports) | {wall:.1f} s / {cpu:.1f} s | |",
                f"| peak RSS of the child: `os.wait4` ru_maxrss (VmHWM) | {rss:.0f} MB ({hwm:.0f} MB) "
                f"| ≤ {GOAL_HOUR_RSS_GB} GB: {ok} |",
                f"| baseline: same child, imports only, no analysis | {base_rss:.0f} MB ({base_hwm:.0f} MB), "
                f"{base_wall:.1f} s | |",
                f"| measured | I {fmt_db(res['lufs'])} LUFS, LRA {fmt_db(res['lra'])} LU, "
                f"TP {fmt_db(res['tp'])} dBTP | |",
            ]
            long_path.unlink()

    lines += ["", f"Load average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs. This benchmark itself adds about 1; much more means other processes "
              "competed for the CPUs and the wall times are inflated (CPU times less so)."]
    publish(lines, RESULTS)

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(analyze, audio)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
        print(out.getvalue())


if __name__ == "__main__":
    main()
