"""`mixbridge batch`: mirrored tree, manifest, resume, one bad file never stops the run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixbridge.analysis.errors import UsageError
from mixbridge.assistant.batch import find_inputs, read_manifest, run_batch
from mixbridge.assistant.cli import main
from mixbridge.assistant.master import resolve_target
from mixbridge.assistant.options import MasterOptions

OPTIONS = MasterOptions(engine="dsp", refine=False)


def _music(path: Path, seed: int, seconds: float = 2.0, rate: int = 44100) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    beat = (np.sin(2 * np.pi * 2 * t) > 0.7) * np.exp(-((t * 2) % 1) * 20)
    x = 0.05 * rng.standard_normal((2, t.size)) * beat + 0.1 * np.sin(2 * np.pi * 110 * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T.astype(np.float32), rate, subtype="PCM_24")
    return path


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "in"
    _music(src / "a.wav", 1)
    _music(src / "album" / "b.flac", 2)
    (src / "album" / "notes.txt").write_text("not audio, not an audio extension")
    (src / "album" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    return src


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_batch_mirrors_the_tree_records_failures_and_resumes(tree, tmp_path):
    out = tmp_path / "out"
    target = resolve_target("spotify")
    summary = run_batch(tree, out, target, OPTIONS, jobs=1)
    assert (summary.done, summary.failed, summary.skipped) == (2, 1, 0)
    assert (out / "a.wav").exists() and (out / "album" / "b.wav").exists()
    rows = {Path(r["input"]).name: r for r in _rows(out)}
    assert rows["broken.wav"]["status"] == "failed" and "broken.wav" in rows["broken.wav"]["error"]
    assert rows["a.wav"]["after"]["lufs"] == pytest.approx(-14.0, abs=0.1)
    assert not list(out.rglob("*.part"))
    # nothing changed: everything done is skipped, the bad file is tried (and fails) again
    again = run_batch(tree, out, target, OPTIONS, jobs=1)
    assert (again.done, again.skipped, again.failed) == (0, 2, 1)
    # a changed input and changed settings are mastered again
    _music(tree / "a.wav", 3)
    changed = run_batch(tree, out, target, OPTIONS, jobs=1)
    assert (changed.done, changed.skipped) == (1, 1)
    louder = run_batch(tree, out, resolve_target(None, lufs=-12.0), OPTIONS, jobs=1)
    assert (louder.done, louder.skipped) == (2, 0)


def test_resume_trusts_the_recorded_stamp_and_hashes_only_touched_files(tree, tmp_path, monkeypatch):
    import mixbridge.assistant.batch as batch

    out = tmp_path / "out"
    target = resolve_target("spotify")
    run_batch(tree, out, target, OPTIONS, jobs=1)
    rows = {Path(r["input"]).name: r for r in _rows(out) if r["status"] == "done"}
    assert rows["a.wav"]["content_hash"] == batch.file_hash(tree / "a.wav")  # hashed by the worker
    assert rows["a.wav"]["size_bytes"] == (tree / "a.wav").stat().st_size
    hashed = []
    real_hash = batch.file_hash
    monkeypatch.setattr(batch, "file_hash", lambda path: hashed.append(Path(path).name) or real_hash(path))
    again = run_batch(tree, out, target, OPTIONS, jobs=1)
    assert (again.done, again.skipped) == (0, 2)
    assert hashed == ["broken.wav"]  # the failed file is tried again; the done ones are not read
    # touched but identical: hashed, found unchanged, skipped
    stamp = (tree / "a.wav").stat()
    os.utime(tree / "a.wav", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    hashed.clear()
    touched = run_batch(tree, out, target, OPTIONS, jobs=1)
    assert (touched.done, touched.skipped) == (0, 2)
    assert sorted(hashed) == ["a.wav", "broken.wav"]


def test_a_deleted_output_is_made_again(tree, tmp_path):
    out = tmp_path / "out"
    target = resolve_target("spotify")
    run_batch(tree, out, target, OPTIONS, jobs=1)
    (out / "a.wav").unlink()
    again = run_batch(tree, out, target, OPTIONS, jobs=1)
    assert (again.done, again.skipped) == (1, 1)


def test_parallel_batch_matches_the_serial_one(tree, tmp_path):
    target = resolve_target("spotify")
    run_batch(tree, tmp_path / "serial", target, OPTIONS, jobs=1)
    run_batch(tree, tmp_path / "parallel", target, OPTIONS, jobs=2)
    for name in ("a.wav", "album/b.wav"):
        a, _ = sf.read(tmp_path / "serial" / name)
        b, _ = sf.read(tmp_path / "parallel" / name)
        assert np.array_equal(a, b)


def test_a_manifest_line_cut_by_a_crash_is_ignored(tree, tmp_path):
    out = tmp_path / "out"
    run_batch(tree, out, resolve_target("spotify"), OPTIONS, jobs=1)
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"input": "half a li')
    assert len(read_manifest(out)) == 2


def test_bad_folders_are_refused(tmp_path, tree):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no audio files"):
        find_inputs(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UsageError, match="inside the input folder"):
        find_inputs(tree, tree / "mastered")
    with pytest.raises(UsageError, match="not a folder"):
        find_inputs(tmp_path / "missing", tmp_path / "out")
    _music(tree / "album" / "b.wav", 4)  # b.flac and b.wav both map to album/b.wav
    with pytest.raises(UsageError, match="would both write"):
        find_inputs(tree, tmp_path / "out")


def test_cli_batch_exits_non_zero_when_a_file_failed(tree, tmp_path, capsys):
    code = main(["batch", str(tree), "-o", str(tmp_path / "out"), "--engine", "dsp", "--no-refine", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 8
    assert "2 mastered" in out and "1 failed" in out


def test_album_mode_keeps_the_level_differences(tmp_path):
    src = tmp_path / "album"
    loud = _music(src / "01-loud.wav", 5)
    quiet = src / "02-quiet.wav"
    x, rate = sf.read(loud)
    sf.write(quiet, x * 10 ** (-6 / 20), rate, subtype="PCM_24")  # the same song 6 dB down
    out = tmp_path / "out"
    target = resolve_target("spotify")
    summary = run_batch(src, out, target, OPTIONS, jobs=1, album=True)
    assert summary.done == 2
    rows = {Path(r["input"]).name: r for r in _rows(out)}
    assert rows["01-loud.wav"]["after"]["lufs"] == pytest.approx(-14.0, abs=0.1)
    assert rows["02-quiet.wav"]["after"]["lufs"] == pytest.approx(-20.0, abs=0.15)
    assert all(r["after"]["true_peak_dbtp"] <= -1.0 for r in rows.values())
    # without --album both land on the target
    plain = run_batch(src, tmp_path / "plain", target, OPTIONS, jobs=1)
    assert plain.done == 2
    assert all(r["after"]["lufs"] == pytest.approx(-14.0, abs=0.1) for r in _rows(tmp_path / "plain"))
