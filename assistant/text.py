"""Everything the ``mixbridge`` command prints, as lines of text: one place for the output
formatting, so the CLI only parses, calls the library and prints what this module returns.
The report JSON (``--report``) is the records' own ``to_dict``; these lines render the same
records (the judgment's evidence lines are :attr:`mixbridge.assistant.evidence.Move.text`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from mixbridge.effects.schema import ChainSettings

NO_CHANGES = "(no changes: the mix is within the profile's normal ranges; the finalizer alone sets loudness and peaks)"


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    """``value`` with ``digits`` decimals and its unit; a missing or infinite value is a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def features_table(features) -> str:
    """A readable summary of a Features value (plain aligned text; see :func:`features_rows`)."""
    rows = features_rows(features)
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k:<{width}}  {v}" for k, v in rows]
    lines += [f"  note: {n}" for n in features.notes]
    return "\n".join(lines)


def features_rows(features) -> list[tuple[str, str]]:
    """(measure, value) rows of a Features value, for a plain or a rich table."""
    f = features
    return [
        ("file", f.source),
        ("format", f"{f.sample_rate} Hz, {'stereo' if f.channels == 2 else 'mono'}, {f.duration_s:.2f} s"),
        ("integrated loudness", fmt(f.integrated_lufs, "LUFS")),
        ("max momentary / short-term", f"{fmt(f.max_momentary_lufs)} / {fmt(f.max_short_term_lufs)} LUFS"),
        ("loudness range", fmt(f.loudness_range_lu, "LU")),
        ("true peak / sample peak", f"{fmt(f.true_peak_dbtp, 'dBTP', 2)} / {fmt(f.sample_peak_dbfs, 'dBFS', 2)}"),
        ("crest / PLR / PSR", f"{fmt(f.crest_factor_db)} / {fmt(f.plr_db)} / {fmt(f.psr_db)} dB"),
        ("clipped samples", str(f.clipped_samples)),
        ("DC offset", fmt(f.dc_offset_dbfs, "dBFS")),
        ("spectral tilt / centroid", f"{fmt(f.tilt_db_per_octave, 'dB/oct', 2)} / {fmt(f.centroid_hz, 'Hz', 0)}"),
        ("stereo correlation / width", f"{f.correlation:.2f} / {f.width:.2f}"),
        ("transients", fmt(f.transient_density_per_s, "per s", 2)),
        ("decay rate / tail level", f"{fmt(f.decay_rate_db_per_s, 'dB/s', 0)} / {fmt(f.tail_level_db, 'dB')}"),
    ]


def before_after(label: str, before: float, after: float, unit: str, digits: int = 1) -> str:
    return f"  {label:<22} {fmt(before, '', digits):>9} → {fmt(after, '', digits):>9} {unit}"


def target_line(target, engine: str, lead: str = "target", extra: str = "") -> str:
    return (f"  {lead}: {target.name} ({target.lufs:.1f} LUFS, ceiling {target.ceiling_dbtp:.1f} dBTP, "
            f"profile {target.profile.name}), engine {engine}{extra}")


def judgment_lines(target, moves: Sequence, notes: Sequence[str] = ()) -> list[str]:
    """The evidence behind the settings: the profile choice, then one line per stage or measurement."""
    lines = [f"  profile {target.profile_choice}"] if target.profile_choice else []
    if moves:
        lines.append(f"  judgment against the {target.profile.name} profile's normal ranges:")
        lines += [f"    - {move.text}" for move in moves]
        lines += [f"    note: {note}" for note in notes]
    return lines


def settings_lines(settings: ChainSettings, heading: str) -> list[str]:
    # lazy: the schema imports numpy (80 ms), which `mixbridge --help` does not need
    from mixbridge.effects.schema import describe

    return [f"  {heading}:"] + [f"    {line}" for line in describe(settings) or [NO_CHANGES]]


def plugins_lines(chain: Sequence[str], match: Mapping) -> list[str]:
    bands = match["band_difference_db"]
    return ["  on the plugins:", *(f"    {line}" for line in chain),
            f"  plugins vs built-in render ({match['excerpt_s']:.0f} s excerpt): band spectrum "
            f"{bands['mean_abs']:.2f} dB mean / {bands['max_abs']:.2f} dB max, "
            f"loudness {match['lufs_difference_lu']:+.2f} LU"]


def warning_lines(warnings: Sequence[str]) -> list[str]:
    return [f"  warning: {w}" for w in warnings]


def master_lines(report) -> list[str]:
    """``mixbridge master``'s summary of a MasterReport."""
    b, a, target = report.input_features, report.output_features, report.target
    lines = [f"{report.input_path} → {report.output_path}", target_line(target, report.engine),
             before_after("integrated loudness", b.integrated_lufs, a.integrated_lufs, "LUFS"),
             before_after("true peak", b.true_peak_dbtp, a.true_peak_dbtp, "dBTP", 2),
             before_after("loudness range", b.loudness_range_lu, a.loudness_range_lu, "LU"),
             before_after("crest factor", b.crest_factor_db, a.crest_factor_db, "dB"),
             before_after("tonal error vs target", report.tonal_error_before_db, report.tonal_error_after_db, "dB"),
             f"  finalizer: gain {report.gain_db:+.2f} dB, peak limiting {report.limiting_db:.1f} dB",
             *judgment_lines(target, report.moves, report.notes), *settings_lines(report.settings, "settings")]
    if report.plugins:
        lines += plugins_lines(report.plugins["chain"], report.plugins["match"])
    return lines + warning_lines(report.warnings)


def suggestion_lines(source: str, suggestion, engine: str) -> list[str]:
    """``mixbridge suggest``'s summary of a Suggestion."""
    f, target, decision = suggestion.features, suggestion.target, suggestion.decision
    return [f"{source}: {fmt(f.integrated_lufs, 'LUFS')}, true peak {fmt(f.true_peak_dbtp, 'dBTP', 2)}, "
            f"LRA {fmt(f.loudness_range_lu, 'LU')}", target_line(target, engine, "toward"),
            *judgment_lines(target, decision.moves, decision.notes),
            *settings_lines(suggestion.settings, "suggested chain, in signal order"),
            "  then: gain to the loudness target and a true-peak limiter at the ceiling"]


def stems_lines(report, report_name: str) -> list[str]:
    """``mixbridge stems``' summary of a StemsReport."""
    b, a, r, target = report.mix_input, report.mix_output, report.residual, report.target
    lines = [f"{report.input_dir} ({len(report.stems)} stems) → {report.output_dir}",
             target_line(target, report.engine, extra="; one bus decision for all stems"),
             before_after("mix loudness", b.integrated_lufs, a.integrated_lufs, "LUFS"),
             before_after("mix true peak", b.true_peak_dbtp, a.true_peak_dbtp, "dBTP", 2),
             f"  finalizer: gain {report.gain_db:+.2f} dB, peak limiting {report.limiting_db:.1f} dB "
             f"(the same gain curve on every stem)",
             *judgment_lines(target, report.moves, report.notes), *settings_lines(report.settings, "bus settings"),
             "  stems (loudness before → after, LUFS):"]
    for s in report.stems:
        lines.append(f"    {s.name:<14} {fmt(s.input_lufs):>7} → {fmt(s.output_lufs):>7}  ({fmt(s.change_db, 'dB')})")
        lines += [f"      - {line}" for line in s.suggestions]
    lines.append(f"  sum of stems − mix master: {fmt(r.rms_below_master_db, 'dB', 1)} below the master (RMS), "
                 f"residual peak {fmt(r.peak_dbfs, 'dBFS', 1)} ({report.bit_depth}); the mix rendered alone "
                 f"differs by {fmt(report.direct_deviation_db, 'dB', 1)}")
    return lines + warning_lines(report.warnings) + [f"  report: {Path(report.output_dir) / report_name}"]


def do_no_harm_table(rows: Mapping[str, Sequence[dict]]) -> list[str]:
    """The do-no-harm and idempotence figures (:func:`mixbridge.assistant.evaluation.do_no_harm`) as a table."""
    clips = len(next(iter(rows.values()), []))
    lines = [f"do no harm and idempotence ({clips} held-out clips as finished masters, spotify, profile auto):",
             "| engine | pass 1: median / worst max band Δ dB | worst width Δ % | pass 2: worst max band Δ dB "
             "| worst width Δ % | worst crest Δ dB | worst LUFS Δ | clips pass 2 moves |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def worst(out: Sequence[dict], part: str, key: str) -> float:
        return max(abs(r[part][key]) for r in out)

    for engine, out in rows.items():
        band1 = sorted(r["pass1"]["band_max_db"] for r in out)
        lines.append(f"| {engine} | {band1[len(band1) // 2]:.2f} / {band1[-1]:.2f} | "
                     f"{worst(out, 'pass1', 'width_pct'):.1f} | {worst(out, 'pass2', 'band_max_db'):.2f} | "
                     f"{worst(out, 'pass2', 'width_pct'):.1f} | {worst(out, 'pass2', 'crest_db'):.2f} | "
                     f"{worst(out, 'pass2', 'lufs_change'):.3f} | {sum(r['pass2_moves'] for r in out)} of {len(out)} |")
    return lines


def metrics_table(summary: Mapping[str, Mapping[str, float]], methods: Sequence[str], keys: Sequence[str]) -> list[str]:
    """``model evaluate``'s metrics, one row per metric and one column per method."""
    return (["| metric | " + " | ".join(methods) + " |", "| --- |" + " --- |" * len(methods)]
            + [f"| {key} | " + " | ".join(f"{summary[m][key]:.3f}" for m in methods) + " |" for key in keys])


def restoration_table(rows: Sequence[Mapping], title: str) -> list[str]:
    """:func:`mixbridge.assistant.restoration.restoration`'s rows as a table per method, and the
    model against the DSP baseline (both refined) and the untouched input."""
    methods = list(dict.fromkeys(m for r in rows for m in r["methods"]))
    lines = [f"{title} ({len(rows)} degraded clips; families: {', '.join(sorted({r['family'] for r in rows}))})",
             "| method | tonal error dB | dynamics error | crest / PLR / LRA error | width error % | MR-STFT ratio "
             "| full band | delivered |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method in methods:
        sel = [r["methods"][method] for r in rows if method in r["methods"]]

        def mean(key: str, sel=sel) -> float:
            return sum(s[key] for s in sel) / len(sel)

        delivered = "n/a" if method == "none" else f"{sum(s['delivered'] for s in sel)}/{len(sel)}"
        lines.append(f"| {method} | {mean('tonal_db'):.2f} | {mean('dynamics'):.2f} | "
                     f"{mean('crest_db'):.2f} / {mean('plr_db'):.2f} / {mean('lra_lu'):.2f} | "
                     f"{mean('width_pct'):.1f} | {mean('mrstft_ratio'):.2f} | {mean('mrstft_fullband_ratio'):.2f} | "
                     f"{delivered} |")
    both = [r["methods"] for r in rows if {"model+refine", "dsp+refine", "none"} <= set(r["methods"])]
    if both:
        def avg(method: str, fn) -> float:
            return sum(fn(b[method]) for b in both) / len(both)

        tone_m, tone_d = avg("model+refine", lambda m: m["tonal_db"]), avg("dsp+refine", lambda m: m["tonal_db"])
        dyn_m, dyn_d = avg("model+refine", lambda m: m["dynamics"]), avg("dsp+refine", lambda m: m["dynamics"])
        lines += ["", f"model + refinement against DSP + refinement: tonal error {100 * (1 - tone_m / tone_d):+.0f} % "
                      f"({tone_m:.2f} vs {tone_d:.2f} dB, lower on "
                      f"{sum(b['model+refine']['tonal_db'] < b['dsp+refine']['tonal_db'] for b in both)}/{len(both)}), "
                      f"dynamics error {100 * (1 - dyn_m / dyn_d):+.0f} % ({dyn_m:.2f} vs {dyn_d:.2f}, lower on "
                      f"{sum(b['model+refine']['dynamics'] < b['dsp+refine']['dynamics'] for b in both)}"
                      f"/{len(both)}); its dynamics error is over the untouched input's (+0.05) on "
                      f"{_over(both, 'model+refine', 'none')}/{len(both)}"
                      + (f" (over the untouched input delivered by the finalizer alone on "
                         f"{_over(both, 'model+refine', 'none→finalizer')}/{len(both)}; the original itself, "
                         f"delivered at the ceiling, is over the untouched input's on "
                         f"{_over(both, 'original→finalizer', 'none')}/{len(both)})"
                         if all({'none→finalizer', 'original→finalizer'} <= set(b) for b in both) else "")]
    return lines


def _over(rows: Sequence[Mapping], method: str, than: str) -> int:
    """On how many clips ``method``'s dynamics error is over ``than``'s by more than 0.05."""
    return sum(r[method]["dynamics"] > r[than]["dynamics"] + 0.05 for r in rows)
