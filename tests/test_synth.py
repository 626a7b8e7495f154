"""The built-in clip generator (models.synth): real FluidSynth renders of music21 corpus scores.

Skipped where the renderer is not installed (apt-get install -y fluidsynth fluid-soundfont-gm).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixbridge.models import synth

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("music21") is None,
                       reason="music21 (the train extra: pip install 'mixbridge[train]') is not installed"),
    pytest.mark.skipif(shutil.which("fluidsynth") is None,
                       reason="fluidsynth is not installed (apt-get install -y fluidsynth)"),
    pytest.mark.skipif(not synth.SOUNDFONT_PATH.is_file(),
                       reason=f"no GM soundfont at {synth.SOUNDFONT_PATH} (apt-get install -y fluid-soundfont-gm)"),
]

SCORE = "bach/bwv66.6.mxl"  # a short 4-part chorale: parses in a fraction of a second
RATE = 32000  # not the default, to check the rate is kept
CLIP_S = 4.0


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("synth")
    return {
        name: synth.render_clip(SCORE, folder / f"{name}.wav", seed=seed, sample_rate=RATE, duration_s=CLIP_S)
        for name, seed in (("a", 1), ("a_again", 1), ("b", 2))
    }


def test_list_scores_deterministic_and_multi_part():
    scores = synth.list_scores()
    assert len(scores) > 500
    assert synth.list_scores(limit=5) == scores[:5]
    assert len({s.split("/")[0] for s in scores[:10]}) == 10  # folders interleaved
    assert not any(s.endswith(".rntxt") for s in scores)


def test_clip_format_level_and_peak(clips):
    from mixbridge.analysis.analyze import analyze_file

    for path in (clips["a"], clips["b"]):
        assert path.is_file()
        info = sf.info(str(path))
        assert info.channels == 2
        assert info.samplerate == RATE
        assert info.frames == round(CLIP_S * RATE)
        assert info.subtype == "FLOAT"
        features = analyze_file(path)
        assert features.integrated_lufs > -50.0
        assert features.sample_peak_dbfs <= -1.0
        assert features.sample_peak_dbfs == pytest.approx(synth.PEAK_DBFS, abs=0.05)
        assert features.clipped_samples == 0


def test_same_seed_same_samples_other_seed_other_audio(clips):
    a, _ = sf.read(str(clips["a"]))
    again, _ = sf.read(str(clips["a_again"]))
    b, _ = sf.read(str(clips["b"]))
    assert np.array_equal(a, again)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) > 0.05


def test_missing_renderer_names_the_package(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(synth.SynthUnavailableError, match="apt-get install -y fluidsynth"):
        synth.render_clip(SCORE, Path("unused.wav"), seed=0)
    monkeypatch.undo()
    monkeypatch.setattr(synth, "SOUNDFONT_PATH", Path("/nonexistent/FluidR3_GM.sf2"))
    with pytest.raises(synth.SynthUnavailableError, match="fluid-soundfont-gm"):
        synth.require_renderer()


def test_unparseable_score_is_skipped_by_render_clips(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "list_scores", lambda limit=None: ["no/such/score.mxl", SCORE])
    seen = []
    paths = synth.render_clips(tmp_path, 2, seed=3, jobs=1, sample_rate=RATE, duration_s=2.0,
                               progress=lambda done, total: seen.append((done, total)))
    assert [p.name for p in paths] == [synth.clip_name(3, 0), synth.clip_name(3, 1)]
    assert seen[-1] == (2, 2)
    # resumable: existing clips are kept, not rendered again
    stamps = [p.stat().st_mtime_ns for p in paths]
    again = synth.render_clips(tmp_path, 2, seed=3, jobs=1, sample_rate=RATE, duration_s=2.0)
    assert again == paths
    assert [p.stat().st_mtime_ns for p in again] == stamps
