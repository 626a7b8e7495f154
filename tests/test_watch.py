"""``mixbridge watch``: a bounce written slowly is taken once, after it is finished; our own
outputs never trigger it again; a corrupt bounce, or one deleted while it is written, is
skipped and the watcher goes on; a bounded run stops by itself; a bad folder is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_master import groove

from mixbridge.analysis.errors import InputNotFoundError, MixbridgeError
from mixbridge.assistant.master import resolve_target
from mixbridge.assistant.options import MasterOptions
from mixbridge.assistant.watch import OUT_FOLDER, WatchOptions, watch_folder

SR = 22050
SETTLE_S = 0.6


def _run(folder: Path, watch: WatchOptions, stop_after_s: float | None = None):
    """watch_folder in a thread; returns (lines, thread, stop event)."""
    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=watch_folder, args=(folder, resolve_target("spotify"), MasterOptions(engine="dsp"),
                                                          watch, lines.append), kwargs={"stop": stop}, daemon=True)
    thread.start()
    time.sleep(0.5)  # the watcher is up before anything is written
    if stop_after_s is not None:
        threading.Timer(stop_after_s, stop.set).start()
    return lines, thread, stop


def _write_slowly(path: Path, seconds: float = 8.0, parts: int = 6, pause_s: float = 0.2) -> float:
    """Write a bounce in ``parts`` chunks with pauses (a DAW rendering); returns when it finished."""
    x = np.tile(groove(SR, 2.0), int(seconds // 2)).T
    with sf.SoundFile(str(path), "w", SR, 2, "PCM_24") as f:
        for chunk in np.array_split(x, parts):
            f.write(chunk)
            f.flush()
            time.sleep(pause_s)
    return time.time()


def test_a_slow_bounce_is_taken_once_after_it_finishes_and_our_outputs_never_retrigger(tmp_path):
    lines, thread, stop = _run(tmp_path, WatchOptions(settle_s=SETTLE_S, html=False), stop_after_s=6.0)
    finished = _write_slowly(tmp_path / "take.wav")
    thread.join(15)
    assert not thread.is_alive()
    bounces = [line for line in lines if line.startswith("take.wav")]
    assert len(bounces) == 1, lines  # once, and the outputs written beside it did not trigger it again
    assert "LUFS" in bounces[0]
    out = tmp_path / OUT_FOLDER
    chain = out / "take.chain.json"
    assert chain.exists() and (out / "take.suggestion.txt").exists()
    assert chain.stat().st_mtime >= finished  # after the last write, not on a half-written file
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_corrupt_or_vanished_bounce_is_skipped_and_the_watcher_goes_on(tmp_path):
    lines, thread, stop = _run(tmp_path, WatchOptions(settle_s=SETTLE_S, stop_after=2))
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    gone = tmp_path / "gone.wav"
    sf.write(str(gone), groove(SR, 1.0).T, SR)
    gone.unlink()  # deleted before it settled: never taken
    time.sleep(SETTLE_S + 0.5)
    _write_slowly(tmp_path / "good.wav", parts=2)
    thread.join(20)
    assert not thread.is_alive(), lines  # stop_after: the bounded run stops by itself
    assert any(line.startswith("skipped broken.wav") and "cannot be decoded" in line for line in lines), lines
    assert any(line.startswith("good.wav") for line in lines), lines
    assert not any("gone.wav" in line for line in lines)


def test_master_html_and_dawproject_for_a_bounce(tmp_path):
    lines, thread, stop = _run(tmp_path, WatchOptions(settle_s=SETTLE_S, master=True, html=True, export="dawproject",
                                                      stop_after=1))
    _write_slowly(tmp_path / "mix.wav", parts=2)
    thread.join(30)
    out = tmp_path / OUT_FOLDER
    assert sorted(p.name for p in out.iterdir()) == ["mix-master.wav", "mix.chain.json", "mix.dawproject",
                                                     "mix.html", "mix.suggestion.txt"]
    assert "→ -14.0 LUFS" in lines[-1]


def test_a_bad_folder_is_refused(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        watch_folder(tmp_path / "missing", resolve_target("spotify"), MasterOptions(), WatchOptions(), print)
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(MixbridgeError, match="is a file, not a folder"):
        watch_folder(tmp_path / "file.wav", resolve_target("spotify"), MasterOptions(), WatchOptions(), print)
