"""Mastering benchmark: Mixbridge vs Matchering 2.0.6 vs ffmpeg loudnorm, on real music, in one run.

    python bench/bench_master.py [--pairs 8] [--corpus /work/corpus/wav] [--seconds 180] [--runs 3]
                                 [--engine E] [--live] [--results MD] [--keep DIR]

For each (input, reference) pair (inputs cut to their first ``--seconds``, written to a temp
dir; references used whole):

1. ``mixbridge master IN -o OUT --reference REF --bit-depth 24`` (target loudness = the
   reference's integrated loudness, ceiling -1 dBTP by default);
2. Matchering 2.0.6 ``mg.process(target=IN, reference=REF, results=[mg.pcm24(OUT)])``, run
   by the Python of a separate venv (``--matchering-python``; GPLv3, never installed into
   the project venv). Create it with::

       python3 -m venv /work/bench-venvs/matchering
       /work/bench-venvs/matchering/bin/pip install matchering==2.0.6

3. ffmpeg ``loudnorm`` two-pass (I = the reference's integrated loudness as Mixbridge
   measures it, TP -1, LRA 20, second pass ``linear=true`` with the measured values),
   24-bit WAV at the input's rate. ffmpeg does not read the reference: its time excludes
   measuring it.

Mixbridge runs from a copy of the project's packages taken at start (``--live``: the installed
console script), so library edits made during the run do not mix versions.

Every tool runs as a fresh process, one at a time, started by a tiny launcher so that the
``os.wait4`` rusage (peak RSS, CPU time) is the tool's own. Wall time includes process start.
The first pair is run ``--runs`` times per tool (median); the others once.

Every output is measured with Mixbridge's meter (``analyze_file``) and with libebur128
(pyebur128: integrated loudness, true peak). LUFS error: output minus the reference, each as
measured by the same meter. Tonal error: ``tonal_error_db`` of the output's mid bands against
the reference's profile (overall level removed).

Prints markdown tables and saves them to bench/results/master.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import BLOCK_FRAMES, cut_audio, publish  # noqa: E402

from mixbridge.analysis.analyze import analyze_file  # noqa: E402
from mixbridge.analysis.features import Features  # noqa: E402
from mixbridge.assistant.targets import profile_from_features, reference_lufs, tonal_error_db  # noqa: E402

CORPUS = Path("/work/corpus/wav")
RESULTS = ROOT / "bench" / "results" / "master.md"
MATCHERING_PY = Path("/work/bench-venvs/matchering/bin/python")
CEILING_DBTP = -1.0
LUFS_TOL = 0.1
TP_TOL = 0.005  # dB of slack on the ceiling for rounding of the printed value

# (input, reference, why): across genres and loudness gaps; the first --pairs are used.
PAIRS = [
    ("wes_casualties_of_war", "mars_orphanage", "quiet dynamic orchestral → very loud metal (+12 LU)"),
    ("tecno_theme", "nex_beast_of_insanity", "chiptune → electronic/industrial"),
    ("pingus_rough_journey", "fb_introzik", "quiet tracker module (peak −9.8 dBFS) → electronic pop"),
    ("mars_starfall", "wes_nunc_dimittis", "very loud metal → very dynamic orchestral (turn down)"),
    ("colo_music003", "nex_desert3", "quiet game score → loud electro-rock"),
    ("sing_awakening", "wes_siege_of_laurelmor", "dark ambient electronic → epic orchestral"),
    ("dras_track1", "wes_legends_of_the_north", "1996 adventure score → romantic orchestral"),
    ("nex_infight", "colo_constructive", "dynamic techno (LRA 18) → loud electronic"),
    ("fbxm_mainzik_2p", "mars_vermocsar", "tracker electronic pop → metal"),
    ("wes_dangerous_symphony", "sing_through_space", "dense symphonic → steady ambient"),
    ("tecno_mon_lapin", "tecno_fridge_in_space", "chiptune → loud chiptune"),
    ("dras_track30", "sing_advanced_simulacra", "adventure score → dynamic ambient"),
]

# --set sibling (issue 11's setup): two tracks of one album; the input's balance is changed on
# purpose first (a heavy low end and a dull top) with ffmpeg's shelving filters, a processor
# family no part of Mixbridge renders with, and its album sibling is the reference.
SIBLING_PAIRS = [
    ("oc_cavern", "oc_offshore", "same album, electronic"),
    ("xm_foxrun", "xm_batcave", "same album, tracker"),
    ("wes_nunc_dimittis", "wes_legends_of_the_north", "same album, orchestral"),
    ("nex_desert3", "nex_infight", "same album, electro-rock / techno"),
    ("mars_starfall", "mars_vermocsar", "same album, metal"),
    ("sing_awakening", "sing_through_space", "same album, ambient"),
    ("lc_city_blues", "lc_lincity", "same album, game jazz"),
    ("tecno_mon_lapin", "tecno_theme", "same album, chiptune"),
]
SIBLING_DEGRADATION = "bass=g=6:f=120,treble=g=-6:f=5000"  # ffmpeg -af: +6 dB low shelf, -6 dB high shelf

# Runs the command given in argv[3:] with stdout/stderr to the files argv[1], argv[2]; prints
# wall time and the child's rusage. ru_maxrss of a child starts from the RSS of the process
# that forked it (Linux keeps the high-water mark across exec), so the tools are started by
# this tiny launcher (python -S, a few MB), not by the benchmark process holding audio.
LAUNCHER = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    t = time.perf_counter()
    proc = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "wall_s": wall,
                  "maxrss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""

MATCHERING_CODE = """
import sys
import matchering as mg
mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])
"""


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: float
    stdout: str
    stderr: str


@dataclass
class Result:
    tool: str
    ok: bool
    wall_s: float = float("nan")
    cpu_s: float = float("nan")
    rss_mb: float = float("nan")
    runs: int = 0
    lufs_mb: float = float("nan")
    lufs_eb: float = float("nan")
    tp_mb: float = float("nan")
    tp_eb: float = float("nan")
    tp16: float = float("nan")
    err_mb: float = float("nan")
    err_eb: float = float("nan")
    tonal: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def within(self) -> bool:
        """Within ±0.1 LU of the target and at or below the ceiling, by both meters."""
        return (self.ok and abs(self.err_mb) <= LUFS_TOL and abs(self.err_eb) <= LUFS_TOL
                and self.tp_max <= CEILING_DBTP + TP_TOL)

    @property
    def tp_max(self) -> float:
        return max(self.tp_mb, self.tp_eb)


class ToolFailed(RuntimeError):
    pass


def launch(cmd: list[str], tmp: Path, env: dict | None = None) -> Run:
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(out), str(err), *map(str, cmd)],
                          capture_output=True, text=True, check=True, env=env)
    rep = json.loads(done.stdout)
    stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    if rep["code"]:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-5:]
        raise ToolFailed(f"exit code {rep['code']}: " + " / ".join(tail))
    return Run(rep["wall_s"], rep["cpu_s"], rep["maxrss_kb"] / 1024, stdout, stderr)


def cut(src: Path, seconds: float, dest: Path, ffmpeg: str | None = None, degrade: str = "") -> Path:
    """The first ``seconds`` of ``src``; with ``degrade``, through that ffmpeg filter chain (24-bit)."""
    if not degrade:
        return cut_audio(src, seconds, dest)[0]
    if not ffmpeg:
        raise SystemExit("--set sibling needs ffmpeg (apt-get install -y ffmpeg)")
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(src), *(["-t", f"{seconds:g}"] if seconds > 0 else []),
                    "-af", degrade, "-c:a", "pcm_s24le", str(dest)], check=True)
    return dest


def ebur128_measure(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) by libebur128, streaming the file."""
    import pyebur128 as eb

    meta = sf.info(str(path))
    mode = eb.MeasurementMode
    state = eb.R128State(meta.channels, meta.samplerate, mode.MODE_I | mode.MODE_TRUE_PEAK)
    with sf.SoundFile(str(path)) as f:
        for block in f.blocks(BLOCK_FRAMES, dtype="float64", always_2d=True):
            flat = np.ascontiguousarray(block).reshape(-1)
            state.add_frames(flat, len(block))
    tp = max(eb.get_true_peak(state, c) for c in range(meta.channels))
    return eb.get_loudness_global(state), 20 * np.log10(tp) if tp > 0 else float("-inf")


def tp_x16(path: Path, skip_below_db: float = 3.0) -> float:
    """Reference true peak: ×16 polyphase (scipy ``resample_poly``, Kaiser β 10), dBTP.

    Only chunks whose sample peak is within ``skip_below_db`` of the file's sample peak are
    oversampled (an inter-sample peak more than 3 dB above its neighbouring samples needs
    pathological signals), which keeps it to a second or two per file.
    """
    from scipy.signal import resample_poly

    x, _ = sf.read(str(path), dtype="float64", always_2d=True)
    chunk, pad = 1 << 15, 64
    n_chunks = -(-len(x) // chunk)
    peaks = np.array([np.abs(x[i * chunk : (i + 1) * chunk]).max() for i in range(n_chunks)])
    floor = peaks.max() * 10 ** (-skip_below_db / 20)
    best = 0.0
    for i in np.flatnonzero(peaks >= floor):
        lo, hi = i * chunk, min(len(x), (i + 1) * chunk)
        seg = x[max(0, lo - pad) : hi + pad]
        y = resample_poly(seg, 16, 1, axis=0, window=("kaiser", 10.0))
        a = (lo - max(0, lo - pad)) * 16
        best = max(best, float(np.abs(y[a : a + (hi - lo) * 16]).max()))
    return 20 * np.log10(best) if best > 0 else float("-inf")


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- the tools -------------------------------------------------------------------------------

PACKAGES = ("assistant", "effects", "models", "presets")
CLI_CODE = "import sys; from mixbridge.assistant.cli import main; sys.argv[0] = 'mixbridge'; sys.exit(main())"


def snapshot_code(dest: Path) -> str:
    """Copy the project's packages (code, presets, model weights; no audio) to ``dest``.

    The library is edited while benchmarks run; every Mixbridge run then uses this one
    frozen copy. Returns a short hash of the copied files.
    """
    h = hashlib.sha1()
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for f in sorted(dest.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(dest)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


def mixbridge_cmd(args, snapshot: Path | None) -> tuple[list[str], dict | None]:
    """How to run ``mixbridge``: the console script, or the snapshot (PYTHONPATH wins over the
    editable install's finder, which is appended to ``sys.meta_path``)."""
    if snapshot is None:
        return [str(args.mixbridge)], None
    return [sys.executable, "-c", CLI_CODE], {**os.environ, "PYTHONPATH": str(snapshot)}


def run_mixbridge(exe: tuple[list[str], dict | None], inp: Path, ref: Path, out: Path, tmp: Path,
                  extra: list[str]) -> tuple[Run, list[str]]:
    out.unlink(missing_ok=True)
    cmd, env = exe
    run = launch([*cmd, "master", inp, "-o", out, "--reference", ref, "--bit-depth", "24", "--quiet", *extra], tmp,
                 env)
    notes = [line.strip() for line in run.stdout.splitlines()
             if line.strip().startswith(("finalizer:", "warning:"))]
    notes += [f"stderr: {line.strip()}" for line in run.stderr.splitlines() if line.strip()]
    return run, notes


def run_matchering(py: Path, inp: Path, ref: Path, out: Path, tmp: Path) -> tuple[Run, list[str]]:
    out.unlink(missing_ok=True)
    run = launch([py, "-c", MATCHERING_CODE, inp, ref, out], tmp)
    notes = [f"stderr: {line.strip()}" for line in run.stderr.splitlines()
             if line.strip() and "warn" in line.lower()]
    return run, notes


def _last_json(text: str) -> dict:
    start = text.rfind("{")
    end = text.rfind("}")
    if start < 0 or end < start:
        raise ToolFailed("no loudnorm JSON in ffmpeg's output")
    return json.loads(text[start : end + 1])


def run_loudnorm(exe: str, inp: Path, out: Path, lufs: float, sr: int, tmp: Path) -> tuple[Run, list[str]]:
    out.unlink(missing_ok=True)
    base = f"loudnorm=I={lufs:.2f}:TP={CEILING_DBTP:g}:LRA=20"
    first = launch([exe, "-hide_banner", "-nostdin", "-i", inp, "-af", base + ":print_format=json",
                    "-f", "null", "-"], tmp)
    m = _last_json(first.stderr)
    second_af = (f"{base}:measured_I={m['input_i']}:measured_TP={m['input_tp']}:measured_LRA={m['input_lra']}"
                 f":measured_thresh={m['input_thresh']}:offset={m['target_offset']}:linear=true:print_format=json")
    second = launch([exe, "-hide_banner", "-nostdin", "-y", "-i", inp, "-af", second_af, "-ar", str(sr),
                     "-c:a", "pcm_s24le", out], tmp)
    m2 = _last_json(second.stderr)
    kind = m2.get("normalization_type", "?")
    notes = [f"normalization_type: {kind}" + (" (fell back to DYNAMIC mode)" if kind != "linear" else "")]
    run = Run(first.wall_s + second.wall_s, first.cpu_s + second.cpu_s, max(first.rss_mb, second.rss_mb),
              first.stdout + second.stdout, first.stderr + second.stderr)
    return run, notes


# ---- measuring -------------------------------------------------------------------------------

@dataclass
class RefInfo:
    features: Features
    lufs: float      # Mixbridge's meter (= the target given to every tool)
    lufs_eb: float   # libebur128
    tp_eb: float


def measure(res: Result, out: Path, ref: RefInfo, profile) -> None:
    f = analyze_file(out)
    res.lufs_mb, res.tp_mb = f.integrated_lufs, f.true_peak_dbtp
    res.lufs_eb, res.tp_eb = ebur128_measure(out)
    res.tp16 = tp_x16(out)
    res.err_mb = res.lufs_mb - ref.lufs
    res.err_eb = res.lufs_eb - ref.lufs_eb
    res.tonal = tonal_error_db(f.mid_band_db, profile, f.sample_rate)


def timed(tool: str, fn, runs: int, out: Path) -> tuple[Result, list[str]]:
    """Run ``fn`` ``runs`` times; median wall/CPU/RSS; notes of the last run; output hashes checked."""
    walls, cpus, rsss, hashes, notes = [], [], [], set(), []
    for _ in range(runs):
        run, notes = fn()
        walls.append(run.wall_s)
        cpus.append(run.cpu_s)
        rsss.append(run.rss_mb)
        if runs > 1:
            hashes.add(file_md5(out))
    res = Result(tool, True, statistics.median(walls), statistics.median(cpus), statistics.median(rsss), runs)
    if len(hashes) > 1:
        notes.append(f"NOT deterministic: {len(hashes)} different outputs in {runs} runs")
    return res, notes


# ---- report ----------------------------------------------------------------------------------

def fmt(x: float, nd: int = 2, sign: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "n/a" if x is None or np.isnan(x) else ("-inf" if x < 0 else "inf")
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def machine_facts(load_start: tuple[float, float, float], repo_state: str) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = next((int(line.split()[1]) / 1024 / 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return [
        f"- machine: {cpu}, {os.cpu_count()} CPUs ({usable} usable), {mem:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- load average at start: {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} (1/5/15 min)",
        f"- repo: {repo_state}",
        f"- python {platform.python_version()}; mixbridge {metadata.version('mixbridge')}, "
        f"numpy {metadata.version('numpy')}, pyebur128 {metadata.version('pyebur128')}",
    ]


def git_state() -> str:
    def git(*a):
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()

    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *PACKAGES],
                            capture_output=True, text=True).stdout
    dirty = [line[3:] + (" (untracked)" if line.startswith("??") else "") for line in status.splitlines() if line.strip()]
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        f", uncommitted changes in {', '.join(dirty)}" if dirty else ", packages clean")


def tool_versions(mpy: Path | None, ffmpeg: str | None) -> str:
    parts = []
    if mpy:
        v = subprocess.run([str(mpy), "-c", "import matchering, numpy, scipy; "
                            "print(matchering.__version__, numpy.__version__, scipy.__version__)"],
                           capture_output=True, text=True)
        if v.returncode == 0:
            mg_v, np_v, sp_v = v.stdout.split()
            parts.append(f"Matchering {mg_v} (own venv: numpy {np_v}, scipy {sp_v})")
    if ffmpeg:
        first = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[:1]
        parts.append(first[0] if first else "ffmpeg ?")
    return "- " + "; ".join(parts) if parts else "- (no peer tools found)"


def pair_table(idx: int, inp: str, ref: str, why: str, seconds: float, refinfo: RefInfo,
               before_tonal: float, in_lufs: float, results: list[Result]) -> list[str]:
    lines = [
        f"### Pair {idx}: `{inp}` → reference `{ref}`", "",
        f"{why}. Input: first {seconds:.0f} s, {fmt(in_lufs, 1)} LUFS. Target = reference loudness "
        f"{fmt(refinfo.lufs)} LUFS (Mixbridge meter; libebur128 {fmt(refinfo.lufs_eb)}), ceiling {CEILING_DBTP:g} dBTP. "
        f"Input tonal error vs reference (before): {fmt(before_tonal)} dB.", "",
        "| tool | wall s | CPU s | peak RSS MB | I out (MB / eb) | LUFS err (MB / eb) | TP dBTP (MB / eb / ×16) "
        "| within ±0.1 LU & ≤ ceiling | tonal err dB |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|---:|",
    ]
    for r in results:
        if not r.ok:
            lines.append(f"| {r.tool} | FAILED | | | | | | | |")
            continue
        over = (" **OVER**" if r.tp_max > CEILING_DBTP + TP_TOL
                else " (×16 over)" if r.tp16 > CEILING_DBTP + TP_TOL else "")
        runs = f" (median of {r.runs})" if r.runs > 1 else ""
        lines.append(
            f"| {r.tool} | {fmt(r.wall_s)}{runs} | {fmt(r.cpu_s)} | {fmt(r.rss_mb, 0)} | {fmt(r.lufs_mb)} / {fmt(r.lufs_eb)} "
            f"| {fmt(r.err_mb, sign=True)} / {fmt(r.err_eb, sign=True)} | {fmt(r.tp_mb)} / {fmt(r.tp_eb)} / {fmt(r.tp16)}{over} "
            f"| {'yes' if r.within else '**no**'} | {fmt(r.tonal)} |")
    notes = [(r.tool, n) for r in results for n in r.notes]
    if notes:
        lines += [""] + [f"- {tool}: {n}" for tool, n in notes]
    return lines + [""]


def summary_table(all_results: dict[str, list[Result]], before_tonals: list[float]) -> list[str]:
    lines = [
        "| tool | outputs | wall s median / max | CPU s median / max | peak RSS MB median / max "
        "| abs LUFS err median / max (MB / eb) | max TP dBTP (MB / eb / ×16) | within ±0.1 LU & ≤ ceiling "
        "| mean tonal err dB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tool, results in all_results.items():
        ok = [r for r in results if r.ok]
        if not ok:
            lines.append(f"| {tool} | 0 of {len(results)} | | | | | | | |")
            continue

        def mm(vals):
            return f"{fmt(statistics.median(vals))} / {fmt(max(vals))}"

        within = sum(r.within for r in ok)
        lines.append(
            f"| {tool} | {len(ok)} of {len(results)} | {mm([r.wall_s for r in ok])} | {mm([r.cpu_s for r in ok])} "
            f"| {fmt(statistics.median([r.rss_mb for r in ok]), 0)} / {fmt(max(r.rss_mb for r in ok), 0)} "
            f"| {fmt(statistics.median([abs(r.err_mb) for r in ok]))} / {fmt(max(abs(r.err_mb) for r in ok))} "
            f"({fmt(statistics.median([abs(r.err_eb) for r in ok]))} / {fmt(max(abs(r.err_eb) for r in ok))} eb) "
            f"| {fmt(max(r.tp_mb for r in ok))} / {fmt(max(r.tp_eb for r in ok))} / {fmt(max(r.tp16 for r in ok))} "
            f"| {within} of {len(results)} ({100 * within / len(results):.0f} %) "
            f"| {fmt(float(np.mean([r.tonal for r in ok])))} |")
    lines.append(f"| (inputs, before) | {len(before_tonals)} | | | | | | | {fmt(float(np.mean(before_tonals)))} |")
    return lines


def goals(all_results: dict[str, list[Result]]) -> list[str]:
    ours = all_results.get("Mixbridge", [])
    mg = all_results.get("Matchering", [])
    lines = ["| goal (from the issue) | measured | met? |", "|---|---|:-:|"]
    both = [(a, b) for a, b in zip(ours, mg) if a.ok and b.ok]
    if both:
        speed = [b.wall_s / a.wall_s for a, b in both]
        cpu = [b.cpu_s / a.cpu_s for a, b in both]
        rss = [a.rss_mb / b.rss_mb for a, b in both]
        lines.append(f"| ours ≥ 3× faster than Matchering (wall, incl. process start) | Matchering/ours wall time: "
                     f"median {statistics.median(speed):.2f}×, min {min(speed):.2f}× (CPU time: median "
                     f"{statistics.median(cpu):.2f}×) | {'yes' if min(speed) >= 3 else '**no**'} |")
        lines.append(f"| peak RSS ≤ ⅓ of Matchering's | ours/Matchering: median {statistics.median(rss):.2f}, "
                     f"max {max(rss):.2f} | {'yes' if max(rss) <= 1 / 3 else '**no**'} |")
        t_ours = float(np.mean([a.tonal for a, _ in both]))
        t_mg = float(np.mean([b.tonal for _, b in both]))
        worse = sum(a.tonal > b.tonal for a, b in both)
        lines.append(f"| tonal error no worse than Matchering's | mean {t_ours:.2f} dB vs {t_mg:.2f} dB; ours worse "
                     f"on {worse} of {len(both)} pairs | {'yes' if t_ours <= t_mg else '**no**'} |")
    if ours:
        within = sum(r.within for r in ours)
        miss = sum(r.ok and (abs(r.err_mb) > LUFS_TOL or abs(r.err_eb) > LUFS_TOL) for r in ours)
        over = sum(r.ok and r.tp_max > CEILING_DBTP + TP_TOL for r in ours)
        over16 = sum(r.ok and r.tp16 > CEILING_DBTP + TP_TOL for r in ours)
        lines.append(f"| 100 % of our outputs within ±0.1 LU and ≤ ceiling (both meters) | {within} of {len(ours)} "
                     f"({miss} LUFS misses, {over} over the ceiling by a 4× meter, {over16} by the ×16 reference) "
                     f"| {'yes' if within == len(ours) else '**no**'} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="folder of <id>.wav files (default %(default)s)")
    ap.add_argument("--set", choices=("genre", "sibling"), default="genre",
                    help="genre: a track mastered to another genre's track; sibling: a track with a heavy low end "
                         f"and a dull top (ffmpeg {SIBLING_DEGRADATION}) mastered to its album sibling")
    ap.add_argument("--pairs", type=int, default=8, help=f"how many (input, reference) pairs, at most {len(PAIRS)}")
    ap.add_argument("--seconds", type=float, default=180.0, help="cut inputs to this length (0: whole)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool on the first pair (median); others run once")
    ap.add_argument("--mixbridge", type=Path, default=Path(sys.executable).with_name("mixbridge"))
    ap.add_argument("--matchering-python", type=Path, default=MATCHERING_PY)
    ap.add_argument("--ffmpeg", default=shutil.which("ffmpeg"))
    ap.add_argument("--engine", help="pass --engine to mixbridge master (default: the tool's default)")
    ap.add_argument("--live", action="store_true",
                    help="run the installed console script against the live tree (default: a frozen copy of "
                         "the packages taken at start, so edits made during the run do not mix versions)")
    ap.add_argument("--results", type=Path,
                    help=f"markdown file to write (default {RESULTS}, or master-sibling.md beside it for --set sibling)")
    ap.add_argument("--keep", type=Path, help="copy every output here (outside the repo) for listening")
    args = ap.parse_args()

    if args.keep:
        if args.keep.resolve().is_relative_to(ROOT):
            sys.exit("--keep must be outside the repository (no corpus audio in the repo)")
        args.keep.mkdir(parents=True, exist_ok=True)
    extra = ["--engine", args.engine] if args.engine else []
    mpy = args.matchering_python if args.matchering_python.exists() else None
    if mpy is None:
        print(f"NOTE: {args.matchering_python} not found: Matchering skipped (see --help to create its venv)")
    if not args.ffmpeg:
        print("NOTE: ffmpeg not found: loudnorm skipped (apt-get install -y ffmpeg)")
    chosen = SIBLING_PAIRS if args.set == "sibling" else PAIRS
    degrade = SIBLING_DEGRADATION if args.set == "sibling" else ""
    pairs = [p for p in chosen if (args.corpus / f"{p[0]}.wav").exists() and (args.corpus / f"{p[1]}.wav").exists()]
    pairs = pairs[: args.pairs]
    if not pairs:
        sys.exit(f"no pairs found in {args.corpus}")

    load_start = os.getloadavg()
    t_start = time.perf_counter()
    tools = ["Mixbridge"] + (["Matchering"] if mpy else []) + (["ffmpeg loudnorm"] if args.ffmpeg else [])
    all_results: dict[str, list[Result]] = {t: [] for t in tools}
    before_tonals: list[float] = []
    pair_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mixbridge-bench-master-") as tmp_s:
        tmp = Path(tmp_s)
        repo_state = git_state()
        mb_cmd = mixbridge_cmd(args, None if args.live else tmp / "snapshot")
        if not args.live:
            code_hash = snapshot_code(tmp / "snapshot")
            repo_state += f"; Mixbridge run from a frozen copy of the packages taken at start (sha1 {code_hash})"
        else:
            repo_state += "; Mixbridge run live (console script; edits during the run take effect)"
        for idx, (inp_id, ref_id, why) in enumerate(pairs, 1):
            ref_path = args.corpus / f"{ref_id}.wav"
            inp = cut(args.corpus / f"{inp_id}.wav", args.seconds, tmp / f"{inp_id}.wav", args.ffmpeg, degrade)
            meta = sf.info(str(inp))
            ref_f = analyze_file(ref_path)
            ref_eb = ebur128_measure(ref_path)
            refinfo = RefInfo(ref_f, reference_lufs([ref_f]), *ref_eb)
            profile = profile_from_features([ref_f], name="ref")
            in_f = analyze_file(inp)
            before = tonal_error_db(in_f.mid_band_db, profile, in_f.sample_rate)
            before_tonals.append(before)
            runs = max(1, args.runs) if idx == 1 else 1
            print(f"[{time.perf_counter() - t_start:6.1f} s] pair {idx}/{len(pairs)}: {inp_id} → {ref_id} "
                  f"(target {refinfo.lufs:.2f} LUFS)", flush=True)

            jobs = {
                "Mixbridge": (tmp / "out_mixbridge.wav",
                              lambda o, inp=inp, ref=ref_path: run_mixbridge(mb_cmd, inp, ref, o, tmp, extra)),
                "Matchering": (tmp / "out_matchering.wav",
                               lambda o, inp=inp, ref=ref_path: run_matchering(mpy, inp, ref, o, tmp)),
                "ffmpeg loudnorm": (tmp / "out_loudnorm.wav",
                                    lambda o, inp=inp, lufs=refinfo.lufs, rate=meta.samplerate: (
                                        run_loudnorm(args.ffmpeg, inp, o, lufs, rate, tmp))),
            }
            results = []
            for tool in tools:
                out, fn = jobs[tool]
                try:
                    res, notes = timed(tool, lambda fn=fn, out=out: fn(out), runs, out)
                    measure(res, out, refinfo, profile)
                    res.notes += notes
                except (ToolFailed, RuntimeError, OSError, ValueError, KeyError) as exc:
                    res = Result(tool, False, notes=[f"FAILED: {exc}"])
                print(f"    {tool:16s} {fmt(res.wall_s):>6} s  {fmt(res.rss_mb, 0):>5} MB  "
                      f"I {fmt(res.lufs_mb)} ({fmt(res.err_mb, sign=True)})  TP {fmt(res.tp_max)}  "
                      f"tonal {fmt(res.tonal)}" + ("" if res.ok else f"  {res.notes[-1]}"), flush=True)
                for n in res.notes:
                    if "warning" in n or "stderr" in n or "DYNAMIC" in n or "NOT" in n:
                        print(f"      {n}", flush=True)
                results.append(res)
                all_results[tool].append(res)
                if args.keep and out.exists():
                    shutil.copy(out, args.keep / f"{idx:02d}_{inp_id}__{ref_id}__{tool.split()[0].lower()}.wav")
                out.unlink(missing_ok=True)
            pair_lines += pair_table(idx, inp_id, ref_id, why, meta.duration, refinfo, before,
                                     in_f.integrated_lufs, results)
            inp.unlink(missing_ok=True)

    total = time.perf_counter() - t_start
    load_end = os.getloadavg()
    lines = [
        "# Mastering benchmark: Mixbridge vs Matchering vs ffmpeg loudnorm", "",
        *machine_facts(load_start, repo_state),
        tool_versions(mpy, args.ffmpeg),
        f"- Mixbridge command: `mixbridge master IN -o OUT --reference REF --bit-depth 24{''.join(' ' + e for e in extra)}`",
        f"- {len(pairs)} pairs from `{args.corpus}` (set `{args.set}`"
        + (f": inputs through ffmpeg `{degrade}` first" if degrade else "") + "); "
        f"inputs cut to their first {args.seconds:g} s, references whole; "
        f"first pair run {max(1, args.runs)}× per tool (median), the others once; tools run one at a time",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; total {total:.0f} s; "
        f"load average at end {load_end[0]:.2f}",
        "- wall = whole command incl. process start (ffmpeg: both passes, no reference to read); CPU = user + sys "
        "of the process (steadier than wall when other processes load the machine); RSS = ru_maxrss "
        "(ffmpeg: max of the two passes)",
        "- MB = Mixbridge meter (`analyze_file`), eb = libebur128 (pyebur128); LUFS err = output minus reference, "
        "by the same meter; tonal err = `tonal_error_db(output mid bands, profile of the reference)`",
        f"- TP: MB and eb are BS.1770 4× oversampling meters; ×16 = scipy `resample_poly` ×16 (Kaiser β 10) as a "
        f"finer reference (informational). \"within\" = |LUFS err| ≤ {LUFS_TOL} and TP ≤ {CEILING_DBTP:g} dBTP "
        f"(+{TP_TOL} rounding slack) by BOTH 4× meters; **OVER** marks a 4× meter above the ceiling, (×16 over) the "
        "finer reference only",
        "- Matchering has no loudness/ceiling option: it matches RMS and limits to ~0 dBFS sample peak, so its "
        "LUFS/TP columns show what it does with the reference, not a miss of a target it was given", "",
        "## Goals", "",
        *goals(all_results), "",
        "## Summary", "",
        *summary_table(all_results, before_tonals), "",
        "## Per pair", "",
        *pair_lines,
    ]
    if load_start[0] > 1.5 or load_end[0] > 1.5:
        lines.insert(4, f"- **note**: load average {load_start[0]:.2f} at start on {os.cpu_count()} CPUs — other "
                        "processes were running; wall times are inflated (compare CPU times)")
    publish(lines, args.results or (RESULTS if args.set == "genre" else RESULTS.with_name("master-sibling.md")))


if __name__ == "__main__":
    main()
