"""``mixbridge`` command line: a thin layer that parses, calls the library and prints.

Exit codes: 0 ok, 1 internal error, 2 usage, 3 input not found, 4 unreadable audio,
5 audio outside the input policy, 6 output not writable, 7 invalid settings/target,
130 interrupted. With several files, the first failure's code is returned after all ran.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from typing import Sequence

from assistant.errors import MixbridgeError

log = logging.getLogger("mixbridge")


def _fmt(value: float, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def features_table(features) -> str:
    """A readable summary of a Features value."""
    f = features
    rows = [
        ("file", f.source),
        ("format", f"{f.sample_rate} Hz, {'stereo' if f.channels == 2 else 'mono'}, {f.duration_s:.2f} s"),
        ("integrated loudness", _fmt(f.integrated_lufs, "LUFS")),
        ("max momentary / short-term", f"{_fmt(f.max_momentary_lufs)} / {_fmt(f.max_short_term_lufs)} LUFS"),
        ("loudness range", _fmt(f.loudness_range_lu, "LU")),
        ("true peak / sample peak", f"{_fmt(f.true_peak_dbtp, 'dBTP', 2)} / {_fmt(f.sample_peak_dbfs, 'dBFS', 2)}"),
        ("crest / PLR / PSR", f"{_fmt(f.crest_factor_db)} / {_fmt(f.plr_db)} / {_fmt(f.psr_db)} dB"),
        ("clipped samples", str(f.clipped_samples)),
        ("DC offset", _fmt(f.dc_offset_dbfs, "dBFS")),
        ("spectral tilt / centroid", f"{_fmt(f.tilt_db_per_octave, 'dB/oct', 2)} / {_fmt(f.centroid_hz, 'Hz', 0)}"),
        ("stereo correlation / width", f"{f.correlation:.2f} / {f.width:.2f}"),
        ("transients", _fmt(f.transient_density_per_s, "per s", 2)),
        ("decay rate / tail level", f"{_fmt(f.decay_rate_db_per_s, 'dB/s', 0)} / {_fmt(f.tail_level_db, 'dB')}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k:<{width}}  {v}" for k, v in rows]
    lines += [f"  note: {n}" for n in f.notes]
    return "\n".join(lines)


def cmd_analyze(args: argparse.Namespace) -> int:
    from assistant.analyze import analyze_file

    status = 0
    results = []
    for path in args.files:
        try:
            features = analyze_file(path)
        except MixbridgeError as exc:
            print(f"mixbridge: error: {exc}", file=sys.stderr)
            status = status or exc.exit_code
            results.append({"source": path, "error": exc.message, "code": exc.code})
            continue
        if args.json:
            results.append(features.to_dict())
        else:
            print(features_table(features))
            print()
    if args.json:
        print(json.dumps(results if len(results) != 1 else results[0], indent=2, allow_nan=False))
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixbridge", description="Mixbridge production assistant")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="measure loudness, peaks, spectrum, stereo and dynamics")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="mixbridge: %(levelname)s: %(message)s")
    try:
        return args.run(args)
    except MixbridgeError as exc:
        print(f"mixbridge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mixbridge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
