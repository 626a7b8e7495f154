"""`mixbridge batch` at scale: a worker process that dies, and the Ray executor.

The Ray tests run against real Ray instances on loopback: one head started for the module
(``ray start --head --block``, stopped by its own pid at the end) and one local instance that
the CLI starts and stops itself. Token authentication uses a token held in the environment,
so nothing is written to the home folder; the drivers are ``mixbridge`` processes, since a
process reads Ray's authentication settings once (this one may have imported Ray already).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_batch import OPTIONS, _music

from mixbridge.analysis.atomic import remove_leftovers
from mixbridge.analysis.errors import UsageError
from mixbridge.assistant.batch import RAY_MAX_RETRIES, WORKER_DIED, check_executor, run_batch
from mixbridge.assistant.cli import main
from mixbridge.assistant.master import resolve_target

RAY_START_TIMEOUT_S = 90.0
RAY_MISSING = "Ray (the cluster extra: pip install 'mixbridge[cluster]') is not installed"
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason=RAY_MISSING)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process we can see."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            table[int(stat.parent.name)] = (ppid, (stat.parent / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return table


def _pool_workers() -> list[int]:
    """Pids of this process's forked children (the pool's workers share our command line)."""
    me = os.getpid()
    table = _processes()
    return [pid for pid, (ppid, cmdline) in table.items() if ppid == me and cmdline == table[me][1]]


def _ray_tasks_under(ancestor: int, title: bytes) -> list[int]:
    """Pids below ``ancestor`` whose process title (Ray names a busy worker after its task) starts with ``title``."""
    table = _processes()

    def below(pid: int) -> bool:
        while pid > 1 and pid in table:
            pid = table[pid][0]
            if pid == ancestor:
                return True
        return False

    return [pid for pid, (_, cmdline) in table.items() if cmdline.startswith(title) and below(pid)]


def test_a_killed_worker_fails_the_files_in_flight_and_the_rest_go_on(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"{i:02d}.wav" for i in range(6)]
    for i, name in enumerate(names):  # 00 is long and goes first; the other worker does short ones
        _music(src / name, 10 + i, seconds=60.0 if i == 0 else 5.0)
    killed: list[int] = []

    def kill_a_worker_once_one_file_is_done():  # a short one: 00 is still in flight, and the next one
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            manifest = out / "manifest.jsonl"
            if manifest.exists() and manifest.read_text().strip():
                workers = _pool_workers()
                if workers:
                    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer does
                    killed.append(workers[0])
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker_once_one_file_is_done, daemon=True)
    killer.start()
    target = resolve_target("spotify")
    summary = run_batch(src, out, target, OPTIONS, jobs=2)
    killer.join(timeout=5)
    assert killed, "no pool worker was found to kill"
    rows = _rows(out)
    assert sorted(Path(r["input"]).name for r in rows) == names  # every file reported, once
    failed = [r for r in rows if r["status"] == "failed"]
    # the files in flight (one per worker at most) failed; the ones not started went on in a new pool
    assert "00.wav" in {Path(r["input"]).name for r in failed}
    assert 1 <= summary.failed == len(failed) <= 2
    assert summary.done == len(names) - len(failed)
    assert all(r["code"] == "worker" and r["error"] == WORKER_DIED for r in failed)
    assert not list(out.rglob("*.part"))
    assert all(Path(r["output"]).exists() for r in rows if r["status"] == "done")
    # the failed files are mastered by a re-run, the others are skipped
    again = run_batch(src, out, target, OPTIONS, jobs=2)
    assert (again.done, again.skipped, again.failed) == (len(failed), len(names) - len(failed), 0)


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    out = tmp_path / "a.wav"
    out.write_bytes(b"finished")
    left = tmp_path / ".a.wav.k2j4.part"
    other = tmp_path / ".b.wav.k2j4.part"
    left.write_bytes(b"half")
    other.write_bytes(b"half")
    assert remove_leftovers(out) == [left]
    assert out.exists() and other.exists() and not left.exists()


# ---- executor choice and errors ------------------------------------------------------------

def test_unknown_executor_and_an_address_without_ray_are_refused():
    with pytest.raises(UsageError, match="unknown executor 'dask'"):
        check_executor("dask")
    with pytest.raises(UsageError, match="needs the ray executor"):
        check_executor("local", "head:6379")


@needs_ray
def test_a_ray_address_that_is_not_host_port_is_refused():
    with pytest.raises(UsageError, match="'head' is not HOST:PORT"):
        check_executor("ray", "head")


def test_ray_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'mixbridge\[cluster\]'"):
        check_executor("ray")


@needs_ray
def test_an_unreachable_ray_address_is_one_quick_clear_error(tmp_path, capsys):
    closed = f"127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(UsageError, match=f"cannot reach the Ray cluster at {closed}"):
        run_batch(tmp_path, tmp_path / "out", resolve_target("spotify"), OPTIONS, executor="ray", address=closed)
    code = main(["batch", str(tmp_path), "-o", str(tmp_path / "out"), "--executor", "ray", "--address", closed])
    assert code == UsageError.exit_code
    assert f"cannot reach the Ray cluster at {closed}" in capsys.readouterr().err
    assert time.perf_counter() - start < 10.0


@needs_ray
def test_a_ray_head_that_does_not_answer_is_given_up_after_the_timeout():
    with socket.socket() as server:  # a listener whose backlog is full drops new connections unanswered
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        address = "127.0.0.1:%d" % server.getsockname()[1]
        with socket.create_connection(server.getsockname()):
            start = time.perf_counter()
            with pytest.raises(UsageError, match=f"cannot reach the Ray cluster at {address} \\(timed out\\)"):
                check_executor("ray", address, timeout_s=0.5)
            assert time.perf_counter() - start < 5.0


# ---- real Ray instances --------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_env():
    """Token authentication with a token in the environment (this process and its children),
    and Ray's session files in a short temporary folder (its socket paths must stay short)."""
    pytest.importorskip("ray", reason=RAY_MISSING)
    folder = tempfile.mkdtemp(prefix="mb-ray-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "token")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        mp.setenv("RAY_TMPDIR", folder)
        yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class RayHead:
    address: str
    pid: int  # of `ray start --block`, the ancestor of the head's processes


@pytest.fixture(scope="module")
def ray_head(ray_env):
    """A Ray head on 127.0.0.1 with 2 CPUs, for the module."""
    port = _free_port()
    log_path = ray_env / "ray-start.log"
    with open(log_path, "wb") as log_file:
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
             f"--temp-dir={ray_env / 'head'}"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + RAY_START_TIMEOUT_S
        while True:
            if head.poll() is not None:
                pytest.fail(f"ray start exited ({head.returncode}): {log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the Ray head did not listen within {RAY_START_TIMEOUT_S} s")
                time.sleep(0.2)
        yield RayHead(f"127.0.0.1:{port}", head.pid)
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops every process it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`mixbridge` in a fresh process: Ray reads its authentication settings once per process."""
    return subprocess.run([sys.executable, "-c", "import sys; from mixbridge.assistant.cli import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=300)


def test_ray_cluster_masters_like_the_local_pool_and_resumes(ray_head, tmp_path):
    src = tmp_path / "in"
    _music(src / "a.wav", 1)
    _music(src / "album" / "b.flac", 2)
    (src / "album" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    run_batch(src, tmp_path / "local", resolve_target("spotify"), OPTIONS, jobs=1)
    flags = ("--target", "spotify", "--engine", "dsp", "--no-refine", "--executor", "ray", "--address", ray_head.address)
    first = _cli("batch", str(src), "-o", str(tmp_path / "ray"), *flags)
    assert first.returncode == 8, first.stderr[-2000:]
    assert "2 mastered, 0 unchanged (skipped), 1 failed" in first.stdout
    assert "3/3 files, 1 failed" in first.stderr
    for name in ("a.wav", "album/b.wav"):
        a, _ = sf.read(tmp_path / "local" / name)
        b, _ = sf.read(tmp_path / "ray" / name)
        assert np.array_equal(a, b)
    local_rows = {Path(r["input"]).name: r for r in _rows(tmp_path / "local")}
    for r in _rows(tmp_path / "ray"):
        twin = local_rows[Path(r["input"]).name]
        assert (r["status"], r["content_hash"], r["settings_hash"]) == (twin["status"], twin["content_hash"],
                                                                         twin["settings_hash"])
    again = _cli("batch", str(src), "-o", str(tmp_path / "ray"), *flags)
    assert "0 mastered, 2 unchanged (skipped), 1 failed" in again.stdout, again.stderr[-2000:]


def test_a_ray_task_whose_worker_keeps_dying_is_recorded_as_failed(ray_head, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _music(src / "long.wav", 1, seconds=90.0)
    _music(src / "short.wav", 2, seconds=2.0)
    killed: list[int] = []

    def kill_every_attempt_on_the_long_file():  # the first try and its one retry (RAY_MAX_RETRIES)
        deadline = time.monotonic() + 120
        while len(killed) < 1 + RAY_MAX_RETRIES and time.monotonic() < deadline:
            if (out / "manifest.jsonl").exists():  # short.wav is done: the long one is the task running
                for pid in _ray_tasks_under(ray_head.pid, b"ray::_ray_master_one"):
                    if pid not in killed:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_every_attempt_on_the_long_file, daemon=True)
    killer.start()
    done = _cli("batch", str(src), "-o", str(out), "--engine", "dsp", "--no-refine", "--executor", "ray",
                "--address", ray_head.address)
    killer.join(timeout=5)
    assert done.returncode == 8, done.stderr[-2000:]
    rows = {Path(r["input"]).name: r for r in _rows(out)}
    assert rows["short.wav"]["status"] == "done"
    assert rows["long.wav"]["code"] == "worker" and "Ray worker process or node died" in rows["long.wav"]["error"]
    assert len(killed) == 1 + RAY_MAX_RETRIES
    assert not (out / "long.wav").exists() and not list(out.rglob("*.part"))


def test_cli_ray_executor_starts_and_stops_a_local_instance(ray_env, tmp_path):
    src = tmp_path / "in"
    _music(src / "a.wav", 1)
    _music(src / "b.wav", 2)
    done = _cli("batch", str(src), "-o", str(tmp_path / "out"), "--engine", "dsp", "--no-refine",
                "--executor", "ray", "--jobs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 mastered, 0 unchanged (skipped), 0 failed" in done.stdout
    assert "2/2 files, 0 failed" in done.stderr
    assert {Path(r["input"]).name for r in _rows(tmp_path / "out") if r["status"] == "done"} == {"a.wav", "b.wav"}
