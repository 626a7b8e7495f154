"""The VST3 bridge on the ZAM plugins: scan time, match against the built-in render, render speed.

    python bench/bench_vst3.py [--tracks 6] [--skip-scan]

1. Scan: ``effects.vst3.scan`` of /usr/lib/vst3 with an empty cache (every bundle loaded in a
   child process, two at a time), then again from the cache.
2. Match: for each of ``--tracks`` corpus recordings, the model suggests a chain toward Spotify's
   profile on the track's 30 s excerpt; the chain's EQ and compressor (reverb and width off,
   compressor on with the suggested or default settings) are rendered through the ZAM map and
   through the built-in renderer; band-spectrum and LUFS differences as in
   ``assistant.bridge.render_match``.
3. Speed: a 3-minute stereo 44.1 kHz excerpt through the same chain, in 65536-frame blocks,
   built-in vs plugins (plugin set-up, i.e. loading, the EQ fit and the compressor
   calibration, timed separately).

Material: the development corpus in /work/corpus/wav (see bench/README.md); never committed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import publish  # noqa: E402
from mixbridge.analysis.analyze import analyze  # noqa: E402
from mixbridge.analysis.audio import Audio  # noqa: E402
from mixbridge.assistant.bridge import render_match  # noqa: E402
from mixbridge.assistant.decide import suggest_settings  # noqa: E402
from mixbridge.assistant.master import excerpt_of, resolve_target  # noqa: E402
from mixbridge.effects.plugins import PluginChainRenderer, load_map  # noqa: E402
from mixbridge.effects.render import ChainRenderer  # noqa: E402
from mixbridge.effects.schema import STAGES  # noqa: E402

CORPUS = Path("/work/corpus/wav")
BLOCK = 65536


def eq_and_compressor(settings):
    return settings.replace(enabled={s: settings.is_on(s) and s not in ("reverb", "stereo") for s in STAGES}
                            | {"compressor": True})


def render_all(renderer, x: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = np.concatenate([renderer.process(x[:, i:i + BLOCK]) for i in range(0, x.shape[1], BLOCK)], axis=1)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--skip-scan", action="store_true", help="skip the uncached scan (ZamVerb alone takes minutes)")
    args = parser.parse_args()
    lines = ["# VST3 bridge on the ZAM plugins", "",
             f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"load average {os.getloadavg()[0]:.2f}; command: python bench/bench_vst3.py "
             + " ".join(sys.argv[1:]), ""]

    if not args.skip_scan:
        from mixbridge.effects.vst3 import scan

        with tempfile.TemporaryDirectory() as cache:
            os.environ["MIXBRIDGE_CACHE"] = cache
            start = time.perf_counter()
            plugins, failures = scan(["/usr/lib/vst3"], system=False)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            scan(["/usr/lib/vst3"], system=False)
            warm = time.perf_counter() - start
        slowest = sorted(plugins, key=lambda p: -p.load_s)[:3]
        lines += ["## Scan of /usr/lib/vst3", "",
                  "| bundles | failed | first scan (empty cache, 2 at a time) | cached re-scan | slowest loads |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {len(plugins)} | {len(failures)} | {cold:.1f} s | {warm * 1000:.0f} ms | "
                  + ", ".join(f"{p.name} {p.load_s:.1f} s" for p in slowest) + " |", ""]
        print("\n".join(lines[-6:]), flush=True)

    plugin_map = load_map("zam")
    target = resolve_target("spotify")
    tracks = sorted(CORPUS.glob("*.wav"))[:: max(1, len(sorted(CORPUS.glob("*.wav"))) // args.tracks)][: args.tracks]
    lines += ["## Plugins (ZAM map) vs built-in render, EQ + compressor, 30 s excerpt of each track", "",
              "| track | EQ stages on | band diff mean / max (dB) | LUFS diff (LU) | compressor threshold calibration |",
              "| --- | --- | --- | --- | --- |"]
    means, lufs = [], []
    for track in tracks:
        excerpt = excerpt_of(track)
        settings = eq_and_compressor(suggest_settings(excerpt, analyze(excerpt), target, "model", refine=False))
        renderer = PluginChainRenderer(settings, excerpt.sample_rate, plugin_map, excerpt.samples)
        match = render_match(renderer, settings, excerpt)
        notes = [n for s in renderer.steps if s.insert for n in s.insert.notes if "calibrated" in n]
        eq_on = sum(settings.is_on(s) and settings[f"{s}.gain_db"] != 0 for s in
                    ("low_shelf", "peak1", "peak2", "peak3", "peak4", "high_shelf"))
        b = match["band_difference_db"]
        means.append(b["mean_abs"])
        lufs.append(abs(match["lufs_difference_lu"]))
        lines.append(f"| {track.stem} | {eq_on} | {b['mean_abs']:.2f} / {b['max_abs']:.2f} | "
                     f"{match['lufs_difference_lu']:+.3f} | {notes[0].split(' so ')[0] if notes else 'none'} |")
        print(lines[-1], flush=True)
    lines += [f"| **all {len(tracks)}** | | mean {np.mean(means):.2f} (worst {max(means):.2f}) | "
              f"mean abs {np.mean(lufs):.3f} (worst {max(lufs):.3f}) | |", "",
              "Goal: <= 0.5 dB band-spectrum difference and <= 0.2 LU for EQ + compressor.", ""]

    track = tracks[0]
    data, sr = sf.read(str(track), dtype="float32", frames=180 * 44100, always_2d=True)
    x = np.ascontiguousarray(np.tile(data.T, (1, -(-180 * sr // data.shape[0])))[:, : 180 * sr])
    excerpt = Audio(x[:, : 30 * sr], sr, str(track))
    settings = eq_and_compressor(suggest_settings(excerpt, analyze(excerpt), target, "model", refine=False))
    _, builtin_s = render_all(ChainRenderer(settings, sr), x)
    start = time.perf_counter()
    renderer = PluginChainRenderer(settings, sr, plugin_map, excerpt.samples)
    setup_s = time.perf_counter() - start
    _, plugin_s = render_all(renderer, x)
    lines += ["## Render speed, 3-minute stereo 44.1 kHz, EQ + compressor", "",
              "| renderer | render | set-up (load, EQ fit, calibration) |", "| --- | --- | --- |",
              f"| built-in (pedalboard) | {builtin_s:.2f} s | |",
              f"| ZAM VST3s (2 x ZamEQ2 dual-mono, ZamCompX2) | {plugin_s:.2f} s | {setup_s:.2f} s |"]
    publish(lines, Path(__file__).parent / "results" / "bench_vst3.md")


if __name__ == "__main__":
    main()
