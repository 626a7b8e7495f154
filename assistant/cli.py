"""``mixbridge`` command line: a thin layer that parses, calls the library and prints.

Exit codes: 0 ok, 1 internal error, 2 usage, 3 input not found, 4 unreadable audio,
5 audio outside the input policy, 6 output not writable, 7 invalid settings/target,
8 a batch finished with failed files, 130 interrupted. With several files, the first failure's code is returned after all ran.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from mixbridge.analysis.errors import MixbridgeError, UsageError
from mixbridge.assistant import text
from mixbridge.assistant.console import Reporter, print_lines, print_rows

log = logging.getLogger("mixbridge")


def cmd_analyze(args: argparse.Namespace) -> int:
    from mixbridge.analysis.analyze import analyze_file

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
        except Exception as exc:  # a bug must not stop the other files; log it with its traceback
            log.exception("internal error on %s", path)
            print(f"mixbridge: error: {path}: internal error ({type(exc).__name__}: {exc})", file=sys.stderr)
            status = status or 1
            results.append({"source": path, "error": f"internal error: {exc}", "code": "internal"})
            continue
        if args.json:
            results.append(features.to_dict())
        else:
            print_rows(text.features_rows(features), features.notes, text.features_table(features))
            print()
    if args.json:
        print(json.dumps(results if len(results) != 1 else results[0], indent=2, allow_nan=False))
    return status


def cmd_master(args: argparse.Namespace) -> int:
    from mixbridge.assistant.master import analysing_beside, analysis_threads, master_file, resolve_target, write_report
    from mixbridge.assistant.options import MasterOptions

    options = _master_options(args, MasterOptions)  # refused before any work
    _check_outputs(args.html, args.report, args.save_chain)
    _check_export(args.export)
    progress = args.progress
    input_threads, reference_threads = analysis_threads(args.input, args.reference or ())
    with analysing_beside(args.input, input_threads) as input_features, ThreadPoolExecutor(1) as page_work:
        # the page's plotting library loads and the input's A/B excerpt is encoded while the master runs
        original = page_work.submit(_page_original, args.input, input_features) if args.html else None
        target = resolve_target(args.target, args.reference or (), args.lufs, args.ceiling, args.profile, progress,
                                analysis_threads=reference_threads)
        report = master_file(args.input, args.output, target, options, progress=progress,
                             plugins=args.plugins, plugin_dirs=args.plugin_dir or (), input_features=input_features,
                             input_samples=input_features.samples)
    links = {}
    if args.save_chain:
        links["the chain (JSON)"] = report.settings.save(args.save_chain)
    if args.report:
        links["the full report (JSON)"] = write_report(report, args.report)
    if args.export:
        links[f"the {args.export[0]} export"] = _export_master(args, report)
    if args.html:
        from mixbridge.assistant.html_report import master_page

        progress("writing the HTML report")
        master_page(report, args.html, links, original.result() if original else None)
    print("\n".join(text.master_lines(report)))
    if args.html:
        print(f"  report page: {args.html}")
    return 0


def _export_master(args: argparse.Namespace, report) -> Path:
    """The master's chain as a DAW file; on plugins the inserts are set again on the excerpt."""
    from mixbridge.assistant.bridge import export_daw, plugin_renderer
    from mixbridge.assistant.master import excerpt_of

    kind, path = args.export
    renderer = None
    plugins = _export_plugins(args)
    if plugins:
        args.progress("setting the plugins for the export")
        renderer = plugin_renderer(report.settings, excerpt_of(args.input), plugins, args.plugin_dir or (),
                                   allow_missing=True)
        for line in renderer.missing:
            log.warning("%s", line)
    written = export_daw(kind, path, report.settings, args.input, report.target, report.gain_db, renderer)
    print(f"  {kind} written: {written}")
    return written


def _page_original(input_path: str, input_features):
    """In a worker thread, once the input is analysed (not to slow the analyses down): import the
    page's module and encode the input's excerpt, while the master renders."""
    features = input_features()
    from mixbridge.assistant.html_report import prepare_original

    return prepare_original(input_path, features)


def _check_outputs(html: str | None, *paths: str | None) -> None:
    """Refuse, before any audio work, a report page (``html``), report or chain path that cannot
    be written."""
    from mixbridge.analysis.atomic import check_writable

    if html and Path(html).suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"{html}: a report page is written as .html")
    for path in (html, *paths):
        if path:
            check_writable(path)


def _master_options(args: argparse.Namespace, kind, **extra):
    """``kind`` (MasterOptions or StemOptions) from the shared option groups; a bad judgment
    option or an unreadable chain file is refused here, before any work."""
    from mixbridge.effects.schema import ChainSettings

    chain = getattr(args, "chain", None)
    return kind(engine=args.engine, refine=args.refine, bit_depth=args.bit_depth,
                max_limiting_db=args.max_limiting_db, judgment=_judgment(args),
                chain=ChainSettings.load(chain) if chain else None,
                overwrite=getattr(args, "overwrite", False), **extra)


def _judgment(args: argparse.Namespace):
    from mixbridge.assistant.judge import Amounts, JudgeOptions

    amounts = Amounts.from_options(args.amount, args.match, tone=args.tone, dynamics=args.dynamics,
                                   width=args.width, space=args.space)
    return JudgeOptions(amounts, args.max_eq_db)


def cmd_suggest(args: argparse.Namespace) -> int:
    from mixbridge.assistant.bridge import estimated_gain_db, plugin_renderer, render_match
    from mixbridge.assistant.master import analysing_beside, analysis_threads, resolve_target, suggest_file

    judgment = _judgment(args)
    _check_outputs(args.html, args.output)
    _check_export(args.export)
    progress = args.progress
    input_threads, reference_threads = analysis_threads(args.input, args.reference or ())
    with analysing_beside(args.input, input_threads) as input_features:
        target = resolve_target(args.target, args.reference or (), args.lufs, args.ceiling, args.profile, progress,
                                analysis_threads=reference_threads)
        suggestion = suggest_file(args.input, target, engine=args.engine, refine=args.refine, judgment=judgment,
                                  progress=progress, input_features=input_features,
                                  input_samples=input_features.samples)
    target = suggestion.target
    print("\n".join(text.suggestion_lines(args.input, suggestion, args.engine)))
    links = {}
    if args.output:
        links["the chain (JSON)"] = suggestion.settings.save(args.output)
        print(f"  chain saved to {args.output} (apply with: mixbridge master IN -o OUT --chain {args.output})")
    renderer, match = None, None
    plugins = _export_plugins(args)
    if plugins:
        progress("loading and setting the plugins")
        renderer = plugin_renderer(suggestion.settings, suggestion.excerpt, plugins, args.plugin_dir or (),
                                   allow_missing=bool(args.export))
        for line in renderer.missing:
            log.warning("%s", line)
        match = render_match(renderer, suggestion.settings, suggestion.excerpt)
        print("\n".join(text.plugins_lines(renderer.describe(), match)))
        if args.export_presets:
            from mixbridge.effects.plugins import export_presets

            gain_db = estimated_gain_db(suggestion.features, match, target)
            written = export_presets(renderer, suggestion.settings, args.export_presets,
                                     suggestion.excerpt.sample_rate, gain_db, target.ceiling_dbtp,
                                     f"{target.lufs:.1f} LUFS")
            print(f"  presets written to {args.export_presets}: " + ", ".join(p.name for p in written))
            links.update({f"preset: {p.name}": p for p in written})
    if args.export:
        from mixbridge.assistant.bridge import chain_gain_db, export_daw

        gain_db = (estimated_gain_db(suggestion.features, match, target) if match is not None
                   else chain_gain_db(suggestion.settings, suggestion.excerpt, suggestion.features, target))
        path = export_daw(args.export[0], args.export[1], suggestion.settings, args.input, target, gain_db, renderer)
        links[f"the {args.export[0]} export"] = path
        print(f"  {args.export[0]} written: {path}")
    if args.html:
        from mixbridge.assistant.html_report import suggestion_page

        suggestion_page(args.input, suggestion, args.html, links)
        print(f"  report page: {args.html}")
    return 0


def cmd_plugins_scan(args: argparse.Namespace) -> int:
    from mixbridge.effects.vst3 import scan, scan_table

    plugins, failures = scan(args.dirs, system=args.system, use_cache=args.cache, progress=args.progress)
    if args.json:
        print(json.dumps({"plugins": [p.to_dict() for p in plugins], "failures": failures}, indent=2))
    else:
        print_lines([*scan_table(plugins), *(f"failed: {path}: {error}" for path, error in failures.items()),
                     f"{len(plugins)} plugin(s), {len(failures)} failed to load"])
    return 0 if plugins or not failures else 4


def cmd_plugins_learn(args: argparse.Namespace) -> int:
    from mixbridge.analysis.atomic import write_text
    from mixbridge.effects.plugins.learn import learn_eq_stage

    text, learned = learn_eq_stage(args.plugin, args.stage, args.gain, args.freq, args.width)
    for item in learned:
        print(f"{item.source} -> {item.param}: {'same units' if item.identity else 'measured table'}; "
              f"{item.residual}")
    if args.output:
        write_text(args.output, text)
        print(f"draft map written to {args.output} (check it with: mixbridge master IN -o OUT --plugins "
              f"{args.output})")
    else:
        print(text, end="")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from mixbridge.assistant.batch import INDEX_PAGE, MANIFEST, check_executor, run_batch
    from mixbridge.assistant.master import resolve_target
    from mixbridge.assistant.options import MasterOptions

    check_executor(args.executor, args.address)  # before references are measured: a bad address fails fast
    options = _master_options(args, MasterOptions)
    progress = args.progress
    target = resolve_target(args.target, args.reference or (), args.lufs, args.ceiling, args.profile, progress)
    summary = run_batch(Path(args.input), Path(args.output), target, options, jobs=args.jobs, progress=progress,
                        album=args.album, executor=args.executor, address=args.address, html=args.html)
    print(f"{summary.done} mastered, {summary.skipped} unchanged (skipped), {summary.failed} failed "
          f"in {summary.seconds:.1f} s; manifest: {Path(args.output) / MANIFEST}"
          + (f"; report pages: {Path(args.output) / INDEX_PAGE}" if args.html else ""))
    return 8 if summary.failed else 0


def cmd_watch(args: argparse.Namespace) -> int:
    from mixbridge.assistant.master import resolve_target
    from mixbridge.assistant.options import MasterOptions
    from mixbridge.assistant.watch import WatchOptions, watch_folder

    options = _master_options(args, MasterOptions)
    if not args.settle_s >= 0.1:
        raise UsageError(f"--settle-s {args.settle_s:g}: at least 0.1 s, or a bounce could be read half-written")
    watch = WatchOptions(settle_s=args.settle_s, master=args.master, html=args.html, export=args.export,
                         stop_after=args.stop_after)
    target = resolve_target(args.target, args.reference or (), args.lufs, args.ceiling, args.profile, args.progress)
    watch_folder(args.input, target, options, watch, lambda line: print(line, flush=True),
                 plugins=_export_plugins(args))
    return 0


def cmd_stems(args: argparse.Namespace) -> int:
    from mixbridge.assistant.master import resolve_target
    from mixbridge.assistant.stems import REPORT_NAME, StemOptions, master_stems

    options = _master_options(args, StemOptions, pad=args.pad, corrections=args.stem_corrections)
    _check_outputs(args.html)
    progress = args.progress
    target = resolve_target(args.target, args.reference or (), args.lufs, args.ceiling, args.profile, progress)
    report = master_stems(args.input, args.output, target, options, progress=progress)
    if args.html:
        from mixbridge.assistant.html_report import stems_page

        progress("writing the HTML report")
        stems_page(report, args.html, {"the stems report (JSON)": Path(args.output) / REPORT_NAME})
    print("\n".join(text.stems_lines(report, REPORT_NAME)))
    if args.html:
        print(f"  report page: {args.html}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from mixbridge.analysis.analyze import analyze_file
    from mixbridge.assistant.targets import profile_from_features, save_profile

    progress = args.progress
    features = []
    for path in args.files:
        progress(f"analysing {path}")
        features.append(analyze_file(path))
    how = ("its own values +- the reference tolerances" if len(features) == 1 else
           "median and 10th-90th percentile ranges across")
    derivation = args.derivation or (f"{how}: " + ", ".join(Path(p).stem for p in args.files))
    profile = profile_from_features(features, args.name, args.description, derivation)
    save_profile(profile, args.output)
    print(f"wrote profile {args.name!r} from {len(features)} track(s) to {args.output}")
    return 0


def cmd_model_train(args: argparse.Namespace) -> int:
    from mixbridge.models.train import train

    summary = train(Path(args.out), [Path(a) for a in args.audio], args.score_clips, args.variants,
                    args.epochs, args.jobs, progress=args.progress, foreign_variants=args.foreign_variants)
    print(f"trained on {summary['examples']} examples ({summary['dataset_s']:.0f} s dataset, "
          f"{summary['training_s']:.0f} s training); weights in {args.out}/model.npz")
    return 0


def cmd_model_evaluate(args: argparse.Namespace) -> int:
    from mixbridge.analysis.analyze import analyze
    from mixbridge.analysis.atomic import cache_root
    from mixbridge.analysis.audio import Audio
    from mixbridge.assistant.evaluation import do_no_harm
    from mixbridge.assistant.restoration import restoration
    from mixbridge.models.data import is_score_clip
    from mixbridge.models.evaluate import METHODS, evaluate
    from mixbridge.models.net import SettingsModel
    from mixbridge.models.train import source_files

    progress = args.progress
    trained, held = source_files(cache_root(), [Path(a) for a in args.audio], args.score_clips, args.jobs, progress)
    if args.max_score_clips is not None:
        clips = [p for p in held if is_score_clip(p)][: args.max_score_clips]
        held = clips + [p for p in held if not is_score_clip(p)]
    model = SettingsModel.load(args.weights)
    result = evaluate(held, model, lambda x, sr: analyze(Audio(x, sr)), variants=args.variants,
                      progress=progress)
    summary = result["summary"]
    keys = ("eq_gain_mae_db", "threshold_error_db", "reverb_wet_error", "width_error_percent",
            "band_shape_error_db", "crest_error_db", "frame_crest_error_db", "lra_error_lu", "mrstft_ratio")
    print(f"held-out files: {len(held)}; examples: {summary['model']['examples']}")
    print_lines(text.metrics_table(summary, METHODS, keys))
    for key, value in result["timings"].items():
        print(f"{key}: {value * 1000:.1f} ms (median)")
    rows = do_no_harm(held, args.do_no_harm_clips, progress)
    if any(rows.values()):
        print_lines(["", *text.do_no_harm_table(rows)])
    # the real recordings the weights never saw (as their training recorded; else this split's)
    recordings = ([p for p in trained + held if p.stem in model.held_out_recordings] if model.held_out_recordings
                  else [p for p in held if not is_score_clip(p)])
    if args.restoration_clips > 0 and recordings:
        restored = restoration(recordings, args.restoration_clips, progress=progress)
        print_lines(["", *text.restoration_table(
            restored, "restoration out of family: held-out recordings, the original as the reference")])
        result["restoration"] = restored
    if args.json:
        from mixbridge.analysis.atomic import write_text

        write_text(args.json, json.dumps(result, indent=2, default=float) + "\n")
    return 0


EXPORT_FORMATS = ("dawproject", "rfxchain")  # each format's file suffix is its writer's SUFFIX
RFXCHAIN_MAP = "zam"  # the plugin map of a REAPER FX chain when --plugins names none
EXPORT_HELP = ("'dawproject' (a project with the mix and the chain on its track, for Bitwig Studio, Studio One, "
               "Cubase; the inserts of --plugins as VST3 devices with their state, the rest as generic devices) "
               f"or 'rfxchain' (a REAPER FX chain .RfxChain: the VST3 inserts of --plugins, default {RFXCHAIN_MAP}, "
               "with their exact state; stages no plugin carries listed in its comment block)")


def _export_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export", nargs=2, metavar=("FORMAT", "PATH"), help="write the chain for your DAW: " + EXPORT_HELP)


def _export_plugins(args: argparse.Namespace) -> str | None:
    """The plugin map the chain runs on: --plugins, or for a REAPER FX chain the default map."""
    if args.plugins or not args.export:
        return args.plugins
    kind = args.export if isinstance(args.export, str) else args.export[0]
    return RFXCHAIN_MAP if kind == "rfxchain" else None


def _check_export(export: Sequence[str] | None) -> None:
    """Refuse, before any audio work, an unknown format, a wrong suffix or an unwritable path."""
    if not export:
        return
    from mixbridge.analysis.atomic import check_writable
    from mixbridge.assistant.bridge import export_suffix

    kind, path = export
    if kind not in EXPORT_FORMATS:
        raise UsageError(f"--export {kind} {path}: unknown format; valid: {', '.join(EXPORT_FORMATS)}")
    suffix = export_suffix(kind)
    if Path(path).suffix.lower() != suffix.lower():
        raise UsageError(f"{path}: a {kind} export is written as {suffix}")
    check_writable(path)


def _plugin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugins", metavar="MAP", help="run the chain on VST3 plugins: a shipped map (zam) "
                                                    "or a map .toml file")
    p.add_argument("--plugin-dir", nargs="+", metavar="DIR", help="more folders to find the map's plugins in")


def _target_options(p: argparse.ArgumentParser) -> None:
    """What to master toward and how the settings are made: one declaration for master,
    suggest, batch and stems."""
    from mixbridge.assistant.options import DEFAULT_ENGINE, ENGINES

    p.add_argument("--target", help="delivery target (e.g. spotify, apple-music, ebu-r128, cd); "
                                    "default spotify unless --reference or --lufs is given")
    p.add_argument("--reference", nargs="+", metavar="REF", help="reference track(s) to match")
    p.add_argument("--profile", help="sound profile with normal ranges: a shipped name, 'auto' (the one the mix "
                                     "fits best), or a .toml file")
    p.add_argument("--lufs", type=float, help="integrated loudness target (overrides --target)")
    p.add_argument("--ceiling", type=float, help="true-peak ceiling in dBTP (overrides --target)")
    p.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINES,
                   help=f"how settings are sized: the learned model or the DSP baseline (default {DEFAULT_ENGINE})")
    p.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                   help="closed-loop refinement of the engine's settings (render an excerpt, measure, correct; "
                        "either engine; see models/EVALUATION.md)")


def _delivery_options(p: argparse.ArgumentParser, bit_depth_help: str = "output bit depth (16 and 24 dithered)"
                      ) -> None:
    """The written files' format and the finalizer's limiting budget (master, batch, stems)."""
    from mixbridge.analysis.audio import BIT_DEPTHS
    from mixbridge.effects.finalize import MAX_LIMITING_DB

    p.add_argument("--bit-depth", default="24", choices=BIT_DEPTHS, help=bit_depth_help)
    p.add_argument("--max-limiting-db", type=float, default=MAX_LIMITING_DB,
                   help=f"most peak limiting allowed before the loudness target is given up "
                        f"(default {MAX_LIMITING_DB:g} dB)")


def _judgment_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("judgment", "how much of the measured change to make (loudness and the ceiling "
                                         "are always delivered)")
    g.add_argument("--amount", type=float, metavar="PERCENT",
                   help="scale every measured change: 0 = loudness and ceiling only, 100 = the full move (default)")
    for aspect, what in (("tone", "the EQ"), ("dynamics", "the compressor"), ("width", "the stereo width"),
                         ("space", "the reverb")):
        g.add_argument(f"--{aspect}", type=float, metavar="PERCENT",
                       help=f"amount for {what} (overrides --amount for this aspect)")
    g.add_argument("--match", metavar="ASPECTS",
                   help="only these aspects, comma-separated (tone, dynamics, width, space, loudness); "
                        "the others are left alone")
    g.add_argument("--max-eq-db", type=float, metavar="DB",
                   help="largest EQ move (default 4 dB for a master, 9 dB with --reference)")


COMMAND_HELP = {
    "analyze": "measure loudness, peaks, spectrum, stereo and dynamics",
    "master": "master a mix to a delivery target and sound profile",
    "suggest": ("suggest a chain (stage by stage) without rendering; optionally on your VST3 plugins, as "
                ".vstpreset files, or as a DAW project"),
    "plugins": "VST3 plugins: scan, learn a map",
    "batch": "master a folder tree in parallel; re-runs resume",
    "stems": "master one song's stems with one shared bus: they keep their balance and sum to the master",
    "watch": "suggest (or master) every bounce written into a folder, once the DAW has finished it",
    "profile": "measure a tonal-balance profile from reference tracks",
    "model": "train or evaluate the learned settings model",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with ``only``, that command's options only and the others by name and help
    (what ``main`` builds: ``mixbridge --help`` then imports none of the pipelines' modules)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="no progress output (bars on a terminal, lines when piped); results still print")
    parser = argparse.ArgumentParser(prog="mixbridge", description="Mixbridge production assistant",
                                     parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    adders = {"analyze": _add_analyze, "master": _add_master, "suggest": _add_suggest, "plugins": _add_plugins,
              "batch": _add_batch, "stems": _add_stems, "watch": _add_watch, "profile": _add_profile,
              "model": _add_model}
    for name, add in adders.items():
        if only is None or only == name:
            add(sub, common)
        else:
            sub.add_parser(name, help=COMMAND_HELP[name], add_help=False)
    return parser


def _add_analyze(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("analyze", parents=[common], help=COMMAND_HELP["analyze"])
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, aiff, ogg or mp3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_analyze)


def _add_master(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("master", parents=[common], help=COMMAND_HELP["master"])
    p.add_argument("input", metavar="IN", help="the mix (wav, flac, aiff, ogg or mp3)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output .wav or .flac")
    _target_options(p)
    p.add_argument("--chain", metavar="JSON", help="apply this saved chain instead of suggesting one")
    p.add_argument("--save-chain", metavar="JSON", help="save the chain used")
    p.add_argument("--report", metavar="JSON", help="write the full report")
    p.add_argument("--html", metavar="HTML", help="write a self-contained report page: plots, the chain and why, "
                                                  "a level-matched A/B player")
    _export_option(p)
    _delivery_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _plugin_options(p)
    _judgment_options(p)
    p.set_defaults(run=cmd_master)


def _add_suggest(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("suggest", parents=[common], help=COMMAND_HELP["suggest"])
    p.add_argument("input", metavar="IN", help="the mix (wav, flac, aiff, ogg or mp3)")
    _target_options(p)
    p.add_argument("-o", "--output", metavar="JSON", help="write the chain (Mixbridge chain preset, JSON)")
    _plugin_options(p)
    p.add_argument("--export-presets", metavar="DIR",
                   help="with --plugins: one .vstpreset per plugin insert and INSERTS.txt (the order)")
    p.add_argument("--html", metavar="HTML", help="write a self-contained report page: the spectrum against the "
                                                  "target, loudness, the chain and why")
    _export_option(p)
    _judgment_options(p)
    p.set_defaults(run=cmd_suggest)


def _add_plugins(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("plugins", parents=[common], help=COMMAND_HELP["plugins"])
    psub = p.add_subparsers(dest="plugins_command", required=True)
    m = psub.add_parser("scan", parents=[common], help="list VST3 plugins with their parameters (cached)")
    m.add_argument("dirs", nargs="*", metavar="DIR", help="more folders or .vst3 bundles")
    m.add_argument("--system", action=argparse.BooleanOptionalAction, default=True,
                   help="also the standard folders (~/.vst3, /usr/lib/vst3, /usr/local/lib/vst3)")
    m.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse what earlier scans learned (a bundle is re-read when its files change)")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(run=cmd_plugins_scan)
    m = psub.add_parser("learn", parents=[common],
                        help="draft a map for an EQ plugin by sweeping its parameters and measuring the response")
    m.add_argument("plugin", metavar="BUNDLE", help="the .vst3 bundle")
    m.add_argument("--stage", required=True, help="the schema stage it should carry: trim, low_shelf, "
                                                  "peak1..peak4 or high_shelf")
    m.add_argument("--gain", required=True, metavar="PARAM", help="the plugin's gain parameter for that stage")
    m.add_argument("--freq", metavar="PARAM", help="its frequency parameter (EQ stages)")
    m.add_argument("--width", metavar="PARAM", help="its Q / bandwidth parameter (peaking bands)")
    m.add_argument("-o", "--output", metavar="TOML", help="write the draft map (default: print it)")
    m.set_defaults(run=cmd_plugins_learn)


def _add_batch(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("batch", parents=[common], help=COMMAND_HELP["batch"])
    p.add_argument("input", metavar="IN_DIR", help="folder of mixes (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="where the masters and manifest.jsonl (one row per file; re-runs resume) go")
    _target_options(p)
    _delivery_options(p)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel processes, or CPUs of a local Ray instance (default: all cores)")
    p.add_argument("--html", action="store_true",
                   help="a report page next to each master and OUT_DIR/index.html with a row per file")
    p.add_argument("--album", action="store_true",
                   help="one loudness decision for the set: the loudest track at the target, the others "
                        "keep their level differences (AES TD1008)")
    from mixbridge.assistant.batch import EXECUTORS, RAY_INSTALL_HINT

    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="where files run: local processes, or Ray tasks (the issue's '--engine ray'; "
                        f"--engine chooses how settings are made). Ray: {RAY_INSTALL_HINT}")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="with --executor ray: the cluster's head (e.g. head:6379; --jobs is then ignored); "
                        "default: a local Ray instance with --jobs CPUs")
    _judgment_options(p)
    p.set_defaults(run=cmd_batch)


def _add_watch(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("watch", parents=[common], help=COMMAND_HELP["watch"])
    p.add_argument("input", metavar="BOUNCE_DIR", help="the folder your DAW bounces into (watched recursively; "
                                                       "outputs go to a mixbridge/ subfolder beside each bounce)")
    _target_options(p)
    p.add_argument("--master", action="store_true", help="also write the master, NAME-master.wav")
    p.add_argument("--html", action="store_true", help="also write the report page, NAME.html")
    p.add_argument("--export", choices=sorted(EXPORT_FORMATS), metavar="FORMAT",
                   help="also write the chain for your DAW, NAME.dawproject or NAME.RfxChain: " + EXPORT_HELP)
    p.add_argument("--settle-s", type=float, default=1.0, metavar="S",
                   help="a bounce is taken once its size has not changed for this long (default 1 s)")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop after N bounces (default: until Ctrl-C)")
    _delivery_options(p)
    _plugin_options(p)
    _judgment_options(p)
    p.set_defaults(run=cmd_watch)


def _add_stems(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stems", parents=[common], help=COMMAND_HELP["stems"])
    p.add_argument("input", metavar="SONG_DIR", help="folder holding the stems (same rate and length)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="writes <stem>.wav per stem, mix-master.wav and stems-report.json")
    _target_options(p)
    _delivery_options(p, bit_depth_help="24: each file dithered (residual at the dither floor); "
                                         "32f: the exact float sum")
    p.add_argument("--pad", action="store_true",
                   help="pad shorter stems with silence at the end (default: different lengths are refused)")
    p.add_argument("--stem-corrections", action=argparse.BooleanOptionalAction, default=True,
                   help="apply the measured per-stem rumble/DC high-pass (otherwise only reported)")
    p.add_argument("--chain", metavar="JSON", help="apply this saved bus chain instead of suggesting one")
    p.add_argument("--html", metavar="HTML", help="write a self-contained report page: the mix before and after, "
                                                  "the stems, the bus chain and why, an A/B player")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _judgment_options(p)
    p.set_defaults(run=cmd_stems)


def _add_profile(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("profile", parents=[common], help=COMMAND_HELP["profile"])
    p.add_argument("files", nargs="+", metavar="FILE", help="the reference tracks (one gives a range of its own "
                                                            "values +- the reference tolerances)")
    p.add_argument("-o", "--output", required=True, metavar="TOML", help="the profile file to write")
    p.add_argument("--name", required=True, help="the profile's name (what --profile NAME finds)")
    p.add_argument("--description", default="", help="one line on what the profile sounds like")
    p.add_argument("--derivation", default="", help="how the tracks were chosen (stored in the file)")
    p.set_defaults(run=cmd_profile)


def _add_model(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("model", parents=[common], help=COMMAND_HELP["model"])
    msub = p.add_subparsers(dest="model_command", required=True)
    for name, run, help_text in (("train", cmd_model_train, "build the self-supervised dataset and train"),
                            ("evaluate", cmd_model_evaluate, "compare none / dsp / model / model+refine "
                                                             "on held-out audio")):
        m = msub.add_parser(name, parents=[common], help=help_text)
        m.add_argument("--audio", nargs="*", default=[], metavar="DIR", help="folders of real music to use too")
        m.add_argument("--score-clips", type=int, default=160, help="clips rendered from music21 scores")
        m.add_argument("--jobs", type=int, default=2, help="parallel processes for rendering the dataset")
        m.set_defaults(run=run)
        if name == "train":
            m.add_argument("--variants", type=int, default=12, help="settings drawn per clip")
            m.add_argument("--foreign-variants", type=int, default=6, metavar="N",
                           help="foreign degradations per clip of a real recording (curve, compressor, echo/reverb; "
                                "the recording itself is the target)")
            m.add_argument("--epochs", type=int, default=300, help="training epochs")
            m.add_argument("--out", default="models/weights", help="folder for model.npz")
        else:
            m.add_argument("--weights", help="a model.npz (default: the shipped weights)")
            m.add_argument("--variants", type=int, default=2, help="settings drawn per held-out clip")
            m.add_argument("--max-score-clips", type=int, help="evaluate at most this many held-out score clips")
            m.add_argument("--do-no-harm-clips", type=int, default=8, metavar="N",
                           help="held-out clips (real recordings first) mastered twice for the do-no-harm and "
                                "idempotence figures (0: skip)")
            m.add_argument("--restoration-clips", type=int, default=3, metavar="N",
                           help="degraded clips per held-out real recording restored with the original as the "
                                "reference, by processors the model never trained on (ffmpeg, ZAM VST3s, sox; "
                                "0: skip)")
            m.add_argument("--json", metavar="OUT", help="write every row and the summary as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=next((w for w in words if w in COMMAND_HELP), ""))
    args = parser.parse_args(words)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="mixbridge: %(levelname)s: %(message)s")
    args.progress = Reporter.for_terminal(args.quiet, args.verbose)
    try:
        with args.progress:  # the bar is gone before any error line is printed
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
    except Exception as exc:  # a bug: one line for the user, the traceback with -v
        log.info("internal error", exc_info=True)
        print(f"mixbridge: internal error: {type(exc).__name__}: {exc}"
              + ("" if args.verbose else " (run with -v for details)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
