"""Stems on real music: split a track into band "stems" that sum to it, run ``mixbridge stems``.

    python bench/bench_stems.py [--track /work/corpus/wav/colo_music003.wav] [--seconds 180]
                                [--bit-depth 24] [--engine model] [--keep DIR]

The track's first ``--seconds`` are split with zero-phase Butterworth filters into ``low``
(< 150 Hz), ``high`` (> 2.5 kHz) and ``mid`` (the rest: track - low - high, so the three sum
to the track exactly) and written as 32-bit float WAVs; a mono ``low`` is also written (its
channel mean) so the mono centring path runs. ``mixbridge stems`` then masters them to
Spotify's spec, and this script prints the wall time, the report's residual figures and its
own re-measurement of the residual from the written files (sum of stems - mix master).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

LOW_HZ, HIGH_HZ = 150.0, 2500.0


def split(track: Path, seconds: float, folder: Path) -> list[str]:
    data, sr = sf.read(str(track), dtype="float64", always_2d=True, frames=int(seconds * sf.info(str(track)).samplerate))
    x = data.T
    low = sosfiltfilt(butter(4, LOW_HZ, "low", fs=sr, output="sos"), x, axis=1)
    high = sosfiltfilt(butter(4, HIGH_HZ, "high", fs=sr, output="sos"), x, axis=1)
    stems = {"low": low.mean(axis=0, keepdims=True), "low-side": low - low.mean(axis=0, keepdims=True),
             "mid": x - low - high, "high": high}
    for name, s in stems.items():
        sf.write(str(folder / f"{name}.wav"), s.T, sr, subtype="FLOAT")
    return list(stems)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--track", default="/work/corpus/wav/colo_music003.wav")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--bit-depth", default="24")
    ap.add_argument("--engine", default="model")
    ap.add_argument("--keep", help="keep the stems and outputs in this folder")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-stems-"))
    song, out = root / "song", root / "out"
    song.mkdir(parents=True, exist_ok=True)
    names = split(Path(args.track), args.seconds, song)
    mixbridge = Path(sys.executable).with_name("mixbridge")
    start = time.perf_counter()
    subprocess.run([str(mixbridge), "stems", str(song), "-o", str(out), "--target", "spotify", "--engine",
                    args.engine, "--bit-depth", args.bit_depth, "--overwrite"], check=True)
    wall = time.perf_counter() - start
    report = json.loads((out / "stems-report.json").read_text())
    master, _ = sf.read(str(out / "mix-master.wav"), dtype="float64", always_2d=True)
    total = sum(sf.read(str(out / f"{n}.wav"), dtype="float64", always_2d=True)[0] for n in names)
    diff = total - master
    rms = lambda v: math.sqrt(float(np.mean(np.square(v))))  # noqa: E731
    print(f"\ntrack {args.track} ({args.seconds:.0f} s), {len(names)} band stems, {args.bit_depth}: {wall:.1f} s wall")
    print("report residual:", json.dumps(report["residual"]))
    print(f"re-measured: sum - master = {20 * math.log10(rms(diff)):.1f} dBFS RMS, "
          f"{20 * math.log10(rms(diff) / rms(master)):.1f} dB relative, peak {20 * math.log10(np.abs(diff).max()):.1f} dBFS")
    print(f"files in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
