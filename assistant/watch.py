"""``mixbridge watch BOUNCE_DIR``: suggest (and, on request, master) every bounce a DAW writes.

The folder is watched with ``watchfiles`` (inotify, or polling where there is none). A new or
changed audio file is taken once the DAW has finished writing it: its size and modification
time have not changed for ``settle_s`` and it opens as audio. Then, in a ``mixbridge/``
subfolder beside it (:data:`OUT_FOLDER`), every file written atomically:

- ``NAME.chain.json``: the suggested chain (``mixbridge master --chain`` applies it);
- ``NAME.suggestion.txt``: the suggestion with its explanations, as ``suggest`` prints it
  (``master``'s summary with ``master``);
- ``NAME.html``: the report page, with ``html``;
- ``NAME.dawproject`` or ``NAME.RfxChain``: the chain for the DAW, with ``export="dawproject"`` or
  ``"rfxchain"``;
- ``NAME-master.wav``: the master, with ``master``.

Our own outputs live under ``mixbridge/`` and are never taken as bounces. A bounce that is
still being written, or that cannot be read, is skipped with one line and taken again when it
changes; nothing stops the watcher but Ctrl-C (or ``stop_after`` bounces, for scripts and
tests). One line per bounce: loudness before → after and the three biggest moves.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.errors import InputNotFoundError, MixbridgeError
from mixbridge.assistant import text
from mixbridge.assistant.bridge import chain_gain_db, export_daw, export_suffix, plugin_renderer
from mixbridge.assistant.evidence import Move
from mixbridge.assistant.master import excerpt_of, master_file, suggest_file
from mixbridge.assistant.options import MasterOptions
from mixbridge.assistant.targets import Target

log = logging.getLogger(__name__)

OUT_FOLDER = "mixbridge"
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3"})
POLL_S = 0.2  # how often a waiting bounce is looked at again


@dataclass(frozen=True)
class WatchOptions:
    settle_s: float = 1.0  # a bounce's size and time unchanged this long: the DAW has finished
    master: bool = False  # also write NAME-master.wav
    html: bool = False
    export: str | None = None  # "dawproject" or "rfxchain" (then ``plugins`` must name a map)
    stop_after: int | None = None  # bounces taken (processed or skipped) before returning


def move_size(move: Move) -> float:
    """How big a move is, for ranking: its largest gain in dB; a width change counts 1 dB per 10 %."""
    sizes = [abs(v) for k, v in move.values.items() if k.endswith("_db")]
    sizes += [abs(v - 100.0) / 10.0 for k, v in move.values.items() if k.endswith("width_percent")]
    return max(sizes, default=0.0)


def summary_line(name: str, before_lufs: float, after_lufs: float, moves: tuple[Move, ...]) -> str:
    biggest = sorted((m for m in moves if move_size(m) > 0), key=move_size, reverse=True)[:3]
    return (f"{name}: {before_lufs:.1f} → {after_lufs:.1f} LUFS; "
            + ("; ".join(m.action for m in biggest) if biggest else "no moves: already within the ranges"))


def process_bounce(path: Path, target: Target, options: MasterOptions, watch: WatchOptions,
                   plugins: str | None = None) -> str:
    """Everything asked for one bounce (see the module docstring); returns its summary line."""
    out = path.parent / OUT_FOLDER
    out.mkdir(exist_ok=True)
    stem = path.stem
    report, suggestion = None, None
    if watch.master:
        report = master_file(path, out / f"{stem}-master.wav", target, options, plugins=plugins)
        settings, moves, used_target = report.settings, report.moves, report.target
        before, after, gain_db = report.input_features.integrated_lufs, report.output_features.integrated_lufs, \
            report.gain_db
        lines = text.master_lines(report)
    else:
        suggestion = suggest_file(path, target, engine=options.engine, refine=options.refine,
                                  judgment=options.judgment, max_limiting_db=options.max_limiting_db)
        settings, moves, used_target = suggestion.settings, suggestion.decision.moves, suggestion.target
        before, after = suggestion.features.integrated_lufs, used_target.lufs
        gain_db = None  # estimated below if a DAW project needs it
        lines = text.suggestion_lines(str(path), suggestion, options.engine)
    links = {"the chain (JSON)": settings.save(out / f"{stem}.chain.json"),
             "the suggestion (text)": write_text(out / f"{stem}.suggestion.txt", "\n".join(lines) + "\n")}
    if watch.export:
        if gain_db is None:
            assert suggestion is not None
            gain_db = chain_gain_db(settings, suggestion.excerpt, suggestion.features, used_target)
        renderer = None
        if plugins:
            renderer = plugin_renderer(settings, excerpt_of(path), plugins, allow_missing=True)
            for line in renderer.missing:
                log.warning("%s", line)
        links[f"the {watch.export} export"] = export_daw(watch.export, out / f"{stem}{export_suffix(watch.export)}",
                                                         settings, path,
                                                         used_target, gain_db, renderer)
    if watch.html:
        from mixbridge.assistant import html_report  # only when pages are asked for

        if report is not None:
            html_report.master_page(report, out / f"{stem}.html", links)
        else:
            html_report.suggestion_page(path, suggestion, out / f"{stem}.html", links)
    return summary_line(path.name, before, after, moves)


def _is_bounce(path: Path, folder: Path) -> bool:
    try:
        relative = path.resolve().relative_to(folder)
    except ValueError:
        return False
    return (path.suffix.lower() in AUDIO_SUFFIXES and OUT_FOLDER not in relative.parts[:-1]
            and not path.name.startswith("."))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def watch_folder(folder: str | Path, target: Target, options: MasterOptions, watch: WatchOptions,
                 say: Callable[[str], None], plugins: str | None = None,
                 stop: threading.Event | None = None) -> int:
    """Watch ``folder`` until Ctrl-C, ``stop`` is set, or ``watch.stop_after`` bounces were taken;
    ``say`` gets one line per bounce. Returns the number of bounces processed."""
    from watchfiles import Change
    from watchfiles import watch as watch_changes

    folder = Path(folder)
    if not folder.exists():
        raise InputNotFoundError("does not exist: nothing to watch", folder)
    if not folder.is_dir():
        raise MixbridgeError("is a file, not a folder; watch the folder the DAW bounces into", folder)
    if watch.export == "rfxchain" and not plugins:
        raise MixbridgeError("a REAPER FX chain holds VST3 plugins: name a plugin map", folder)
    folder = folder.resolve()
    stop = stop or threading.Event()
    waiting: dict[Path, tuple[tuple[int, int], float]] = {}  # bounce -> (stamp, when it was last seen to change)
    done: dict[Path, tuple[int, int]] = {}  # bounce -> the stamp it was taken (processed or skipped) at
    taken = processed = 0
    options = replace(options, overwrite=True)  # a bounce bounced again replaces its master
    say(f"watching {folder} (outputs in {OUT_FOLDER}/ beside each bounce; Ctrl-C to stop)")
    for changes in watch_changes(folder, stop_event=stop, rust_timeout=int(POLL_S * 1000), yield_on_timeout=True,
                                 debounce=int(POLL_S * 1000), step=50, raise_interrupt=True):
        now = time.monotonic()
        for change, name in changes:
            path = Path(name)
            if change != Change.deleted and _is_bounce(path, folder):
                stamp = _stamp(path)
                if stamp is not None and done.get(path) != stamp:
                    waiting[path] = (stamp, now)
        for path, (stamp, since) in list(waiting.items()):
            current = _stamp(path)
            if current is None:  # deleted while it was being written
                del waiting[path]
                continue
            if current != stamp:
                waiting[path] = (current, now)
                continue
            if now - since < watch.settle_s:
                continue
            del waiting[path]
            done[path] = current
            taken += 1
            try:
                audio_io.info(path)  # opens as audio: a header the DAW has not finished fails here
                say(process_bounce(path, target, options, watch, plugins))
                processed += 1
            except MixbridgeError as exc:
                say(f"skipped {path.name}: {exc} (taken again when it changes)")
            except OSError as exc:  # e.g. deleted or moved while it was read
                say(f"skipped {path.name}: {exc.strerror or exc} (taken again when it changes)")
            except Exception as exc:  # a bug on one bounce must not stop the watcher
                log.exception("internal error on %s", path)
                say(f"skipped {path.name}: internal error ({type(exc).__name__}: {exc}); run with -v for details")
            if _stamp(path) != current:  # rewritten while it was processed: take it again
                done.pop(path, None)
            if watch.stop_after is not None and taken >= watch.stop_after:
                stop.set()
        if stop.is_set():
            break
    return processed
