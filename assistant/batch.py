"""Batch mastering of a folder tree: parallel, resumable, one bad file never stops the run.

``run_batch`` masters every audio file under ``in_dir`` into the same relative path under
``out_dir`` (as WAV), in ``jobs`` processes; with ``album``, one loudness decision for the set. Each finished file appends one JSON line to
``out_dir/manifest.jsonl`` (status, hashes, before/after metrics, error). A re-run skips files
whose content hash and settings hash match a ``done`` line and whose output still exists.
Outputs are written atomically, so an interrupted run leaves no partial file and a manifest
that resumes correctly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from assistant.audio import READ_EXTENSIONS
from assistant.errors import MixbridgeError, UsageError
from assistant.targets import Target

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
OUTPUT_SUFFIX = ".wav"


@dataclass(frozen=True)
class BatchOptions:
    engine: str = "model"
    refine: bool = True
    bit_depth: str = "24"
    max_limiting_db: float = 10.0


@dataclass(frozen=True)
class Task:
    input_path: str
    output_path: str
    content_hash: str
    settings_hash: str
    target: Target


def find_inputs(in_dir: Path, out_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs for every audio file under ``in_dir``, the tree mirrored in ``out_dir``.

    Raises UsageError for a missing or empty input folder, an output folder inside the input
    folder, or two inputs that would write the same output.
    """
    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    if not in_dir.is_dir():
        raise UsageError("is not a folder", in_dir)
    if out_dir == in_dir or in_dir in out_dir.parents:
        raise UsageError(f"the output folder {out_dir} is inside the input folder; choose one outside it", in_dir)
    inputs = sorted(p for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in READ_EXTENSIONS)
    if not inputs:
        raise UsageError("holds no audio files (" + ", ".join(e.lstrip(".") for e in READ_EXTENSIONS) + ")", in_dir)
    pairs, seen = [], {}
    for path in inputs:
        out = (out_dir / path.relative_to(in_dir)).with_suffix(OUTPUT_SUFFIX)
        if out in seen:
            raise UsageError(f"{seen[out].name} and {path.name} would both write {out}; rename one", path.parent)
        seen[out] = path
        pairs.append((path, out))
    return pairs


def file_hash(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def settings_hash(target: Target, options: BatchOptions) -> str:
    from assistant.features import FEATURE_VERSION
    from effects.schema import SCHEMA_VERSION

    blob = json.dumps({"target": asdict(target), "options": asdict(options), "features": FEATURE_VERSION,
                       "schema": SCHEMA_VERSION}, sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """The last ``done`` line per input in the manifest (unreadable lines are ignored)."""
    done: dict[str, dict] = {}
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if row.get("status") == "done":
            done[row["input"]] = row
    return done


def _append(out_dir: Path, row: dict) -> None:
    with open(Path(out_dir) / MANIFEST, "a") as f:
        f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def album_targets(inputs: list[Path], target: Target) -> dict[Path, Target]:
    """One loudness decision for a set (AES TD1008): the loudest track lands on the target and
    every other track keeps its level difference to it; each keeps the true-peak ceiling.

    Files that cannot be measured are left out (their own mastering then reports the error).
    """
    from assistant.analyze import analyze_file_cached

    loudness = {}
    for path in inputs:
        try:
            value = analyze_file_cached(path).integrated_lufs
        except MixbridgeError:
            continue
        if math.isfinite(value):
            loudness[path] = value
    if not loudness:
        return {}
    loudest = max(loudness.values())
    return {p: replace(target, name=f"{target.name} (album)", lufs=target.lufs + (lufs - loudest))
            for p, lufs in loudness.items()}


def _master_one(task: Task, options: BatchOptions) -> dict:
    """Worker: master one file; never raises (the error goes into the row)."""
    from assistant.master import master_file

    target = task.target
    row = {"input": task.input_path, "output": task.output_path, "content_hash": task.content_hash,
           "settings_hash": task.settings_hash, "target_lufs": target.lufs}
    start = time.perf_counter()
    try:
        Path(task.output_path).parent.mkdir(parents=True, exist_ok=True)
        report = master_file(task.input_path, task.output_path, target, engine=options.engine,
                             refine=options.refine, bit_depth=options.bit_depth, overwrite=True,
                             max_limiting_db=options.max_limiting_db)
    except MixbridgeError as exc:
        return {**row, "status": "failed", "error": str(exc), "code": exc.code}
    except Exception as exc:  # a bug on one file must not stop the batch
        log.exception("internal error on %s", task.input_path)
        return {**row, "status": "failed", "error": f"internal error: {exc}", "code": "internal"}
    b, a = report.input_features, report.output_features

    def finite(v: float) -> float | None:
        return round(v, 3) if math.isfinite(v) else None

    return {**row, "status": "done", "seconds": round(time.perf_counter() - start, 2),
            "before": {"lufs": finite(b.integrated_lufs), "true_peak_dbtp": finite(b.true_peak_dbtp),
                       "lra_lu": finite(b.loudness_range_lu)},
            "after": {"lufs": finite(a.integrated_lufs), "true_peak_dbtp": finite(a.true_peak_dbtp),
                      "lra_lu": finite(a.loudness_range_lu)},
            "settings": report.settings.to_dict(), "warnings": list(report.warnings)}


def _one_thread_per_worker() -> None:
    """Files run in parallel: each worker keeps its math libraries to one thread."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@dataclass(frozen=True)
class BatchSummary:
    done: int
    skipped: int
    failed: int
    seconds: float


def run_batch(in_dir: Path, out_dir: Path, target: Target, options: BatchOptions = BatchOptions(),
              jobs: int = 1, progress: Callable[[str], None] | None = None, album: bool = False) -> BatchSummary:
    """Master a folder tree; see the module docstring. ``album``: see :func:`album_targets`."""
    pairs = find_inputs(in_dir, out_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(out_dir)
    targets = album_targets([src for src, _ in pairs], target) if album else {}
    tasks, skipped = [], 0
    for src, dst in pairs:
        own = targets.get(src, target)
        s_hash = settings_hash(own, options)
        content = file_hash(src)
        old = previous.get(str(src))
        if old and old["content_hash"] == content and old["settings_hash"] == s_hash and dst.exists():
            skipped += 1
            continue
        tasks.append(Task(str(src), str(dst), content, s_hash, own))
    done = failed = 0
    start = time.perf_counter()

    def report(row: dict) -> None:
        nonlocal done, failed
        _append(out_dir, row)
        done += row["status"] == "done"
        failed += row["status"] == "failed"
        if progress:
            finished = done + failed
            eta = (time.perf_counter() - start) / finished * (len(tasks) - finished)
            progress(f"{finished}/{len(tasks)} files, {failed} failed, ETA {eta:.0f} s"
                     + (f" — {Path(row['input']).name}: {row['error']}" if row["status"] == "failed" else ""))

    if jobs <= 1:
        for task in tasks:
            report(_master_one(task, options))
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread_per_worker) as pool:
            futures = [pool.submit(_master_one, task, options) for task in tasks]
            try:
                for future in as_completed(futures):
                    report(future.result())
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return BatchSummary(done, skipped, failed, time.perf_counter() - start)
