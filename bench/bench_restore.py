"""Restoration out of family, with Matchering beside it: ``mixbridge.assistant.restoration``
(held-out real recordings degraded by ffmpeg, ZAM VST3 and sox processors, mastered with the
original as the reference; none / finalizer only / DSP / DSP + refinement / model / model +
refinement) plus Matchering 2.0.6 from its own venv (subprocess, GPLv3, never imported here).

    .venv/bin/python bench/bench_restore.py [--corpus /work/corpus/wav] [--tracks held-out|all]
        [--seconds 30] [--per-track 4] [--recordings a,b,c] [--matchering-python /work/bench-venvs/matchering/bin/python]

**Held out**: the recordings the shipped weights held out by file (recorded in their metadata,
``SettingsModel.held_out_recordings``; ``models/MODEL_CARD.md``); no clip of them was trained on. ``--tracks all`` adds the rest of the corpus, reported apart.
Prints markdown and saves it to bench/results/restore.md (and the rows as JSON beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import publish  # noqa: E402

from mixbridge.assistant import text  # noqa: E402
from mixbridge.assistant.restoration import available_families, restoration  # noqa: E402
from mixbridge.models.net import SettingsModel  # noqa: E402

CORPUS = Path("/work/corpus/wav")
RESULTS = ROOT / "bench" / "results" / "restore.md"
MATCHERING_PY = Path("/work/bench-venvs/matchering/bin/python")
MATCHERING_CODE = ("import sys, matchering as mg; "
                   "mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])")


def matchering(python: Path):
    def run(degraded: Path, original: Path, out: Path) -> None:
        subprocess.run([str(python), "-c", MATCHERING_CODE, str(degraded), str(original), str(out)], check=True,
                       capture_output=True)
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--tracks", choices=("held-out", "all"), default="held-out")
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length, from 30 s into each track")
    ap.add_argument("--recordings", help="comma-separated recording names to restore instead of the weights' "
                    "held-out ones (e.g. to compare two sets of weights on the same clips)")
    ap.add_argument("--per-track", type=int, default=4, help="degraded clips per track, each from another family")
    ap.add_argument("--matchering-python", type=Path, default=MATCHERING_PY)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    extra = {"matchering": matchering(args.matchering_python)} if args.matchering_python.exists() else {}
    names = sorted(p.stem for p in args.corpus.glob("*.wav"))
    held_out = (tuple(args.recordings.split(",")) if args.recordings
                else SettingsModel.load().held_out_recordings)  # as the shipped weights' training recorded
    held = [args.corpus / f"{n}.wav" for n in names if n in held_out]
    others = [args.corpus / f"{n}.wav" for n in names if n not in held_out] if args.tracks == "all" else []
    if not held + others:
        sys.exit(f"no corpus tracks in {args.corpus}")
    t0 = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {message}", flush=True)

    held_rows = restoration(held, args.per_track, args.seconds, extra, progress)
    other_rows = restoration(others, args.per_track, args.seconds, extra, progress) if others else []
    lines = ["# Restoration out of family: held-out real recordings, the original as the reference", "",
             f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`; clips of {args.seconds:g} s; "
             f"families on this machine: {', '.join(available_families())}"
             + ("" if extra else "; Matchering not found (see bench_master.py --help)"),
             f"- total {time.perf_counter() - t0:.0f} s on {os.cpu_count()} CPUs", "",
             "Errors against the original (lower is better). Dynamics error: mean of the crest, PLR and LRA "
             "errors. MR-STFT ratio: distance to the original / the degraded input's (1 = no better than "
             "untouched), measured as DeepAFx-ST measured it (mono at 24 kHz, log + linear magnitude over FFTs "
             "of 32 to 32768; it reports 0.43 on its own test set); `full band`: the earlier definition at the "
             "file's rate (spectral convergence + log magnitude with a -140 dB floor). `original→finalizer` is the floor of any "
             "method that keeps the -1 dBTP ceiling.", "",
             *text.restoration_table(held_rows, "### Held-out tracks (never trained on)")]
    if other_rows:
        lines += ["", *text.restoration_table(other_rows, "### Other corpus tracks (may have been trained on)")]
    methods = list(dict.fromkeys(m for r in held_rows + other_rows for m in r["methods"]))
    lines += ["", "## Per clip (tonal error dB / dynamics error / MR-STFT ratio)", "",
              "| track | family | " + " | ".join(methods) + " |", "|---|---|" + "---:|" * len(methods)]
    for r in held_rows + other_rows:
        cells = [f"{r['methods'][m]['tonal_db']:.2f} / {r['methods'][m]['dynamics']:.2f} / "
                 f"{r['methods'][m]['mrstft_ratio']:.2f}" if m in r["methods"] else "—" for m in methods]
        lines.append(f"| {r['track']} | {r['family']} | " + " | ".join(cells) + " |")
    lines += ["", "Degradations:", ""] + [f"- {r['track']} ({r['family']}): `{r['degradation']}`"
                                          for r in held_rows + other_rows]
    publish(lines, args.results)
    args.results.with_suffix(".json").write_text(json.dumps(held_rows + other_rows, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
