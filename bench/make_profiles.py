"""Derive the shipped tonal profiles (``presets/profiles/*.toml``) from the development corpus.

    .venv/bin/python bench/make_profiles.py [--corpus /work/corpus] [--out presets/profiles]

Each profile is the normal range (10th-90th percentile, band edges smoothed over 3 bands,
never narrower than the minimum half-widths of ``assistant.targets``) and median of a group
of the corpus's real recordings; groups come from the manifest's genre guess or from a
measured character (the quarter of the corpus with the most or least energy in a region
relative to its 40 Hz-16 kHz mean). The derivation of each group is written into its file.
The audio is never committed: rebuild it with ``../shared/corpus/fetch_dev_corpus.sh``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mixbridge.analysis.analyze import analyze_file_cached  # noqa: E402
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_shape  # noqa: E402
from mixbridge.assistant.targets import profile_from_features, save_profile  # noqa: E402

EXCLUDED = {"pingus_rough_journey": "its channels are in opposite polarity (a mono fold-down cancels)"}
CORPUS_NOTE = ("Mixbridge dev corpus (../shared/corpus/fetch_dev_corpus.sh: real recordings from Debian "
               "bookworm music packages, licences in its manifest)")


def region_energy_db(shape: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    """Mean band level in a region, relative to the 40 Hz-16 kHz mean (band shape)."""
    centres = np.asarray(BAND_CENTRES_HZ)
    return float(np.mean(shape[(centres >= lo_hz) & (centres <= hi_hz)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--out", type=Path, default=ROOT / "presets" / "profiles")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with open(args.corpus / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "track" and r["id"] not in EXCLUDED]
    paths = [args.corpus / "wav" / f"{r['id']}.wav" for r in rows]
    with ProcessPoolExecutor(args.jobs) as pool:
        features = list(pool.map(analyze_file_cached, paths))
    by_id = {r["id"]: (r, f) for r, f in zip(rows, features)}
    shapes = {k: band_shape(f.mid_band_db) for k, (_, f) in by_id.items()}
    quarter = max(len(by_id) // 4, 6)

    def top(lo_hz: float, hi_hz: float, most: bool) -> list[str]:
        ranked = sorted(by_id, key=lambda k: region_energy_db(shapes[k], lo_hz, hi_hz), reverse=most)
        return ranked[:quarter]

    def genre(*words: str) -> list[str]:
        return [k for k, (r, _) in by_id.items() if any(w in r["genre_guess"].lower() for w in words)]

    excluded = "; ".join(f"{k} excluded: {why}" for k, why in EXCLUDED.items())
    groups = {
        "balanced": (list(by_id), "Broad range of finished music across genres (orchestral, metal, electronic, "
                                  "game scores, chiptune, jazz, piano)",
                     f"all {len(by_id)} tracks; {excluded}"),
        "bass-heavy": (top(40, 160, True), "Weighty low end: more 40-160 Hz relative to the mids",
                       f"the {quarter} tracks with the most 40-160 Hz energy relative to their 40 Hz-16 kHz mean"),
        "bright": (top(4000, 16000, True), "Forward top end: more 4-16 kHz relative to the mids",
                   f"the {quarter} tracks with the most 4-16 kHz energy relative to their 40 Hz-16 kHz mean"),
        "dark": (top(4000, 16000, False), "Soft, dark top end: less 4-16 kHz relative to the mids",
                 f"the {quarter} tracks with the least 4-16 kHz energy relative to their 40 Hz-16 kHz mean"),
        "orchestral": (genre("orchestral", "soundtrack", "score"),
                       "Acoustic / orchestral and film-style scores: natural dynamics, wide and ambient",
                       "the tracks whose genre guess says orchestral, soundtrack or score"),
        "electronic": (genre("electronic", "techno", "electro", "chiptune"),
                       "Electronic, techno, industrial and chiptune: dense, steady low end",
                       "the tracks whose genre guess says electronic, techno, electro or chiptune"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (ids, description, how) in groups.items():
        profile = profile_from_features(
            [by_id[k][1] for k in ids], name, description,
            derivation=(f"{how}, from the {CORPUS_NOTE}: median and 10th-90th percentile ranges "
                        f"(bench/make_profiles.py). Tracks: {', '.join(sorted(ids))}"))
        save_profile(profile, args.out / f"{name}.toml")
        bands = np.asarray(profile.band_high_db) - np.asarray(profile.band_low_db)
        print(f"{name:<11} {len(ids):>2} tracks; band range width median {np.median(bands):.1f} dB; "
              f"crest {profile.scalar_ranges['crest_factor_db']}; LRA {profile.scalar_ranges['loudness_range_lu']}; "
              f"width {profile.scalar_ranges['width']}; tail {profile.scalar_ranges['tail_level_db']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
