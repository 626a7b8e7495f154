"""Batch mastering of a folder tree: parallel, resumable, one bad file never stops the run.

``run_batch`` masters every audio file under ``in_dir`` into the same relative path under
``out_dir`` (as WAV), in ``jobs`` processes; with ``album``, one loudness decision for the set. Each finished file appends one JSON line to
``out_dir/manifest.jsonl`` (status, hashes, before/after metrics, error). A re-run skips files
whose content hash and settings hash match a ``done`` line and whose output still exists; a
file whose size and modification time (ns) are those recorded on that line is not read again
(the reference-analysis cache trusts the same stamp), so a resume that finds nothing new is
quick. A new file is hashed by the worker that masters it, not serially by the parent.
Outputs are written atomically, so an interrupted run leaves no partial file and a manifest
that resumes correctly.

Where the files run is chosen here and only here: ``executor="local"`` (in this process for
one job, else a process pool) or ``executor="ray"`` (Ray tasks on a local Ray instance, or on
a cluster at ``address``). Every executor runs the same :func:`_master_one`, and the parent
alone writes the manifest, so rows, progress and resume do not depend on the executor. A
worker process that dies (killed by the out-of-memory killer, say) fails with a ``worker``
error the files in flight in its pool (on Ray: its own file, after one retry); the other
files go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from mixbridge.analysis.atomic import remove_leftovers
from mixbridge.analysis.audio import READ_EXTENSIONS
from mixbridge.analysis.errors import MixbridgeError, UnreadableAudioError, UsageError
from mixbridge.analysis.progress import Progress
from mixbridge.assistant.options import MasterOptions
from mixbridge.assistant.targets import Target

log = logging.getLogger(__name__)

INDEX_PAGE = "index.html"  # with --html: the catalogue's page
MANIFEST = "manifest.jsonl"
OUTPUT_SUFFIX = ".wav"
EXECUTORS = ("local", "ray")
RAY_INSTALL_HINT = "pip install 'mixbridge[cluster]'"
RAY_CONNECT_TIMEOUT_S = 5.0  # a Ray head that does not answer a TCP connect by then is reported unreachable
RAY_MAX_RETRIES = 1  # a Ray task whose worker or node died is tried once more, then recorded as failed
WORKER_DIED = ("worker process died while this file was in flight (killed from outside, e.g. by the "
               "out-of-memory killer; the death of one pool worker stops every file in flight); "
               "re-run the batch to retry it")


@dataclass(frozen=True)
class Task:
    input_path: str
    output_path: str
    content_hash: str | None  # None: not hashed yet (a new file); the worker hashes it
    settings_hash: str
    target: Target
    html_path: str | None = None  # write the master's report page here


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
    pairs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for path in inputs:
        out = (out_dir / path.relative_to(in_dir)).with_suffix(OUTPUT_SUFFIX)
        if out in seen:
            raise UsageError(f"{seen[out].name} and {path.name} would both write {out}; rename one", path.parent)
        seen[out] = path
        pairs.append((path, out))
    return pairs


def file_hash(path: str | Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def settings_hash(target: Target, options: MasterOptions) -> str:
    from mixbridge.analysis.features import FEATURE_VERSION
    from mixbridge.effects.schema import SCHEMA_VERSION

    blob = json.dumps({"target": asdict(target), "options": asdict(options), "features": FEATURE_VERSION,
                       "schema": SCHEMA_VERSION}, sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def read_manifest(out_dir: Path, statuses: tuple[str, ...] = ("done",)) -> dict[str, dict]:
    """The last line per input in the manifest among those of ``statuses`` (unreadable lines are ignored)."""
    done: dict[str, dict] = {}
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if row.get("status") in statuses:
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
    from mixbridge.analysis.analyze import analyze_file_cached

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


def _task_row(task: Task) -> dict:
    return {"input": task.input_path, "output": task.output_path, "content_hash": task.content_hash,
            "settings_hash": task.settings_hash, "target_lufs": task.target.lufs}


def _failed_row(task: Task, error: str, code: str) -> dict:
    return {**_task_row(task), "status": "failed", "error": error, "code": code}


def _master_one(task: Task, options: MasterOptions) -> dict:
    """Worker: master one file; never raises (the error goes into the row)."""
    from mixbridge.assistant.master import master_file

    target = task.target
    row = _task_row(task)
    start = time.perf_counter()
    try:
        stat = os.stat(task.input_path)  # before reading: a file changed meanwhile is hashed again next time
        row.update(content_hash=task.content_hash or file_hash(task.input_path), size_bytes=stat.st_size,
                   mtime_ns=stat.st_mtime_ns)
    except OSError as exc:
        return {**row, "status": "failed", "error": f"{task.input_path}: cannot be read ({exc.strerror or exc})",
                "code": UnreadableAudioError.code}
    try:
        Path(task.output_path).parent.mkdir(parents=True, exist_ok=True)
        report = master_file(task.input_path, task.output_path, target, replace(options, overwrite=True))
    except MixbridgeError as exc:
        return {**row, "status": "failed", "error": str(exc), "code": exc.code}
    except Exception as exc:  # a bug on one file must not stop the batch
        log.exception("internal error on %s", task.input_path)
        return {**row, "status": "failed", "error": f"internal error: {exc}", "code": "internal"}
    b, a = report.input_features, report.output_features
    page_warning = []
    if task.html_path:
        try:
            from mixbridge.assistant.html_report import master_page

            master_page(report, task.html_path)
            row["html"] = task.html_path
        except (MixbridgeError, OSError, ValueError) as exc:  # the master stands; say why its page is missing
            page_warning = [f"report page not written: {exc}"]

    def finite(v: float) -> float | None:
        return round(v, 3) if math.isfinite(v) else None

    return {**row, "status": "done", "seconds": round(time.perf_counter() - start, 2),
            "before": {"lufs": finite(b.integrated_lufs), "true_peak_dbtp": finite(b.true_peak_dbtp),
                       "lra_lu": finite(b.loudness_range_lu)},
            "after": {"lufs": finite(a.integrated_lufs), "true_peak_dbtp": finite(a.true_peak_dbtp),
                      "lra_lu": finite(a.loudness_range_lu)},
            "settings": report.settings.to_dict(), "moves": [m.text for m in report.moves],
            "profile": report.target.profile.name, "warnings": list(report.warnings) + page_warning}


def _one_thread_per_worker() -> None:
    """Files run in parallel: each worker keeps its math libraries, and each file's work, to
    one thread."""
    from threadpoolctl import threadpool_limits

    from mixbridge.analysis.blocks import serial_within_file

    threadpool_limits(1)
    serial_within_file()


# ---- executors: each turns tasks into manifest rows, in the order the files finish ----------

def _serial_rows(tasks: list[Task], options: MasterOptions) -> Iterator[dict]:
    for task in tasks:
        yield _master_one(task, options)


_started: Any = None  # in a pool worker: the queue that tells the parent which file it starts


def _init_pool_worker(started) -> None:
    global _started
    _started = started
    _one_thread_per_worker()


def _pool_master_one(task: Task, options: MasterOptions) -> dict:
    _started.put(task.input_path)
    return _master_one(task, options)


def _pool_rows(tasks: list[Task], options: MasterOptions, jobs: int) -> Iterator[dict]:
    """Local process pool. If a worker dies, ``concurrent.futures`` breaks the whole pool: the
    files that had started and not finished (each worker says when it starts one) are recorded
    as failed, and the files not started yet go on in a fresh pool."""
    remaining = list(tasks)
    while remaining:
        context = multiprocessing.get_context()
        started_queue = context.SimpleQueue()
        started: set[str] = set()
        finished: set[str] = set()
        lost: list[Task] = []
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(remaining)), mp_context=context,
                                   initializer=_init_pool_worker, initargs=(started_queue,))
        try:
            futures = {pool.submit(_pool_master_one, task, options): task for task in remaining}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    row = future.result()
                except BrokenProcessPool:
                    lost.append(task)
                    continue
                except Exception as exc:  # e.g. a result that cannot be sent back: one file, not the batch
                    log.exception("internal error on %s", task.input_path)
                    row = _failed_row(task, f"internal error: {exc}", "internal")
                finished.add(task.input_path)
                yield row
        except BaseException:  # interrupted, or the caller stopped: drop the queued files
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if not lost:
            return
        while not started_queue.empty():
            started.add(started_queue.get())
        started_queue.close()
        in_flight = [t for t in lost if t.input_path in started]
        log.warning("a worker process died; %d file(s) in flight recorded as failed, %d go on in a new pool",
                    len(in_flight), len(lost) - len(in_flight))
        for task in in_flight:
            yield _failed_row(task, WORKER_DIED, "worker")
        if not in_flight and not finished:  # the pool broke before any file started: it would again
            for task in lost:
                yield _failed_row(task, "the worker processes died before starting any file", "worker")
            return
        remaining = [t for t in lost if t.input_path not in started]


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"Ray address {address!r} is not HOST:PORT (the head's port, 6379 unless "
                         "`ray start --head --port` chose another)")
    return host.strip("[]"), int(port)


def check_executor(executor: str, address: str | None = None,
                   timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail fast, before any file is hashed: an unknown executor, an address without Ray, Ray
    not installed, or a Ray head that cannot be reached within ``timeout_s`` (a TCP connect,
    so a wrong address never hangs) raise :class:`UsageError` naming the problem."""
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if executor != "ray":
        if address:
            raise UsageError(f"a Ray address ({address}) needs the ray executor")
        return
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"the ray executor needs Ray, which is not installed ({exc}); "
                         f"install it with: {RAY_INSTALL_HINT}") from exc
    if not address or address == "auto":
        return
    host, port = _split_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address} ({exc or 'timed out'}); is "
                         "`ray start --head` running there, and is the port open from this machine?") from exc


def _ray_master_one(task: Task, options: MasterOptions) -> dict:
    _one_thread_per_worker()
    return _master_one(task, options)


def _ray_rows(tasks: list[Task], options: MasterOptions, jobs: int, address: str | None) -> Iterator[dict]:
    """Ray tasks: on a local Ray instance with ``jobs`` CPUs, or on the cluster at ``address``
    (inputs and outputs must then be at the same paths on every node: a shared filesystem)."""
    import ray
    from ray import exceptions as ray_errors

    own_session = not ray.is_initialized()
    if not own_session:
        log.info("using the Ray session already open in this process")
    elif address:
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
        except Exception as exc:  # refused, not a Ray head, wrong authentication token, other Ray version...
            raise UsageError(f"cannot connect to the Ray cluster at {address} ({type(exc).__name__}: {exc}); "
                             "is it a Ray head of the same Ray version, with the same token?") from exc
    else:
        ray.init(num_cpus=max(1, jobs), include_dashboard=False, logging_level=logging.WARNING)
    try:
        remote = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(_ray_master_one)
        refs = {remote.remote(task, options): task for task in tasks}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            task = refs.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except (ray_errors.WorkerCrashedError, ray_errors.NodeDiedError, ray_errors.OutOfMemoryError) as exc:
                row = _failed_row(task, f"Ray worker process or node died while this file was in flight, "
                                        f"{1 + RAY_MAX_RETRIES} times ({type(exc).__name__}; out of memory?); "
                                        "re-run the batch to retry it", "worker")
            except ray_errors.RayError as exc:
                first_line = next(iter(str(exc).strip().splitlines()), "")
                row = _failed_row(task, f"Ray task failed: {type(exc).__name__}: {first_line}", "worker")
            yield row
    finally:
        if own_session:
            ray.shutdown()


def _size_bytes(task: Task) -> int:
    try:
        return os.path.getsize(task.input_path)
    except OSError:
        return 0  # gone since it was hashed: its own mastering reports that


def _rows(tasks: list[Task], options: MasterOptions, jobs: int, executor: str, address: str | None) -> Iterable[dict]:
    if not tasks:
        return ()  # nothing to master: no pool, no Ray session (a resume that finds nothing new is quick)
    if executor == "ray" or jobs > 1:
        # Longest first: a long file started last would leave the other workers idle at the end.
        tasks = sorted(tasks, key=_size_bytes, reverse=True)
    if executor == "ray":
        return _ray_rows(tasks, options, jobs, address)
    return _pool_rows(tasks, options, jobs) if jobs > 1 else _serial_rows(tasks, options)


@dataclass(frozen=True)
class BatchSummary:
    done: int
    skipped: int
    failed: int
    seconds: float


def run_batch(in_dir: Path, out_dir: Path, target: Target, options: MasterOptions = MasterOptions(), *,
              jobs: int = 1, progress: Progress | None = None, album: bool = False,
              executor: str = "local", address: str | None = None, html: bool = False) -> BatchSummary:
    """Master a folder tree; see the module docstring. ``album``: see :func:`album_targets`.
    ``html``: a report page next to each master and ``out_dir/index.html`` (:data:`INDEX_PAGE`)
    listing every file of the manifest, failed ones with their error.

    ``executor``: ``"local"`` (``jobs`` processes) or ``"ray"`` (Ray tasks; a local Ray
    instance with ``jobs`` CPUs, or the cluster at ``address``, e.g. ``"head:6379"``, whose
    CPUs then set the parallelism). See :func:`check_executor` for the errors.
    """
    check_executor(executor, address)
    pairs = find_inputs(in_dir, out_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = read_manifest(out_dir)
    targets = album_targets([src for src, _ in pairs], target) if album else {}
    tasks, skipped = [], 0
    for src, dst in pairs:
        own = targets.get(src, target)
        s_hash = settings_hash(own, options)
        old = previous.get(str(src))
        content = None
        if old and old["settings_hash"] == s_hash and dst.exists():
            stat = src.stat()
            if (old.get("size_bytes"), old.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
                skipped += 1  # the stamp recorded when it was hashed: not read again
                continue
            content = file_hash(src)
            if content == old["content_hash"]:
                skipped += 1
                continue
        tasks.append(Task(str(src), str(dst), content, s_hash, own, str(dst.with_suffix(".html")) if html else None))
    done = failed = 0
    start = time.perf_counter()

    def report(row: dict) -> None:
        nonlocal done, failed
        if row.get("code") == "worker":  # a killed worker runs no clean-up: its temporary output stays
            for leftover in remove_leftovers(row["output"]):
                log.info("removed %s, left by a worker process that died", leftover)
        _append(out_dir, row)
        done += row["status"] == "done"
        failed += row["status"] == "failed"
        if row["status"] == "failed":
            log.warning("%s", row["error"])
        if progress:
            finished = done + failed
            eta = (time.perf_counter() - start) / finished * (len(tasks) - finished)
            progress(f"{finished}/{len(tasks)} files, {failed} failed, ETA {eta:.0f} s", finished, len(tasks))

    for row in _rows(tasks, options, jobs, executor, address):
        report(row)
    if html:
        from mixbridge.assistant.html_report import batch_index

        batch_index(list(read_manifest(out_dir, ("done", "failed")).values()), out_dir / INDEX_PAGE)
    return BatchSummary(done, skipped, failed, time.perf_counter() - start)
