"""Batch benchmark: files per minute of `mixbridge batch` with 1 and 2 jobs and on Ray, the
resume time, and `mixbridge master` on a 1-hour file.

    python bench/bench_batch.py [--tracks 20] [--seconds 180] [--corpus /work/corpus/wav]
                                [--cache DIR] [--long-seconds 3600] [--skip-long] [--skip-ray]
                                [--engine E] [--live] [--results MD]

Material: ``--tracks`` stereo 44.1 kHz tracks of ``--seconds`` each, cut from the real
recordings of the development corpus (track i from recording i, started ``i // n × 31 s`` in
when there are more tracks than recordings, looped from its start if it is shorter), and one
``--long-seconds`` file made of the recordings back to back. They are written once to
``--cache`` (outside the repository; no audio is ever committed) and reused. A missing corpus
is built with ``bash /work/shared/corpus/fetch_dev_corpus.sh /work/corpus``.

Runs, each a fresh process started by the tiny launcher of ``bench_master.py`` (wall time
includes process start; CPU time and peak RSS are the launched process tree's, as far as its
children are waited for), each into a fresh output folder:

1. ``mixbridge batch IN -o OUT --jobs 1``
2. ``mixbridge batch IN -o OUT --jobs 2``
3. ``mixbridge batch IN -o OUT --executor ray --jobs 2`` (a local Ray instance on 2 CPUs,
   started and stopped by the command: its overhead against run 2)
4. run 2's command again on its output folder, nothing changed: the resume time
5. ``mixbridge master LONG -o OUT`` on the 1-hour file: wall time and peak RSS (``--skip-long``
   leaves it out)
6. with a reference (the recording ``--reference-track``, whole, from the corpus): ``mixbridge batch
   IN -o OUT --reference REF --jobs 2`` beside **Matchering 2.0.6** mastering the same files to the
   same reference in a serial loop in one process of its own venv (``--matchering-python``; GPLv3,
   a subprocess, never imported here): files per minute side by side (``--skip-matchering``
   leaves both out)

Mixbridge runs from a frozen copy of the packages taken at start (``--live``: the installed
console script), as in ``bench_master.py``. Prints markdown tables and saves them to
bench/results/bench_batch.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_master import (  # noqa: E402
    MATCHERING_PY,
    ToolFailed,
    git_state,
    launch,
    machine_facts,
    mixbridge_cmd,
    snapshot_code,
)
from common import BLOCK_FRAMES, publish  # noqa: E402

from mixbridge.analysis.atomic import cache_root  # noqa: E402

CORPUS = Path("/work/corpus/wav")
FETCH_CORPUS = Path("/work/shared/corpus/fetch_dev_corpus.sh")
RESULTS = ROOT / "bench" / "results" / "bench_batch.md"
SAMPLE_RATE = 44_100
OFFSET_STEP_S = 31.0  # where a recording's second, third... track starts
SPEEDUP_GOAL = 1.8
RESUME_GOAL_S = 2.0


def ensure_corpus(corpus: Path) -> list[Path]:
    wavs = sorted(corpus.glob("*.wav")) if corpus.is_dir() else []
    if not wavs and corpus == CORPUS:
        print(f"building the development corpus: bash {FETCH_CORPUS} {corpus.parent}", flush=True)
        subprocess.run(["bash", str(FETCH_CORPUS), str(corpus.parent)], check=True)
        wavs = sorted(corpus.glob("*.wav"))
    if not wavs:
        sys.exit(f"no WAV recordings in {corpus}")
    return wavs


def write_looped(sources: list[Path], seconds: float, dest: Path, offset_s: float = 0.0) -> Path:
    """``seconds`` of stereo 44.1 kHz 24-bit audio: the sources back to back, cycling, the first
    one entered at ``offset_s``; block by block, so an hour never sits in memory."""
    left = int(seconds * SAMPLE_RATE)
    part = dest.with_name(dest.name + ".part")
    with sf.SoundFile(str(part), "w", SAMPLE_RATE, 2, "PCM_24", format="WAV") as out:
        for i in range(1 << 20):
            src = sources[i % len(sources)]
            meta = sf.info(str(src))
            if meta.samplerate != SAMPLE_RATE or meta.channels not in (1, 2):
                sys.exit(f"{src}: {meta.samplerate} Hz, {meta.channels} channels; the benchmark needs 44.1 kHz")
            start = int(offset_s * SAMPLE_RATE) % meta.frames if i == 0 else 0
            with sf.SoundFile(str(src)) as f:
                f.seek(start)
                for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                    block = np.repeat(block, 2, axis=1) if block.shape[1] == 1 else block
                    out.write(block[:left])
                    left -= min(left, len(block))
                    if not left:
                        break
            if not left:
                break
    part.replace(dest)
    return dest


def build_material(wavs: list[Path], args) -> tuple[Path, Path | None]:
    folder = args.cache / f"{args.tracks}x{args.seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(args.tracks):
        dest = folder / f"{i:03d}_{wavs[i % len(wavs)].stem}.wav"
        if not dest.exists():
            write_looped([wavs[i % len(wavs)]], args.seconds, dest, offset_s=(i // len(wavs)) * OFFSET_STEP_S)
    long_file = None
    if not args.skip_long:
        long_file = args.cache / f"long_{args.long_seconds:g}s.wav"
        if not long_file.exists():
            print(f"writing the {args.long_seconds:g} s file {long_file}", flush=True)
            write_looped(wavs, args.long_seconds, long_file)
    return folder, long_file


# One process, one import, every file in turn: the fairest serial loop Matchering's API allows.
MATCHERING_LOOP = """
import sys, pathlib, matchering as mg
inp, ref, out = map(pathlib.Path, sys.argv[1:4])
for f in sorted(inp.glob("*.wav")):
    mg.process(target=str(f), reference=str(ref), results=[mg.pcm24(str(out / f.name))])
"""


def run_matchering_loop(python: Path, in_dir: Path, ref: Path, out: Path, tmp: Path, n_files: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    label = "Matchering 2.0.6, serial loop in one process, `--reference`"
    try:
        run = launch([python, "-c", MATCHERING_LOOP, in_dir, ref, out], tmp)
    except ToolFailed as exc:
        return {"label": label, "ok": False, "note": str(exc), "load": load}
    done = len(list(out.glob("*.wav")))
    return {"label": label, "ok": True, "wall_s": run.wall_s, "cpu_s": run.cpu_s, "rss_mb": run.rss_mb,
            "done": done, "files": n_files, "file_s": run.wall_s, "summary": f"{done} mastered", "load": load,
            "jobs": 1}


def manifest_rows(out: Path) -> list[dict]:
    path = out / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_batch(label: str, exe, in_dir: Path, out: Path, extra: list[str], tmp: Path, n_files: int) -> dict:
    cmd, env = exe
    load = os.getloadavg()[0]
    try:
        run = launch([*cmd, "batch", in_dir, "-o", out, *extra], tmp, env)
    except ToolFailed as exc:
        return {"label": label, "ok": False, "note": str(exc), "load": load}
    rows = [r for r in manifest_rows(out) if r.get("status") == "done"]
    summary = next((line for line in run.stdout.splitlines() if " mastered, " in line), "")
    file_s = sum(r.get("seconds", 0.0) for r in rows)
    return {"label": label, "ok": True, "wall_s": run.wall_s, "cpu_s": run.cpu_s, "rss_mb": run.rss_mb,
            "done": len(rows), "files": n_files, "file_s": file_s, "summary": summary, "load": load,
            "stderr": [line for line in run.stderr.splitlines() if "warning" in line.lower()][-3:]}


def fmt(x: float | None, nd: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def table(results: list[dict], base: dict | None, pool2: dict | None) -> list[str]:
    lines = ["| run | files mastered | wall s | files / min | speed-up vs jobs 1 | CPU s | sum of per-file s "
             "| busy % of jobs × wall | peak RSS MB | load avg before |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r["ok"]:
            lines.append(f"| {r['label']} | FAILED: {r['note']} | | | | | | | | {fmt(r['load'], 2)} |")
            continue
        jobs = r.get("jobs", 1)
        per_min = 60 * r["done"] / r["wall_s"] if r["done"] else float("nan")
        speed = base["wall_s"] / r["wall_s"] if base and base["ok"] and r["done"] and r is not base else None
        busy = 100 * r["file_s"] / (jobs * r["wall_s"]) if r["done"] else None
        extra = ""
        if r.get("ray") and pool2 and pool2["ok"]:
            extra = f" ({r['wall_s'] - pool2['wall_s']:+.1f} s vs the local pool)"
        shown = r.get("shown", f"{r['done']} of {r['files']}")
        lines.append(f"| {r['label']} | {shown} | {fmt(r['wall_s'], 2)}{extra} | {fmt(per_min)} "
                     f"| {fmt(speed, 2) + '×' if speed else ''} | {fmt(r['cpu_s'])} | {fmt(r['file_s'])} "
                     f"| {fmt(busy, 0) if busy is not None else ''} | {fmt(r['rss_mb'], 0)} | {fmt(r['load'], 2)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="folder of WAV recordings (default %(default)s)")
    ap.add_argument("--tracks", type=int, default=20, help="how many tracks to master (default %(default)s)")
    ap.add_argument("--seconds", type=float, default=180.0, help="length of each track (default %(default)s)")
    ap.add_argument("--long-seconds", type=float, default=3600.0, help="length of the long file (default %(default)s)")
    ap.add_argument("--skip-long", action="store_true", help="leave out `mixbridge master` on the long file")
    ap.add_argument("--skip-ray", action="store_true", help="leave out the Ray run")
    ap.add_argument("--cache", type=Path, default=cache_root() / "bench-batch",
                    help="where the material is written once and reused (default %(default)s)")
    ap.add_argument("--engine", help="pass --engine to mixbridge (default: the tool's default)")
    ap.add_argument("--mixbridge", type=Path, default=Path(sys.executable).with_name("mixbridge"))
    ap.add_argument("--live", action="store_true",
                    help="run the installed console script against the live tree (default: a frozen copy of "
                         "the packages taken at start)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="markdown file to write (default %(default)s)")
    ap.add_argument("--matchering-python", type=Path, default=MATCHERING_PY,
                    help="python of Matchering's own venv (default %(default)s)")
    ap.add_argument("--reference-track", default="mars_orphanage",
                    help="corpus recording used as the reference of run 6 (default %(default)s)")
    ap.add_argument("--skip-matchering", action="store_true", help="leave out run 6")
    args = ap.parse_args()
    if args.cache.resolve().is_relative_to(ROOT):
        sys.exit("--cache must be outside the repository (no corpus audio in the repo)")

    wavs = ensure_corpus(args.corpus)
    in_dir, long_file = build_material(wavs, args)
    engine = ["--engine", args.engine] if args.engine else []
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mixbridge-bench-batch-") as tmp_s:
        tmp = Path(tmp_s)
        repo_state = git_state()
        exe = mixbridge_cmd(args, None if args.live else tmp / "snapshot")
        if args.live:
            repo_state += "; Mixbridge run live (console script)"
        else:
            repo_state += (f"; Mixbridge run from a frozen copy of the packages taken at start "
                           f"(sha1 {snapshot_code(tmp / 'snapshot')})")
        runs = [("jobs 1", ["--jobs", "1"], 1, False), ("jobs 2", ["--jobs", "2"], 2, False)]
        if not args.skip_ray:
            runs.append(("Ray, local instance on 2 CPUs (incl. its start-up)", ["--executor", "ray", "--jobs", "2"],
                         2, True))
        for label, flags, jobs, ray in runs:
            print(f"[{time.perf_counter() - t_start:6.1f} s] batch {label} ...", flush=True)
            out = tmp / f"out_{label.split(',')[0].replace(' ', '_')}"
            r = run_batch(label, exe, in_dir, out, [*flags, *engine], tmp, args.tracks)
            r.update(jobs=jobs, ray=ray, out=out)
            results.append(r)
            print(f"    {r.get('summary') or r.get('note')}; wall {fmt(r.get('wall_s'))} s", flush=True)
        pool2 = results[1]
        if pool2["ok"]:
            print(f"[{time.perf_counter() - t_start:6.1f} s] resume (jobs 2, nothing changed) ...", flush=True)
            r = run_batch("resume, nothing changed (jobs 2)", exe, in_dir, pool2["out"], ["--jobs", "2", *engine],
                          tmp, args.tracks)
            skipped = r.get("summary", "").split(" unchanged")[0].split(", ")[-1]
            r.update(jobs=2, done=0, file_s=0.0, shown=f"0 ({skipped} unchanged, skipped)")
            results.append(r)
            print(f"    {r.get('summary') or r.get('note')}; wall {fmt(r.get('wall_s'), 2)} s", flush=True)
        matching: list[dict] = []
        reference = args.corpus / f"{args.reference_track}.wav"
        if not args.skip_matchering and reference.exists():
            label = f"jobs 2, `--reference {reference.name}`"
            print(f"[{time.perf_counter() - t_start:6.1f} s] batch {label} ...", flush=True)
            r = run_batch(label, exe, in_dir, tmp / "out_reference", ["--jobs", "2", "--reference", reference, *engine],
                          tmp, args.tracks)
            r.update(jobs=2)
            matching.append(r)
            print(f"    {r.get('summary') or r.get('note')}; wall {fmt(r.get('wall_s'))} s", flush=True)
            if args.matchering_python.exists():
                print(f"[{time.perf_counter() - t_start:6.1f} s] Matchering, serial loop ...", flush=True)
                r = run_matchering_loop(args.matchering_python, in_dir, reference, tmp / "out_matchering", tmp,
                                        args.tracks)
                matching.append(r)
                print(f"    {r.get('summary') or r.get('note')}; wall {fmt(r.get('wall_s'))} s", flush=True)
        long_row = None
        if long_file:
            print(f"[{time.perf_counter() - t_start:6.1f} s] master the {args.long_seconds:g} s file ...", flush=True)
            cmd, env = exe
            try:
                run = launch([*cmd, "master", long_file, "-o", tmp / "long_master.wav", *engine], tmp, env)
                long_row = {"ok": True, "wall_s": run.wall_s, "cpu_s": run.cpu_s, "rss_mb": run.rss_mb}
            except ToolFailed as exc:
                long_row = {"ok": False, "note": str(exc)}
            print(f"    {long_row}", flush=True)

    total = time.perf_counter() - t_start
    base = results[0]
    resume = next((r for r in results if r["label"].startswith("resume")), None)
    lines = [
        "# Batch benchmark: `mixbridge batch` (jobs 1, jobs 2, Ray), resume, and a 1-hour `master`", "",
        *machine_facts(load_start, repo_state),
        f"- {args.tracks} tracks of {args.seconds:g} s, stereo 44.1 kHz 24-bit, cut from the recordings of "
        f"`{args.corpus}` (in `{in_dir}`)",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; total {total:.0f} s; load average at "
        f"end {os.getloadavg()[0]:.2f}",
        f"- each run: `mixbridge batch IN -o OUT <flags>{''.join(' ' + e for e in engine)}` in a fresh process "
        "and a fresh output folder; wall includes process start (and, for Ray, starting and stopping its local "
        "instance); CPU and peak RSS are those of the launched process and the children it waited for (Ray's "
        "workers are not among them); \"sum of per-file s\" adds the manifest's per-file times; \"busy %\" is "
        "that sum over jobs × wall (what parallelism lost to start-up, the parent's serial work and idle "
        "workers at the end)", "",
        *table(results, base, pool2), "",
    ]
    if matching:
        lines += [f"### With a reference: Mixbridge `--jobs 2` beside a serial Matchering loop (the same "
                  f"{args.tracks} files, reference `{args.reference_track}`)", "", *table(matching, None, None), ""]
        if len(matching) == 2 and all(r["ok"] and r["done"] for r in matching):
            ratio = (matching[0]["done"] / matching[0]["wall_s"]) / (matching[1]["done"] / matching[1]["wall_s"])
            lines += [f"Files per minute, Mixbridge / Matchering: {ratio:.2f}×; peak RSS "
                      f"{matching[0]['rss_mb']:.0f} MB (the largest single process) vs "
                      f"{matching[1]['rss_mb']:.0f} MB.", ""]
    if long_row:
        lines += [f"`mixbridge master` on the {args.long_seconds:g} s file ({long_file.name}): "
                  + (f"wall {long_row['wall_s']:.1f} s, CPU {long_row['cpu_s']:.1f} s, peak RSS "
                     f"{long_row['rss_mb']:.0f} MB" if long_row["ok"] else f"FAILED: {long_row['note']}"), ""]
    lines += ["## Goals", "", "| goal (from the issue) | measured | met? |", "|---|---|:-:|"]
    if base["ok"] and pool2["ok"]:
        speed = base["wall_s"] / pool2["wall_s"]
        lines.append(f"| ≥ {SPEEDUP_GOAL}× from jobs 1 to jobs 2 on 2 cores | {speed:.2f}× "
                     f"({args.tracks} tracks) | {'yes' if speed >= SPEEDUP_GOAL else '**no**'} |")
    if resume and resume["ok"]:
        lines.append(f"| resume with nothing changed < {RESUME_GOAL_S:g} s for 20 files, incl. process start "
                     f"| {resume['wall_s']:.2f} s for {args.tracks} files "
                     f"| {'yes' if resume['wall_s'] < RESUME_GOAL_S else '**no**'} |")
    if load_start[0] > 0.5:
        lines.insert(4, f"- **note**: load average {load_start[0]:.2f} at start on {os.cpu_count()} CPUs — other "
                        "processes were running; wall times and speed-ups are affected")
    publish(lines, args.results)


if __name__ == "__main__":
    main()
