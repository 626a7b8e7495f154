"""Mastering judgment on real recordings: pass 1, pass 2 (our master again), delivery, and,
with ``--restoration`` / ``--amounts``, reference matching of damaged mixes against the code
of an earlier commit and the linearity of ``--amount``.

    .venv/bin/python bench/bench_judgment.py [--corpus /work/corpus/wav] [--targets spotify apple-music]
        [--tracks N] [--seconds S] [--jobs 2] [--engine model] [--restoration] [--baseline-commit 3c243f3] [--amounts]

**Passes.** Every finished recording of the corpus is mastered with the default engine
(``master_file``, as ``mixbridge master X -o M --target T``), then our master again
(``M -> M2``, same target). Per pass, measured on the audio:

- largest band-shape change: max over the 1/3-octave bands 40 Hz-12.5 kHz of |output - input|,
  each band shape with its mean removed (dB);
- width change: side/mid amplitude ratio, output / input - 1 (%);
- crest change (dB) and output LUFS (pass 2: change against pass 1);
- delivery: output within +-0.1 LU of the target and true peak under the ceiling, wherever the
  input alone needs less limiting than ``--max-limiting-db`` (10 dB).

**Restoration** (``--restoration``): the first ``--restore-tracks`` tracks, cut to 60 s,
degraded by seeded random EQ + compression, mastered with ``--reference ORIGINAL`` by this
code and by the code of ``--baseline-commit`` (a git worktree, same venv); tonal error (mean
|band-shape difference| to the original) and crest/LRA errors, before and after.

**Amounts** (``--amounts``): the damaged tracks again at ``--amount`` 25/50/75/100 against the
reference; the measured band-shape change (mean |output - input|) relative to 100 %.

Prints markdown tables and saves them to bench/results/judgment.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import cut_audio, publish  # noqa: E402

from mixbridge.analysis.analyze import analyze_file  # noqa: E402
from mixbridge.analysis.spectrum import band_shape, shape_mask  # noqa: E402
from mixbridge.assistant.options import MasterOptions

CORPUS = Path("/work/corpus/wav")
RESULTS = ROOT / "bench" / "results" / "judgment.md"
LUFS_TOL = 0.1
MAX_LIMITING_DB = 10.0


def changes(a, b) -> dict:
    """What changed from features ``a`` to ``b`` (the library's own measure)."""
    from mixbridge.assistant.judge import measured_change

    return measured_change(a, b)


def one_track(args: tuple[str, str, str, str, float]) -> dict:
    """Worker: pass 1 and pass 2 of one track (cut to its first ``seconds``, 0: whole) to one target."""
    path, target_name, engine, tmp, seconds = args
    from mixbridge.analysis.analyze import as_heard_inverted
    from mixbridge.analysis.audio import DITHER_BLOCK_FRAMES, iter_blocks
    from mixbridge.assistant.judge import estimated_limiting_db
    from mixbridge.assistant.master import master_file, resolve_target

    target = resolve_target(target_name)
    stem = Path(path).stem
    m1, m2 = Path(tmp) / f"{stem}-{target_name}-1.wav", Path(tmp) / f"{stem}-{target_name}-2.wav"
    if seconds:
        path, _ = cut_audio(Path(path), seconds, Path(tmp) / f"{stem}-{target_name}-0.wav")
    r1 = master_file(path, m1, target, MasterOptions(engine=engine, overwrite=True))
    r2 = master_file(m1, m2, target, MasterOptions(engine=engine, overwrite=True))
    a, b, c = r1.input_features, r1.output_features, r2.output_features
    needs = estimated_limiting_db(a, target)
    # a polarity correction is a move of its own (counted apart): the rest of pass 1 is measured
    # against the input as heard with it, so its width and band changes are the chain's
    heard = as_heard_inverted(a, iter_blocks(path, DITHER_BLOCK_FRAMES)) if r1.settings.is_on("polarity") else a
    row = {"track": stem, "target": target_name, "input_lufs": a.integrated_lufs, "needs_limiting_db": needs,
           "pass1": changes(heard, b), "pass2": changes(b, c), "polarity1": r1.settings.is_on("polarity"),
           "polarity2": r2.settings.is_on("polarity"),
           "out_lufs": b.integrated_lufs, "out_tp": b.true_peak_dbtp, "out2_lufs": c.integrated_lufs,
           "out2_tp": c.true_peak_dbtp, "limiting1": r1.limiting_db, "limiting2": r2.limiting_db,
           "moves1": [m.text for m in r1.moves if m.action not in ("left alone", "compressor off", "no reverb",
                                                                    "width left at 100 %")],
           "moves2": [m.text for m in r2.moves if m.action not in ("left alone", "compressor off", "no reverb",
                                                                    "width left at 100 %")],
           "compressor2": r2.settings.is_on("compressor"), "reverb2": r2.settings.is_on("reverb"),
           "profile": target.profile.name, "target_lufs": target.lufs, "ceiling": target.ceiling_dbtp}
    for p in (m1, m2, Path(tmp) / f"{stem}-{target_name}-0.wav"):
        p.unlink(missing_ok=True)
    return row


def passes_table(rows: list[dict]) -> list[str]:
    lines = ["| track | target | in LUFS | pass 1: max band Δ dB | width Δ % | crest Δ dB | pass 2: max band Δ dB "
             "| width Δ % | crest Δ dB | LUFS Δ | out LUFS | out dBTP | moves (pass 1) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        p1, p2 = r["pass1"], r["pass2"]
        lines.append(f"| {r['track']} | {r['target']} | {r['input_lufs']:.1f} | {p1['band_max_db']:.2f} | "
                     f"{p1['width_pct']:+.1f} | {p1['crest_db']:+.2f} | {p2['band_max_db']:.2f} | "
                     f"{p2['width_pct']:+.1f} | {p2['crest_db']:+.2f} | {p2['lufs_change']:+.3f} | "
                     f"{r['out_lufs']:.2f} | {r['out_tp']:.2f} | {len(r['moves1'])} |")
    return lines


def passes_summary(rows: list[dict]) -> list[str]:
    def stat(key: str, part: str, fn=np.median, absolute=True) -> float:
        values = [abs(r[part][key]) if absolute else r[part][key] for r in rows]
        return float(fn(values))

    deliverable = [r for r in rows if r["needs_limiting_db"] < MAX_LIMITING_DB]
    delivered = [r for r in deliverable if abs(r["out_lufs"] - r["target_lufs"]) <= LUFS_TOL
                 and r["out_tp"] <= r["ceiling"] + 1e-3]
    g = [
        ("pass 1: median of largest band-shape change", stat("band_max_db", "pass1"), "≤ 3 dB"),
        ("pass 1: worst largest band-shape change", stat("band_max_db", "pass1", np.max), "≤ 6 dB"),
        ("pass 1: worst width change (abs, %)", stat("width_pct", "pass1", np.max), "≤ 20 %"),
        ("pass 2: worst largest band-shape change", stat("band_max_db", "pass2", np.max), "≤ 1 dB"),
        ("pass 2: worst width change (abs, %)", stat("width_pct", "pass2", np.max), "≤ 5 %"),
        ("pass 2: worst crest change (abs, dB)", stat("crest_db", "pass2", np.max), "≤ 0.5 dB"),
        ("pass 2: worst LUFS change (abs)", stat("lufs_change", "pass2", np.max), "≤ 0.1"),
    ]
    lines = ["| figure | value | goal |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {value:.2f} | {goal} |" for name, value, goal in g]
    lines.append(f"| delivery (±{LUFS_TOL} LU, under the ceiling) where the input needs < {MAX_LIMITING_DB:g} dB "
                 f"of limiting | {len(delivered)}/{len(deliverable)} | 100 % |")
    lines.append(f"| pass 2: compressor on / reverb on | {sum(r['compressor2'] for r in rows)} / "
                 f"{sum(r['reverb2'] for r in rows)} of {len(rows)} | 0 |")
    lines.append(f"| pass 2: tracks with any move | {sum(bool(r['moves2']) for r in rows)} of {len(rows)} | |")
    flipped = sorted({r["track"] for r in rows if r["polarity1"]})
    lines.append(f"| pass 1: a channel's polarity corrected (correlation ≤ -0.7; pass 1 then measured against "
                 f"the input as heard with it) | {sum(r['polarity1'] for r in rows)} of {len(rows)}"
                 + (f": {', '.join(flipped)}" if flipped else "") + " | only where one channel is inverted |")
    lines.append(f"| pass 2: polarity corrected again | {sum(r['polarity2'] for r in rows)} of {len(rows)} | 0 |")
    return lines


# ---- restoration and amounts ---------------------------------------------------------------------

def degrade(src: Path, dest: Path, seed: int) -> dict:
    """A damaged copy of ``src``: seeded random shelves, a mid bell and compression."""
    from mixbridge.analysis.audio import Audio, load, save
    from mixbridge.effects.render import render
    from mixbridge.effects.schema import ChainSettings

    rng = np.random.default_rng(seed)
    values = {"low_shelf.freq_hz": float(rng.uniform(80, 200)), "low_shelf.gain_db": float(rng.uniform(-6, 6)),
              "high_shelf.freq_hz": float(rng.uniform(3000, 9000)), "high_shelf.gain_db": float(rng.uniform(-7, 4)),
              "peak2.freq_hz": float(rng.uniform(300, 1500)), "peak2.gain_db": float(rng.uniform(-5, 5)),
              "peak2.q": 1.0, "compressor.threshold_db": float(rng.uniform(-26, -16)),
              "compressor.ratio": float(rng.uniform(2, 5)), "compressor.attack_ms": 5.0,
              "compressor.release_ms": 120.0}
    chain = ChainSettings.create(values, {"compressor": True})
    audio = load(src)
    out = render(audio.samples, audio.sample_rate, chain)
    out = out / max(1.0, float(np.max(np.abs(out))) / 0.9)
    save(Audio(out.astype(np.float32), audio.sample_rate), dest, "24")
    return values


def run_cli(code: Path | None, argv: list[str]) -> None:
    """``mixbridge ARGV`` from the code in the folder ``code`` (a worktree; None: this tree).

    The package imports as ``mixbridge`` from the repository root (pyproject's package-dir), so
    for a worktree a ``mixbridge`` symlink to it goes first on the path, ahead of the installed
    editable package; the worktree itself follows, for code of the older bare-package layout."""
    env = dict(os.environ)
    if code is not None:
        link = code.parent / f"{code.name}-import"
        link.mkdir(exist_ok=True)
        if not (link / "mixbridge").exists():
            (link / "mixbridge").symlink_to(code, target_is_directory=True)
        env["PYTHONPATH"] = os.pathsep.join([str(link), str(code)])
    check = "import mixbridge.assistant.cli as c, pathlib; assert pathlib.Path(c.__file__).resolve().is_relative_to(sys.argv.pop(1))"
    cmd = [sys.executable, "-c", f"import sys; {check}; from mixbridge.assistant.cli import main; "
           "sys.exit(main(sys.argv[1:]))", str((code or ROOT).resolve()), *argv]
    # run from the code's own folder: `python -c` puts the working directory first on sys.path
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code or ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def errors(out, ref) -> dict:
    mask = shape_mask(ref.sample_rate)
    tone = float(np.mean(np.abs(band_shape(out.mid_band_db, mask)[mask] - band_shape(ref.mid_band_db, mask)[mask])))
    return {"tone_db": tone, "crest_db": abs(out.crest_factor_db - ref.crest_factor_db),
            "lra_lu": abs(out.loudness_range_lu - ref.loudness_range_lu)}


def restoration(tracks: list[Path], tmp: Path, baseline: str | None, engine: str, amounts: bool) -> list[str]:
    worktree = None
    if baseline:
        worktree = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), baseline],
                       check=True, capture_output=True)
    rows, amount_rows = [], []
    try:
        for i, track in enumerate(tracks):
            original, _ = cut_audio(track, 60.0, tmp / f"orig-{i}.wav")
            damaged = tmp / f"damaged-{i}.wav"
            degrade(original, damaged, seed=1000 + i)
            ref_f, dmg_f = analyze_file(original), analyze_file(damaged)
            row = {"track": track.stem, "none": errors(dmg_f, ref_f)}
            for label, path in (("new", None), ("baseline", worktree)):
                if label == "baseline" and not worktree:
                    continue
                out = tmp / f"{label}-{i}.wav"
                run_cli(path, ["master", str(damaged), "-o", str(out), "--reference", str(original),
                               "--engine", engine, "--overwrite"])
                row[label] = errors(analyze_file(out), ref_f)
            rows.append(row)
            if amounts:
                full = None
                for amount in (100, 75, 50, 25):
                    out = tmp / f"amount-{i}-{amount}.wav"
                    run_cli(None, ["master", str(damaged), "-o", str(out), "--reference", str(original),
                                   "--engine", engine, "--amount", str(amount), "--overwrite"])
                    c = changes(dmg_f, analyze_file(out))
                    full = c if amount == 100 else full
                    amount_rows.append({"track": track.stem, "amount": amount,
                                        "band_mean_db": c["band_mean_db"], "crest_db": c["crest_db"],
                                        "ratio": c["band_mean_db"] / max(full["band_mean_db"], 1e-9)})
            print(f"restoration {i + 1}/{len(tracks)}: {track.stem}", flush=True)
    finally:
        if worktree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)
    methods = ["none", "new"] + (["baseline"] if baseline else [])
    lines = ["", f"## Restoration: damaged mixes mastered with --reference ORIGINAL (engine {engine})", "",
             "| track | " + " | ".join(f"{m} tone / crest / LRA" for m in methods) + " |",
             "| --- |" + " --- |" * len(methods)]
    for r in rows:
        lines.append(f"| {r['track']} | " + " | ".join(
            f"{r[m]['tone_db']:.2f} / {r[m]['crest_db']:.2f} / {r[m]['lra_lu']:.2f}" for m in methods) + " |")
    lines.append("| **mean** | " + " | ".join(
        " / ".join(f"{statistics.mean(r[m][k] for r in rows):.2f}" for k in ("tone_db", "crest_db", "lra_lu"))
        for m in methods) + " |")
    if baseline:
        lines.append(f"\nbaseline = the code of commit {baseline} (same venv, run from a git worktree).")
    if amount_rows:
        lines += ["", "## Amount linearity (same damaged mixes, --reference ORIGINAL)", "",
                  "| amount % | mean band-shape change dB (mean over tracks) | relative to 100 % (mean) | ideal |",
                  "| ---: | ---: | ---: | ---: |"]
        for amount in (25, 50, 75, 100):
            sel = [r for r in amount_rows if r["amount"] == amount]
            lines.append(f"| {amount} | {statistics.mean(r['band_mean_db'] for r in sel):.2f} | "
                         f"{statistics.mean(r['ratio'] for r in sel):.2f} | {amount / 100:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--targets", nargs="+", default=["spotify", "apple-music"])
    parser.add_argument("--tracks", type=int, default=0, help="only the first N tracks (0: all)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.0, help="cut each track to its first S seconds (0: whole)")
    parser.add_argument("--engine", default="model")
    parser.add_argument("--skip-passes", action="store_true")
    parser.add_argument("--restoration", action="store_true")
    parser.add_argument("--restore-tracks", type=int, default=6)
    parser.add_argument("--baseline-commit", default="3c243f3", help="the code to compare with (default: before the "
                                                                       "match EQ)")
    parser.add_argument("--amounts", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    tracks = sorted(args.corpus.glob("*.wav"))
    if args.tracks:
        tracks = tracks[: args.tracks]
    started = time.perf_counter()
    lines = ["# Mastering judgment benchmark", "",
             f"{platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
             f"`{' '.join(sys.argv)}`; {len(tracks)} tracks from {args.corpus}", ""]
    with tempfile.TemporaryDirectory(prefix="bench-judgment-") as tmp:
        if not args.skip_passes:
            jobs = [(str(t), target, args.engine, tmp, args.seconds) for target in args.targets for t in tracks]
            with ProcessPoolExecutor(args.jobs) as pool:
                rows = []
                for row in pool.map(one_track, jobs):
                    rows.append(row)
                    print(f"{len(rows)}/{len(jobs)} {row['track']} {row['target']}: pass 1 max band "
                          f"{row['pass1']['band_max_db']:.2f} dB, width {row['pass1']['width_pct']:+.1f} %; pass 2 "
                          f"{row['pass2']['band_max_db']:.2f} dB, {row['pass2']['width_pct']:+.1f} %", flush=True)
            lines += ["## Summary", "", *passes_summary(rows), "", "## Per track", "", *passes_table(rows), "",
                      "## Moves of pass 2 (our own master again)", ""]
            lines += [f"- {r['track']} ({r['target']}): " + "; ".join(r["moves2"]) for r in rows if r["moves2"]] or [
                "none"]
            (args.results.with_suffix(".json")).parent.mkdir(parents=True, exist_ok=True)
            args.results.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
        if args.restoration or args.amounts:
            picks = [t for t in tracks if t.stem not in ("pingus_rough_journey",)][:: max(1, len(tracks) // 7)]
            lines += restoration(picks[: args.restore_tracks], Path(tmp), args.baseline_commit if args.restoration
                                 else None, args.engine, args.amounts)
    lines.append(f"\n{time.perf_counter() - started:.0f} s in all.")
    publish(lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
