"""The HTML report (``--html``): what the page holds, its bad inputs, and, in Debian's headless
Chromium, that it loads offline without console errors, draws every plot with data, and that
the A/B player switches source at the same playhead with the level-matching gain it states."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_master import groove

from mixbridge.analysis.errors import OutputError
from mixbridge.analysis.features import Features
from mixbridge.assistant import html_report
from mixbridge.assistant.batch import INDEX_PAGE, run_batch
from mixbridge.assistant.master import master_file, resolve_target, suggest_file
from mixbridge.assistant.options import MasterOptions

SR = 44100
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _song(path: Path, seconds: float = 40.0, channels: int = 2) -> Path:
    """A quiet intro, then the groove: the A/B excerpt should come from the groove."""
    x = np.tile(groove(SR, 5.0), int(seconds // 5))
    x[:, : 8 * SR] *= 0.05
    if channels == 1:
        x = x[:1]
    sf.write(str(path), x.T, SR, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def mastered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    mix = _song(folder / "mix.wav")
    report = master_file(mix, folder / "master.wav", resolve_target("spotify"), MasterOptions())
    page = html_report.master_page(report, folder / "report.html", {"the chain (JSON)": report.settings.save(
        folder / "chain.json")})
    return report, page


def test_the_page_is_self_contained_and_holds_every_part(mastered):
    report, page = mastered
    text = page.read_text()
    # nothing fetched: no external script, style, image or link (SVG's xmlns is a name, not a load)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text)
    assert "<link" not in text and "@import" not in text
    for section in ("summary", "ab", "spectrum", "loudness", "limiting", "dynamics", "chain"):
        assert f'id="{section}"' in text, section
    # spectrum (mid and side), loudness, true peak and limiter gain, width: each a chart spec, with data
    assert text.count('class="chart-spec"') == 6
    assert "<script src" not in text and "window.mixbridgeCharts" in text  # the chart library is inline
    assert 'href="chain.json"' in text  # the exported chain, linked relative to the page
    for move in report.moves:
        assert html_report._esc(move.text) in text


def test_the_excerpt_is_the_representative_part():
    """A 90 s track: 30 s of near-silence, then the music: the excerpt lies in the music."""
    st = np.concatenate([np.full(300, -45.0), np.full(600, -12.0)])
    f = Features.from_dict({**_features_dict(), "short_term_lufs": list(st), "duration_s": 90.0,
                            "integrated_lufs": -12.2, "series_hop_s": 0.1})
    start, stop = html_report.representative_span(f)
    assert stop - start == pytest.approx(30.0) and start >= 30.0 - 3.0
    short = Features.from_dict({**_features_dict(), "duration_s": 12.0})
    assert html_report.representative_span(short) == (0.0, 12.0)


def _features_dict() -> dict:
    x = groove(SR, 4.0)
    from mixbridge.analysis.analyze import analyze
    from mixbridge.analysis.audio import Audio

    return analyze(Audio(x.astype(np.float32), SR)).to_dict()


def test_a_mono_master_gets_a_page_that_says_mono(tmp_path):
    mix = _song(tmp_path / "mono.wav", 20.0, channels=1)
    report = master_file(mix, tmp_path / "m.wav", resolve_target("spotify"), MasterOptions())
    text = html_report.master_page(report, tmp_path / "mono.html").read_text()
    assert "mono: no side signal" in text


def test_a_failed_build_leaves_no_file(mastered, tmp_path, monkeypatch):
    report, _ = mastered

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(html_report, "loudness_chart", broken)
    with pytest.raises(RuntimeError):
        html_report.master_page(report, tmp_path / "broken.html")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_page_is_refused_before_any_audio_work(tmp_path):
    mix = _song(tmp_path / "mix.wav", 10.0)
    out = tmp_path / "master.wav"
    for html, code in ((tmp_path / "missing" / "r.html", OutputError.exit_code), (tmp_path / "r.txt", 2)):
        done = subprocess.run([sys.executable, "-m", "mixbridge.assistant.cli", "master", str(mix), "-o", str(out),
                               "--html", str(html)], capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        assert str(html) in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_a_suggestion_page(tmp_path):
    mix = _song(tmp_path / "mix.wav", 20.0)
    suggestion = suggest_file(mix, resolve_target("spotify"))
    text = html_report.suggestion_page(mix, suggestion, tmp_path / "s.html").read_text()
    assert text.count('class="chart-spec"') == 4 and 'id="ab"' not in text and "Nothing was rendered" in text
    assert "mixbridgeAB" not in text  # no player without excerpts


def test_a_batch_index_lists_every_file_and_the_failed_ones_with_their_error(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _song(src / "good.wav", 12.0)
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    summary = run_batch(src, out, resolve_target("spotify"), MasterOptions(), jobs=1, html=True)
    assert (summary.done, summary.failed) == (1, 1)
    index = (out / INDEX_PAGE).read_text()
    assert 'href="good.html"' in index and (out / "good.html").exists()
    assert 'class="failed"' in index and "broken.wav" in index


# ---- in a real browser --------------------------------------------------------------------------

def _browser_or_skip():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests need {', '.join(missing)} (.ci/setup.sh installs them)")
        pytest.skip(f"no {', '.join(missing)}: run .ci/setup.sh")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}", "--window-size=1200,3000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)  # no driver download
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    yield driver
    driver.quit()


def _wait(driver, script: str, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def test_the_page_in_chromium(mastered, browser, tmp_path):
    report, page = mastered
    browser.get(page.as_uri())
    _wait(browser, "return window.mixbridgeAB && (window.mixbridgeAB.ready() || window.mixbridgeAB.error())")
    ab = "window.mixbridgeAB"
    assert browser.execute_script(f"return {ab}.error()") is None

    # every chart is drawn, with data: its series hold values, and its canvas has painted pixels
    charts = browser.execute_script("""
        return Object.entries(window.mixbridgeCharts || {}).map(([id, u]) => {
          const points = u.data.slice(1).map(s => s.filter(v => v != null).length);
          const c = u.ctx.canvas, pixels = u.ctx.getImageData(0, 0, c.width, c.height).data;
          let painted = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
          return [id, Math.max(...points), painted, u.axes.map(a => a.label || '')];
        });""")
    assert [c[0] for c in charts] == ["spectrum-mid", "spectrum-side", "loudness-chart", "peaks-chart", "gain-chart",
                                      "width-chart"]
    for chart_id, points, painted, labels in charts:
        assert points >= 20 and painted > 2000, (chart_id, points, painted)
        assert all(labels) and any(unit in labels[1] for unit in ("dB", "LUFS", "%")), (chart_id, labels)

    # each excerpt, encoded in parts, is joined again to exactly the span's samples
    span = html_report.representative_span(report.input_features)
    frames = int(round(span[1] * SR)) - int(round(span[0] * SR))
    assert browser.execute_script(f"return [{ab}.frames('original'), {ab}.frames('master')]") == [frames, frames]

    # the A/B toggle switches the playing source and keeps the playhead
    browser.execute_script(f"{ab}.play()")
    _wait(browser, f"return {ab}.position() > 0.5")
    assert browser.execute_script(f"return {ab}.current()") == "original"
    before = browser.execute_script(f"return {ab}.position()")
    browser.execute_script(f"{ab}.toggle()")
    after = browser.execute_script(f"return {ab}.position()")
    assert browser.execute_script(f"return {ab}.current()") == "master"
    assert 0.0 <= after - before < 0.25  # the same playhead: no restart, no jump
    _wait(browser, f"return {ab}.position() > {after + 0.3}")  # and it plays on
    assert browser.execute_script(f"return {ab}.appliedGainDb('original')") < -200  # muted

    # the level-matching gain: as stated on the page, and as measured by an independent meter
    data = browser.execute_script(f"return {ab}.data()")
    stated = data["match_gain_db"]["master"]
    assert browser.execute_script(f"return {ab}.appliedGainDb('master')") == pytest.approx(stated, abs=0.1)
    difference = _ebur128_lufs(Path(report.output_path), span) - _ebur128_lufs(Path(report.input_path), span)
    assert stated == pytest.approx(min(0.0, -difference), abs=0.1)
    assert f"{abs(difference):.1f} dB down" in browser.find_element("id", "ab-note").text
    browser.execute_script(f"{ab}.setMatched(false)")
    assert browser.execute_script(f"return {ab}.appliedGainDb('master')") == pytest.approx(0.0, abs=1e-6)
    browser.execute_script(f"{ab}.pause()")

    # the T key toggles too
    browser.find_element("tag name", "body").send_keys("t")
    assert browser.execute_script(f"return {ab}.current()") == "original"

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000


def _ebur128_lufs(path: Path, span: tuple[float, float]) -> float:
    import pyebur128 as eb

    x, rate = sf.read(str(path), dtype="float64", always_2d=True,
                      start=int(round(span[0] * SR)), stop=int(round(span[1] * SR)))
    state = eb.R128State(x.shape[1], rate, eb.MeasurementMode.MODE_I)
    state.add_frames(np.ascontiguousarray(x).reshape(-1), x.shape[0])
    value = eb.get_loudness_global(state)
    assert math.isfinite(value)
    return value


def test_chromium_is_where_the_tests_expect_it():
    """The set-up script installs Debian's chromium and chromium-driver at these paths."""
    _browser_or_skip()
    assert shutil.which("chromium") or CHROMIUM.exists()


def test_a_stems_page_plays_the_stems_sum_against_the_mix_master(tmp_path):
    import json

    from test_stems import _write_stems, song_stems

    from mixbridge.analysis.loudness import measure_loudness
    from mixbridge.assistant.stems import StemOptions, master_stems

    stems = song_stems(SR)
    song = _write_stems(tmp_path / "song", stems)
    report = master_stems(song, tmp_path / "out", resolve_target("spotify"), StemOptions(engine="dsp"))
    text = html_report.stems_page(report, tmp_path / "stems.html").read_text()
    for name in stems:
        assert f"<td>{name}</td>" in text
    assert 'id="limiting"' in text and text.count('class="chart-spec"') == 6
    data = json.loads(re.search(r'<script type="application/json" id="ab-data">(.*?)</script>', text).group(1))
    centred = [np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x for x in stems.values()]
    expected = measure_loudness(np.sum(centred, axis=0).astype(np.float32), SR).integrated_lufs
    assert data["original_lufs"] == pytest.approx(expected, abs=0.05)  # written at 24 bits: rounding only
    assert data["master_lufs"] == pytest.approx(report.mix_output.integrated_lufs, abs=0.05)


def test_an_hour_long_files_plots_stay_small():
    """An hour of short-term loudness (36 000 values) and of limiter blocks: the curves are
    decimated to PLOT_POINTS, so the plots weigh what a 3-minute track's do."""
    from mixbridge.effects.finalize import LimiterTrace

    base = _features_dict()
    hour = Features.from_dict({**base, "duration_s": 3600.0,
                               "short_term_lufs": list(-14.0 + 3.0 * np.sin(np.arange(36_000) / 50.0))})
    assert len(html_report.loudness_chart({"input": hour, "master": hour}, -14.0)) < 250_000
    trace = LimiterTrace(1.8, np.abs(np.sin(np.arange(2000.0))), -1.0 - np.abs(np.cos(np.arange(2000.0))))
    assert len(html_report.limiter_charts(trace, -1.0)) < 250_000


def test_a_192_khz_excerpt_is_previewed_without_crashing_the_encoder():
    """libvorbis crashed (segmentation fault) on music at 192 kHz: previews above 48 kHz are
    resampled first. In a child process, so a regression fails this test, not the whole run."""
    code = ("import sys; sys.path.insert(0, 'tests'); import base64, io, soundfile as sf, numpy as np\n"
            "from test_master import groove\n"
            "from mixbridge.analysis.audio import Audio\n"
            "from mixbridge.assistant.html_report import _encode\n"
            "x = np.tile(groove(192000, 2.0), 6).astype(np.float32)\n"
            "data, lufs = _encode(Audio(x, 192000))\n"
            "infos = [sf.info(io.BytesIO(base64.b64decode(part))) for part in data]\n"
            "assert len(infos) == 2 and all(i.samplerate == 48000 for i in infos), infos\n"
            "assert abs(sum(i.duration for i in infos) - 12.0) < 0.01, infos\n"
            "assert np.isfinite(lufs)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
