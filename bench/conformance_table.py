"""Print the EBU Tech 3341 / 3342 conformance results of our meter as a markdown table.

    .venv/bin/python bench/conformance_table.py

Signals come from tests/ebu_signals.py (synthesised from the standards' text); the pass/fail
verdicts at the standards' tolerances are asserted in tests/test_conformance.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from ebu_signals import CASES  # noqa: E402

from mixbridge.analysis.loudness import measure_loudness  # noqa: E402
from mixbridge.analysis.truepeak import true_peak_dbtp  # noqa: E402


def measured(case, sample_rate: int) -> str:
    samples, weights = case.make(sample_rate)
    if case.true_peak_dbtp is not None:
        return f"TP {true_peak_dbtp(samples, sample_rate):+.3f} dBTP"
    r = measure_loudness(samples, sample_rate, weights)
    parts = []
    if case.integrated_lufs is not None:
        parts.append(f"I {r.integrated_lufs:.3f}")
    if case.momentary_lufs is not None:
        m = r.momentary_lufs[r.series_times_s >= case.momentary_from_s]
        parts.append(f"M {m.min():.3f}…{m.max():.3f}")
    if case.short_term_lufs is not None:
        s = r.short_term_lufs[r.series_times_s >= case.short_term_from_s]
        parts.append(f"S {s.min():.3f}…{s.max():.3f}")
    if case.max_momentary_lufs is not None:
        parts.append(f"max M {r.max_momentary_lufs:.3f}")
    if case.max_short_term_lufs is not None:
        parts.append(f"max S {r.max_short_term_lufs:.3f}")
    if case.loudness_range_lu is not None:
        parts.append(f"LRA {r.loudness_range_lu:.2f}")
    return ", ".join(parts)


LABELS = {"integrated_lufs": "I", "momentary_lufs": "M", "short_term_lufs": "S", "max_momentary_lufs": "max M",
          "max_short_term_lufs": "max S", "true_peak_dbtp": "TP", "loudness_range_lu": "LRA"}


def expected(case) -> str:
    return ", ".join(f"{label} {getattr(case, key)}" for key, label in LABELS.items()
                     if getattr(case, key) is not None)


def main() -> None:
    print("| case | expected | 48 kHz | 44.1 kHz |\n| --- | --- | --- | --- |")
    for case in CASES:
        print(f"| {case.id} | {expected(case)} | {measured(case, 48000)} | {measured(case, 44100)} |")


if __name__ == "__main__":
    main()
