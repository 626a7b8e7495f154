"""Where a master's time goes: Mixbridge's stages next to Matchering's, in one run (issue 13).

    .venv/bin/python bench/bench_profile.py [--corpus /work/corpus/wav] [--pairs 3] [--seconds 180]

For each (input, reference) pair of ``bench_master.py`` (inputs cut to ``--seconds``, a new
reference each time: an empty analysis cache), each tool runs in its own fresh process:

- **Mixbridge**: ``master_file(IN, OUT, resolve_target(references=[REF]))`` as ``mixbridge master
  IN -o OUT --reference REF`` does (the input analysed beside the reference), its stages timed
  by the progress messages the library already gives (reference analysis, then the rest of the
  input's analysis, choosing settings, rendering, finalizing and writing with the output's
  analysis), after the import of the package;
- **Matchering 2.0.6** (its own venv, GPLv3, a subprocess): ``mg.process``, its stages timed by
  its own info messages (loading, matching levels, matching frequencies, correcting levels,
  finalizing, exporting).

Process start is the wall time of the whole process minus the stages. The floor, measured in
the same run: reading and writing the input as 24-bit WAV (soundfile). Also per input: the CPU
time of ``mixbridge master IN -o OUT --target spotify`` (no reference), against that floor. Prints a markdown
table per tool (median over pairs), each pair's wall times and ratio, and saves it to bench/results/profile.md.

Beside the timings, so that speed is never bought with accuracy: each tool's output measured by
our analyzer (integrated loudness against the reference's, true peak against Mixbridge's −1 dBTP
ceiling); the ``--target spotify`` master mastered again (the second pass's largest band-shape and
width change, the judgment's idempotence figures); and the EBU Tech 3341/3342 conformance tests
(``tests/test_conformance.py``), run after the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402
from bench_master import PAIRS, cut  # noqa: E402
from common import publish  # noqa: E402

from mixbridge.analysis.analyze import analyze_file  # noqa: E402
from mixbridge.assistant.judge import measured_change  # noqa: E402

CEILING_DBTP = -1.0  # Mixbridge's default ceiling, which the reference masters here are delivered under

CORPUS = Path("/work/corpus/wav")
RESULTS = ROOT / "bench" / "results" / "profile.md"
MATCHERING_PY = Path("/work/bench-venvs/matchering/bin/python")

# In a fresh process: import, then master with a timestamp at every progress message.
MIXBRIDGE_CODE = """
import json, sys, time
t0 = time.perf_counter()
from mixbridge.assistant.master import analysing_beside, analysis_threads, master_file, resolve_target
from mixbridge.assistant.options import MasterOptions
marks = [("import", time.perf_counter())]
def step(message, done=None, total=None):
    name = "analysing reference" if message.startswith("analysing reference") else message
    marks.append((name, time.perf_counter()))
from concurrent.futures import ThreadPoolExecutor
from mixbridge.assistant.cli import _page_original
html = sys.argv[4] if len(sys.argv) > 4 else None
# as cmd_master: the input analysed beside the reference; with --html, the page's import and the
# input's A/B excerpt in the background while the master runs
input_threads, reference_threads = analysis_threads(sys.argv[1], [sys.argv[2]])
with analysing_beside(sys.argv[1], input_threads) as input_features, ThreadPoolExecutor(1) as page_work:
    original = page_work.submit(_page_original, sys.argv[1], input_features) if html else None
    target = resolve_target(None, [sys.argv[2]], progress=step, analysis_threads=reference_threads)
    report = master_file(sys.argv[1], sys.argv[3], target, MasterOptions(overwrite=True), progress=step,
                         input_features=input_features, input_samples=input_features.samples)
if html:
    step("writing the HTML report")
    from mixbridge.assistant.html_report import master_page
    master_page(report, html, original=original.result())
extra = {"short_of_budget": any("dB of peak limiting" in w for w in report.warnings)}
"""

MATCHERING_CODE = """
import json, sys, time
t0 = time.perf_counter()
import matchering as mg
marks = [("import", time.perf_counter())]
mg.log(info_handler=lambda message: marks.append((str(message).strip().rstrip("."), time.perf_counter())))
mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])
"""


# Both tools end so: each stage's time is from its mark to the next.
STAGES_CODE = """
marks.append(("end", time.perf_counter()))
stages, previous = {}, ("import", t0)
for name, t in marks:
    stages[previous[0]] = stages.get(previous[0], 0.0) + t - previous[1]
    previous = (name, t)
print(json.dumps({"stages": stages, "extra": globals().get("extra", {})}))
"""


def run(python: Path, code: str, args: list[str], env: dict) -> tuple[dict, dict]:
    """The stage times of one run (and its wall time), and what the run reported beside them."""
    start = time.perf_counter()
    done = subprocess.run([str(python), "-c", code + STAGES_CODE, *args], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    stages = printed["stages"]
    stages.pop("end", None)
    stages["process start and exit"] = wall - sum(stages.values())
    stages["total (wall)"] = wall
    return stages, printed["extra"]


def floor_s(path: Path, tmp: Path) -> float:
    start = time.perf_counter()
    data, rate = sf.read(str(path), dtype="float32")
    sf.write(str(tmp / "floor.wav"), data, rate, subtype="PCM_24")
    return time.perf_counter() - start


def cpu_s(cmd: list[str], env: dict) -> float:
    """User + system CPU seconds of a child process (its threads included)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.read().decode().strip() if proc.stderr else "failed")
    return usage.ru_utime + usage.ru_stime


def table(tool: str, runs: list[dict]) -> list[str]:
    names = list(dict.fromkeys(k for r in runs for k in r))
    lines = [f"### {tool}", "", "| stage | median s | share of wall |", "| --- | ---: | ---: |"]
    total = statistics.median(r["total (wall)"] for r in runs)
    for name in names:
        value = statistics.median(r.get(name, 0.0) for r in runs)
        lines.append(f"| {name} | {value:.2f} | {100 * value / total:.0f} % |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--matchering-python", type=Path, default=MATCHERING_PY)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--html", action="store_true",
                    help="also write the HTML report page (its time is a stage of its own; its size is reported)")
    args = ap.parse_args()
    pairs = [p for p in PAIRS if (args.corpus / f"{p[0]}.wav").exists()][: args.pairs]
    tools = {"Mixbridge": (Path(sys.executable), MIXBRIDGE_CODE)}
    if args.matchering_python.exists():
        tools["Matchering 2.0.6"] = (args.matchering_python, MATCHERING_CODE)
    results: dict[str, list[dict]] = {t: [] for t in tools}
    floors = []
    spotify: list[tuple[float, float]] = []  # (CPU s of `master --target spotify`, the floor's s)
    # (LUFS - the reference's, dBTP, whether the master said the target needs more than its limiting budget)
    delivered: dict[str, list[tuple[float, float, bool]]] = {t: [] for t in tools}
    second_pass: list[dict[str, float]] = []  # the spotify master mastered again: measured_change
    pages: list[tuple[int, float, float, float]] = []  # (bytes, build s, the master's own s, wall without --html)
    with tempfile.TemporaryDirectory(prefix="mixbridge-bench-profile-") as tmp_s:
        tmp = Path(tmp_s)
        for inp_id, ref_id, _ in pairs:
            inp = cut(args.corpus / f"{inp_id}.wav", args.seconds, tmp / f"{inp_id}.wav")
            floors.append(floor_s(inp, tmp))
            (args.corpus / f"{ref_id}.wav").read_bytes()  # every run finds the reference in the OS cache
            mixbridge = Path(sys.executable).with_name("mixbridge")
            spotify.append((cpu_s([str(mixbridge), "master", str(inp), "-o", str(tmp / "spotify.wav"), "--target",
                                   "spotify", "-q", "--overwrite"], dict(os.environ)), floors[-1]))
            subprocess.run([str(mixbridge), "master", str(tmp / "spotify.wav"), "-o", str(tmp / "spotify2.wav"),
                            "--target", "spotify", "-q", "--overwrite"], check=True)
            second_pass.append(measured_change(analyze_file(tmp / "spotify.wav"), analyze_file(tmp / "spotify2.wav")))
            ref_lufs = analyze_file(args.corpus / f"{ref_id}.wav").integrated_lufs
            for tool, (python, code) in tools.items():
                env = dict(os.environ, MIXBRIDGE_CACHE=str(tmp / f"cache-{tool.split()[0]}-{inp_id}"))
                page = [str(tmp / "report.html")] if args.html and tool == "Mixbridge" else []
                stages, extra = run(python, code, [str(inp), str(args.corpus / f"{ref_id}.wav"), str(tmp / "out.wav"),
                                                   *page], env)
                results[tool].append(stages)
                out = analyze_file(tmp / "out.wav")
                delivered[tool].append((out.integrated_lufs - ref_lufs, out.true_peak_dbtp,
                                        bool(extra.get("short_of_budget"))))
                if page:
                    # the same master without --html, so the page's whole cost (its background work
                    # during the master included) is the difference of the two walls
                    plain, _ = run(python, code, [str(inp), str(args.corpus / f"{ref_id}.wav"), str(tmp / "out.wav")],
                                   dict(env, MIXBRIDGE_CACHE=str(tmp / f"cache-plain-{inp_id}")))
                    pages.append((Path(page[0]).stat().st_size, stages.get("writing the HTML report", 0.0),
                                  stages["total (wall)"] - stages.get("writing the HTML report", 0.0),
                                  plain["total (wall)"]))
                print(f"{inp_id} → {ref_id}: {tool} {stages['total (wall)']:.2f} s", flush=True)
    walls = {t: statistics.median(r["total (wall)"] for r in runs) for t, runs in results.items()}
    lines = ["# Where a master's time goes (`mixbridge master IN -o OUT --reference REF`)", "",
             f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; {len(pairs)} pairs, inputs cut to "
             f"{args.seconds:g} s, every reference new (empty cache); {os.cpu_count()} CPUs, load average "
             f"{os.getloadavg()[0]:.2f} at the end",
             f"- floor: reading and writing the input as 24-bit WAV, median {statistics.median(floors):.2f} s",
             "- " + "; ".join(f"{t}: {w:.2f} s" for t, w in walls.items())
             + (f"; Matchering / Mixbridge: {walls['Matchering 2.0.6'] / walls['Mixbridge']:.2f}×"
                if "Matchering 2.0.6" in walls else ""), ""]
    for tool, runs in results.items():
        lines += [*table(tool, runs), ""]
    if "Matchering 2.0.6" in results:
        per_pair = [m["total (wall)"] / b["total (wall)"] for b, m in zip(results["Mixbridge"], results["Matchering 2.0.6"])]
        lines += ["| pair | Mixbridge s | Matchering s | Matchering / Mixbridge |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {i} → {r} | {b['total (wall)']:.2f} | {m['total (wall)']:.2f} | {q:.2f}× |"
                  for (i, r, _), b, m, q in zip(pairs, results["Mixbridge"], results["Matchering 2.0.6"], per_pair)]
        lines += ["", f"Median of the per-pair ratios: {statistics.median(per_pair):.2f}× (goal ≥ 3×).", ""]
    lines += ["Beside the timings (speed is not bought with accuracy):", ""]
    for tool, figures in delivered.items():
        kept = sum((abs(d) <= 0.1 or short) and tp <= CEILING_DBTP for d, tp, short in figures)
        lines.append(f"- {tool} output: LUFS − the reference's "
                     + ", ".join(f"{d:+.2f}" + (" (beyond the 10 dB limiting budget, with its warning)" if short else "")
                                 for d, _, short in figures)
                     + "; true peak " + ", ".join(f"{tp:+.2f}" for _, tp, _ in figures)
                     + f" dBTP; delivered (within ±0.1 LU, or short with the warning, and under {CEILING_DBTP:g} dBTP): "
                     f"{kept} of {len(figures)}")
    lines.append("- `--target spotify` master mastered again (goal: ≤ 1 dB, ≤ 5 %): largest band-shape change "
                 + ", ".join(f"{c['band_max_db']:.2f}" for c in second_pass) + " dB; width change "
                 + ", ".join(f"{c['width_pct']:+.1f}" for c in second_pass) + " %")
    conformance = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  str(ROOT / "tests" / "test_conformance.py")], capture_output=True, text=True, cwd=ROOT)
    summary = conformance.stdout.strip().splitlines()[-1] if conformance.stdout.strip() else "did not run"
    lines += [f"- EBU Tech 3341/3342 conformance (`pytest tests/test_conformance.py`): {summary}", ""]
    ratios = [cpu / floor for cpu, floor in spotify]
    lines += [f"`mixbridge master IN -o OUT --target spotify` (no reference): CPU time (user + system, all threads) "
              f"median {statistics.median(c for c, _ in spotify):.2f} s = {statistics.median(ratios):.1f}× the WAV "
              f"read+write floor measured beside it (goal ≤ 8×; per input: "
              + ", ".join(f"{r:.1f}×" for r in ratios) + ").", ""]
    if pages:
        size = statistics.median(p[0] for p in pages) / 1e6
        share = statistics.median(100 * p[1] / p[2] for p in pages)
        added = statistics.median(100 * (p[1] + p[2] - p[3]) / p[3] for p in pages)
        lines += [f"HTML report page (`--html`): median {size:.2f} MB (goal ≤ 3 MB), built in a median "
                  f"{statistics.median(p[1] for p in pages):.2f} s = {share:.0f} % of the master's own time "
                  f"(goal ≤ 15 %); the master's stages above include it. The same master without `--html` "
                  f"(new reference, run right after): median wall {statistics.median(p[3] for p in pages):.2f} s; "
                  f"`--html` adds a median {added:.0f} % to the wall time (per pair: "
                  + ", ".join(f"{p[1] + p[2]:.2f} vs {p[3]:.2f} s" for p in pages) + ").", ""]
    publish(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
