"""The HTML report (``--html``): one self-contained page per master or suggestion, and a batch's
``index.html``. No network: the charts' library, the scripts and the styles are inline, the A/B
excerpts are embedded.

- **Charts** are drawn in the browser by uPlot (MIT, vendored unchanged in ``vendor/uplot``
  with its licence and source), from a JSON spec per chart that Python writes: axes with
  units, a legend with the values under the cursor, the cursor shared by charts of one time
  or frequency axis. Writing the specs takes milliseconds, so the page costs little more than
  its A/B excerpts. Curves hold at most PLOT_POINTS points, so an hour-long file's page stays
  small.
- **A/B player.** The same EXCERPT_S seconds of the input and of the master (the stretch whose
  short-term loudness stays nearest the whole track's, :func:`representative_span`), each as Ogg Vorbis at
  quality VORBIS_QUALITY through the same encoder (a file over 48 kHz is previewed at 44.1 or
  48 kHz: libvorbis is made for those rates). Both play at once, looped, from the same
  position; the toggle (button or the ``T`` key) mutes one and opens the other, so the playhead
  never jumps and there is no gap. Level-matched (the default) turns the louder excerpt down by
  the difference of the two excerpts' integrated loudness, measured by our meter on the
  samples before encoding, and shows it; "as delivered" plays both at their own level.
  ``window.mixbridgeAB`` exposes the player's state to the browser tests.
- A page is written atomically (a failed build leaves no file).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from mixbridge.analysis import audio as audio_io
from mixbridge.analysis.atomic import write_text
from mixbridge.analysis.features import Features
from mixbridge.analysis.loudness import measure_loudness
from mixbridge.analysis.spectrum import BAND_CENTRES_HZ, band_shape, shape_mask
from mixbridge.assistant.evidence import Move
from mixbridge.assistant.judge import Goal
from mixbridge.assistant.targets import Target, known_bands
from mixbridge.assistant.text import fmt
from mixbridge.effects.finalize import LimiterTrace
from mixbridge.effects.schema import ChainSettings, describe

EXCERPT_S = 30.0
VORBIS_QUALITY = 0.7  # libsndfile's compression level 0.3: about 190 kbit/s stereo
ENCODE_PARTS = 2  # an excerpt is encoded in this many parts at once (see _encode)
PREVIEW_MAX_RATE = 48000  # the A/B previews of faster files are resampled to 44.1 or 48 kHz (see _encode)
PLOT_POINTS = 1500
PEAK_VIEW_DB = 40.0  # the true-peak chart shows at most this far under the ceiling
VENDOR = "vendor/uplot"  # uPlot 1.6.32 (MIT), inlined into each page: see its SOURCE.md
COLOURS = {"input": "#8a8f98", "output": "#1f6feb", "target": "#2da44e", "limit": "#cf222e"}


# ---- data ---------------------------------------------------------------------------------------

def representative_span(features: Features, seconds: float = EXCERPT_S) -> tuple[float, float]:
    """``(start_s, end_s)`` of the ``seconds`` whose short-term loudness stays nearest the track's
    integrated loudness (the least mean distance): a chorus or verse at the track's level, not an
    intro or a break; the whole track if shorter."""
    st = np.asarray(features.short_term_lufs, dtype=np.float64)
    hop = features.series_hop_s
    width = int(round(seconds / hop))
    if features.duration_s <= seconds or st.size <= width or not math.isfinite(features.integrated_lufs):
        return 0.0, features.duration_s
    distance = np.where(np.isfinite(st), np.abs(st - features.integrated_lufs), 100.0)
    cum = np.concatenate(([0.0], np.cumsum(distance)))
    best = int(np.argmin(cum[width:] - cum[:-width]))
    # window ``best`` covers the series entries best .. best+width-1; entry j is the 3 s ending at (j+1) hops
    start = min(max(0.0, (best + 1) * hop - 3.0), features.duration_s - seconds)
    return start, start + seconds


def _decimated(values: Sequence[float], hop_s: float, points: int = PLOT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) with at most ``points`` points: the power mean of each group (loudness)."""
    v = np.asarray(values, dtype=np.float64)
    per = max(1, -(-v.size // points))
    n = -(-v.size // per)
    power = np.zeros(n * per)
    power[: v.size] = np.where(np.isfinite(v), 10.0 ** (v / 10.0), 0.0)
    counts = np.full(n * per, 1.0)
    counts[v.size:] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        means = 10.0 * np.log10(power.reshape(n, per).sum(axis=1) / counts.reshape(n, per).sum(axis=1))
    times = (np.arange(n) * per + min(per, v.size)) * hop_s
    return times, np.where(np.isfinite(means), means, np.nan)


# ---- plots --------------------------------------------------------------------------------------
# Each chart is a JSON spec embedded in the page; CHARTS_JS draws it with the vendored uPlot.

def _colour(label: str) -> str:
    """The master's curves in the output colour, the input's (and the stems' sum) in grey."""
    return COLOURS["output" if label.startswith("master") else "input"]


FREQ_TICKS_HZ = (31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000)


def _values(values: Sequence[float] | np.ndarray, digits: int = 2) -> list[float | None]:
    """JSON numbers, a missing value (NaN, inf) as null: a gap in the curve."""
    return [round(float(v), digits) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _series(label: str, colour: str, values: Sequence[float] | np.ndarray, *, dash: bool = False,
            points: bool = False, fill: str | None = None) -> dict:
    return {"label": label, "colour": colour, "values": _values(values), "dash": dash, "points": points,
            "fill": fill}


def _chart(chart_id: str, title: str, x: Sequence[float] | np.ndarray, series: Sequence[dict], x_label: str,
           y_label: str, *, log_x: bool = False, band: tuple[int, int] | None = None,
           y_range: tuple[float, float] | None = None, height_px: int = 260, sync: str | None = None) -> str:
    """One chart: a spec that CHARTS_JS draws. ``band``: indexes (high, low) of two series
    whose space between is shaded; ``sync``: charts with the same key share the cursor."""
    spec = {"id": chart_id, "title": title, "x": _values(x, 3), "series": list(series), "xLabel": x_label,
            "yLabel": y_label, "logX": log_x, "band": band, "yRange": y_range, "height": height_px, "sync": sync,
            "xTicks": FREQ_TICKS_HZ if log_x else None}
    return (f'<div class="chart" id="{_esc(chart_id)}"></div>'
            f'<script type="application/json" class="chart-spec">{_json(spec)}</script>')


def _json(data: object) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def _mono_note(chart_id: str) -> str:
    return f'<p class="note mono" id="{_esc(chart_id)}">mono: no side signal</p>'


def spectrum_charts(curves: dict[str, Features], target: Target | None) -> str:
    """Mid and side 1/3-octave band shapes, level removed (each curve's mid mean over the tonal
    bands), with the target's normal range shaded on mid."""
    first = next(iter(curves.values()))
    mask = shape_mask(first.sample_rate) & (known_bands(target.profile) if target else True)
    centres = np.asarray(BAND_CENTRES_HZ)
    mid: list[dict] = []
    side: list[dict] = []
    band = None
    if target is not None:
        p = target.profile
        offset = float(np.mean(np.asarray(p.band_shape_db)[mask]))
        keep = known_bands(p)
        lo = np.where(keep, np.asarray(p.band_low_db) - offset, np.nan)
        hi = np.where(keep, np.asarray(p.band_high_db) - offset, np.nan)
        mid += [_series(f"{p.name}: normal range, top", COLOURS["target"], hi),
                _series(f"{p.name}: normal range, bottom", COLOURS["target"], lo)]
        band = (1, 2)
    for label, f in curves.items():
        levels = np.asarray(f.mid_band_db, dtype=np.float64)
        offset = float(np.mean(levels[mask]))
        mid.append(_series(label, _colour(label), band_shape(levels, mask), points=True))
        if f.channels >= 2:
            side.append(_series(label, _colour(label), np.asarray(f.side_band_db, dtype=np.float64) - offset,
                                points=True))
    x_label = "frequency (Hz), 1/3-octave bands"
    out = _chart("spectrum-mid", "Spectrum: mid, level removed", centres, mid, x_label, "mid level (dB)", log_x=True,
                 band=band, sync="spectrum")
    if side:
        out += _chart("spectrum-side", "Spectrum: side, with the mid's level removed", centres, side, x_label,
                      "side level (dB)", log_x=True, sync="spectrum")
    else:
        out += _mono_note("spectrum-side")
    return out


def loudness_chart(curves: dict[str, Features], target_lufs: float | None) -> str:
    """Short-term loudness over time, with the integrated values and the target."""
    longest = max(curves.values(), key=lambda f: len(f.short_term_lufs))
    times, _ = _decimated(longest.short_term_lufs, longest.series_hop_s)
    series = []
    for label, f in curves.items():  # the analyzer's hop is one constant: the curves share their times
        _, v = _decimated(f.short_term_lufs, f.series_hop_s)
        aligned = np.full(times.size, np.nan)
        aligned[: min(v.size, times.size)] = v[: times.size]
        series.append(_series(f"{label} (integrated {f.integrated_lufs:.1f} LUFS)", _colour(label), aligned))
    if target_lufs is not None:
        series.append(_series(f"target {target_lufs:.1f} LUFS", COLOURS["target"], np.full(times.size, target_lufs),
                              dash=True))
    return _chart("loudness-chart", "Loudness over time (3 s windows)", times, series, "time (s)",
                  "short-term loudness (LUFS)", height_px=280)


def limiter_charts(trace: LimiterTrace, ceiling_dbtp: float) -> str:
    """The output's true-peak envelope against the ceiling, and the limiter's gain reduction."""
    t = (np.arange(trace.gain_reduction_db.size) + 1) * trace.hop_s
    most = float(trace.gain_reduction_db.max(initial=0.0))
    peaks = [_series("output true peak (dBTP)", COLOURS["output"], trace.true_peak_dbtp),
             _series(f"ceiling {ceiling_dbtp:.1f} dBTP", COLOURS["limit"], np.full(t.size, ceiling_dbtp), dash=True)]
    gain = [_series(f"limiter gain reduction (most {most:.1f} dB)", COLOURS["limit"], -trace.gain_reduction_db,
                    fill=COLOURS["limit"] + "80")]
    finite = trace.true_peak_dbtp[np.isfinite(trace.true_peak_dbtp)]
    # the 40 dB under the ceiling where limiting is judged; a fade to digital silence runs off the bottom
    floor = max(float(finite.min()) if finite.size else ceiling_dbtp - PEAK_VIEW_DB, ceiling_dbtp - PEAK_VIEW_DB)
    return (_chart("peaks-chart", "Peaks and limiting: true peak against the ceiling", t, peaks, "time (s)",
                   "true peak (dBTP)", height_px=220, sync="limiting",
                   y_range=(floor - 1.0, max(ceiling_dbtp, float(finite.max(initial=ceiling_dbtp))) + 1.0))
            + _chart("gain-chart", "Limiter gain reduction", t, gain, "time (s)", "gain (dB)", height_px=180,
                     y_range=(min(-1.0, -1.1 * most), 0.2), sync="limiting"))


def width_chart(curves: dict[str, Features]) -> str:
    """Stereo width (side share) per band."""
    series = [_series(label, _colour(label), 100.0 * np.asarray(f.width_band, dtype=np.float64), points=True)
              for label, f in curves.items() if f.channels >= 2]
    if not series:
        return _mono_note("width-chart")
    return _chart("width-chart", "Stereo width per band", np.asarray(BAND_CENTRES_HZ), series,
                  "frequency (Hz), 1/3-octave bands", "side share (%)", log_x=True, height_px=240)


# ---- page sections ------------------------------------------------------------------------------

def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _warnings(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{_esc(w)}</li>" for w in warnings)
    return f'<section class="warnings" id="warnings"><h2>Warnings</h2><ul>{items}</ul></section>'


DYNAMICS_ROWS = (("integrated_lufs", "integrated loudness", "LUFS", None), ("true_peak_dbtp", "true peak", "dBTP", None),
                 ("crest_factor_db", "crest factor", "dB", "crest_factor_db"), ("plr_db", "PLR", "dB", None),
                 ("loudness_range_lu", "loudness range (LRA)", "LU", "loudness_range_lu"),
                 ("width", "stereo width (side share)", "", "width"))


def _dynamics_table(before: Features, after: Features | None, goal: Goal | None) -> str:
    ranges = {c.key: (c.low, c.high) for c in goal.checks} if goal else {}
    head = "<tr><th>measure</th><th>before</th>" + ("<th>after</th>" if after else "") + "<th>normal range</th></tr>"
    rows = []
    for key, label, unit, range_key in DYNAMICS_ROWS:
        digits = 3 if key == "width" else 1 if key != "true_peak_dbtp" else 2
        low_high = ranges.get(range_key or "")
        span = f"{fmt(low_high[0], unit, digits)} – {fmt(low_high[1], unit, digits)}" if low_high else ""
        cells = [f"<td>{_esc(label)}</td>", f"<td>{fmt(getattr(before, key), unit, digits)}</td>"]
        if after:
            cells.append(f"<td>{fmt(getattr(after, key), unit, digits)}</td>")
        rows.append("<tr>" + "".join(cells) + f"<td>{_esc(span)}</td></tr>")
    return f'<table class="figures">{head}{"".join(rows)}</table>'


def _chain(settings: ChainSettings, moves: Sequence[Move], links: dict[str, Path], page: Path) -> str:
    stages = "".join(f"<li>{_esc(line)}</li>" for line in describe(settings)) or "<li>no changes</li>"
    evidence = "".join(f'<li class="move {_esc(m.status)}">{_esc(m.text)}</li>' for m in moves)
    link_items = "".join(f'<li><a href="{_esc(os.path.relpath(path, page.parent))}">{_esc(label)}</a></li>'
                         for label, path in links.items())
    return ('<section id="chain"><h2>The chain</h2><h3>Stages, in signal order</h3>'
            f'<ol class="stages">{stages}</ol>'
            + (f'<h3>Why: what was measured, and the move</h3><ul class="evidence">{evidence}</ul>' if evidence else "")
            + (f'<h3>Files</h3><ul class="links">{link_items}</ul>' if link_items else "") + "</section>")


def _encode(audio: audio_io.Audio) -> tuple[list[str], float]:
    """(``audio`` as base64 Ogg Vorbis in ENCODE_PARTS consecutive parts, its integrated loudness
    by our meter at its own rate).

    The parts are encoded at once in as many threads (libvorbis is single-threaded; libsndfile
    releases the GIL) and joined again by the player after decoding: each part decodes to
    exactly its own samples, and the seam is coded no worse than the rest (measured: 33 dB
    signal-to-error within 256 samples of it, 28 dB elsewhere). Above PREVIEW_MAX_RATE the
    preview is resampled to 44.1 or 48 kHz first: libvorbis is made for those rates, and crashed
    (a segmentation fault) on music at 192 kHz here."""
    lufs = measure_loudness(audio.samples, audio.sample_rate).integrated_lufs
    samples, rate = audio.samples, audio.sample_rate
    if rate > PREVIEW_MAX_RATE:
        # lazy: scipy.signal's import costs about 1 s, and only high-rate previews need it
        from scipy.signal import resample_poly

        target = 44100 if rate % 44100 == 0 else 48000
        common = math.gcd(rate, target)
        samples = resample_poly(samples, target // common, rate // common, axis=1).astype(np.float32)
        rate = target

    def vorbis(part: np.ndarray) -> str:
        buf = io.BytesIO()
        sf.write(buf, part.T, rate, format="OGG", subtype="VORBIS", compression_level=1.0 - VORBIS_QUALITY)
        return base64.b64encode(buf.getvalue()).decode("ascii")

    parts = ENCODE_PARTS if samples.shape[1] >= ENCODE_PARTS * rate else 1
    bounds = np.linspace(0, samples.shape[1], parts + 1).astype(int)
    with ThreadPoolExecutor(parts, thread_name_prefix="mixbridge-vorbis") as pool:
        encoded = list(pool.map(vorbis, [samples[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
    return encoded, float(lufs)


def _span_frames(span: tuple[float, float], sample_rate: int, frames: int) -> tuple[int, int]:
    start, stop = (int(round(s * sample_rate)) for s in span)
    return min(start, frames), min(stop, frames)


def _encode_excerpt(path: Path, span: tuple[float, float]) -> tuple[list[str], float]:
    """:func:`_encode` of ``path`` over ``span``."""
    meta = audio_io.info(path)
    return _encode(audio_io.load_spans(path, [_span_frames(span, meta.sample_rate, meta.frames)]))


def _encode_stem_sum(paths: Sequence[str], span: tuple[float, float], channels: int) -> tuple[list[str], float]:
    """:func:`_encode` of the stems' sum over ``span`` (the mix before the bus; a mono stem
    centred, a shorter one padded with silence, as the stems pipeline does)."""
    total = None
    for path in paths:
        meta = audio_io.info(path)
        part = audio_io.load_spans(path, [_span_frames(span, meta.sample_rate, meta.frames)]).samples
        part = np.repeat(part, channels, axis=0) if part.shape[0] == 1 < channels else part
        if total is None:
            total = np.zeros((channels, int(round((span[1] - span[0]) * meta.sample_rate))), dtype=np.float32)
        n = min(part.shape[1], total.shape[1])
        total[:, :n] += part[:, :n]
    assert total is not None  # a stem set has stems
    return _encode(audio_io.Audio(total, audio_io.info(paths[0]).sample_rate))


def ab_section(original: tuple[list[str], float], master: tuple[list[str], float], span: tuple[float, float],
               original_label: str = "original") -> str:
    """The loudness-matched A/B player over ``span``, from both excerpts as :func:`_encode_excerpt`
    gives them."""
    (a64, a_lufs), (b64, b_lufs) = original, master
    difference = b_lufs - a_lufs if math.isfinite(a_lufs) and math.isfinite(b_lufs) else 0.0
    data = {"original": a64, "master": b64, "original_lufs": round(a_lufs, 2), "master_lufs": round(b_lufs, 2),
            # level-matched: the louder excerpt turned down by the difference (dB, <= 0)
            "match_gain_db": {"original": round(min(0.0, difference), 2), "master": round(min(0.0, -difference), 2)},
            "span_s": [round(span[0], 2), round(span[1], 2)]}
    louder = "master" if difference > 0 else "original"
    note = (f"excerpt {span[0]:.1f}–{span[1]:.1f} s · original ({original_label}) {fmt(a_lufs, 'LUFS')}, master "
            f"{fmt(b_lufs, 'LUFS')} (our meter) · level-matched: the {louder} plays {abs(difference):.1f} dB down")
    return f'''<section id="ab"><h2>Listen: A/B, level-matched</h2>
<p class="note" id="ab-note">{_esc(note)}</p>
<div class="player">
<button id="ab-play" disabled>loading…</button>
<button id="ab-toggle" disabled title="key: T">now: <b id="ab-current">original</b> (T to switch)</button>
<label><input type="checkbox" id="ab-matched" checked> level-matched</label>
<span id="ab-gain"></span>
<span id="ab-time">0.0 s</span>
</div>
<p class="note">Both excerpts play together from the same position; the switch mutes one and opens the other,
so the playhead never jumps. Ogg Vorbis (quality {VORBIS_QUALITY}), both through the same encoder
(over 48 kHz, at 44.1 or 48 kHz).</p>
<script type="application/json" id="ab-data">{json.dumps(data)}</script>
</section>'''


PLAYER_JS = r"""
(function () {
  const node = document.getElementById('ab-data');
  if (!node) return;
  const data = JSON.parse(node.textContent);
  const $ = (id) => document.getElementById(id);
  const state = {ctx: null, buffers: {}, gains: {}, sources: [], playing: false, startedAt: 0, offset: 0,
                 current: 'original', matched: true, ready: false, error: null};
  function bytes(b64) {
    const bin = atob(b64), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function levelDb(which) { return state.matched ? data.match_gain_db[which] : 0; }
  function duration() { return state.buffers.original ? state.buffers.original.duration : 0; }
  function position() {
    if (!state.playing) return state.offset;
    const d = duration();
    return d ? (state.ctx.currentTime - state.startedAt) % d : 0;
  }
  function apply() {
    for (const which of ['original', 'master']) {
      state.gains[which].gain.value = which === state.current ? Math.pow(10, levelDb(which) / 20) : 0;
    }
    $('ab-current').textContent = state.current;
    const db = levelDb(state.current);
    $('ab-gain').textContent = state.matched ? (state.current + ' at ' + db.toFixed(1) + ' dB') : 'as delivered';
  }
  function stopSources() { for (const s of state.sources) { try { s.stop(); } catch (e) {} } state.sources = []; }
  function play() {
    if (!state.ready || state.playing) return;
    state.ctx.resume();
    const at = state.ctx.currentTime + 0.05;
    for (const which of ['original', 'master']) {
      const src = state.ctx.createBufferSource();
      src.buffer = state.buffers[which];
      src.loop = true;
      src.connect(state.gains[which]);
      src.start(at, state.offset);
      state.sources.push(src);
    }
    state.startedAt = at - state.offset;
    state.playing = true;
    $('ab-play').textContent = 'pause';
  }
  function pause() {
    if (!state.playing) return;
    state.offset = position();
    stopSources();
    state.playing = false;
    $('ab-play').textContent = 'play';
  }
  function toggle() {
    if (!state.ready) return;
    state.current = state.current === 'original' ? 'master' : 'original';
    apply();
  }
  function setMatched(on) { state.matched = !!on; $('ab-matched').checked = state.matched; if (state.ready) apply(); }
  async function decode(parts) {  // the excerpt's parts, decoded and joined end to end
    const buffers = [];
    for (const part of parts) buffers.push(await state.ctx.decodeAudioData(bytes(part)));
    const length = buffers.reduce((n, b) => n + b.length, 0);
    const whole = state.ctx.createBuffer(buffers[0].numberOfChannels, length, buffers[0].sampleRate);
    for (let ch = 0; ch < whole.numberOfChannels; ch++) {
      let at = 0;
      for (const b of buffers) { whole.copyToChannel(b.getChannelData(ch), ch, at); at += b.length; }
    }
    return whole;
  }
  async function init() {
    try {
      state.ctx = new AudioContext();
      for (const which of ['original', 'master']) {
        state.buffers[which] = await decode(data[which]);
        state.gains[which] = state.ctx.createGain();
        state.gains[which].connect(state.ctx.destination);
      }
      state.ready = true;
      apply();
      $('ab-play').disabled = false; $('ab-toggle').disabled = false;
      $('ab-play').textContent = 'play';
    } catch (e) {
      state.error = String(e);
      $('ab-play').textContent = 'cannot play: ' + state.error;
    }
  }
  $('ab-play').addEventListener('click', () => (state.playing ? pause() : play()));
  $('ab-toggle').addEventListener('click', toggle);
  $('ab-matched').addEventListener('change', (e) => setMatched(e.target.checked));
  document.addEventListener('keydown', (e) => {
    if (e.key === 't' || e.key === 'T') { toggle(); e.preventDefault(); }
    else if (e.key === ' ') { state.playing ? pause() : play(); e.preventDefault(); }
  });
  setInterval(() => { if (state.ready) $('ab-time').textContent = position().toFixed(1) + ' s'; }, 200);
  window.mixbridgeAB = {
    play, pause, toggle, setMatched, position,
    ready: () => state.ready, error: () => state.error, playing: () => state.playing,
    current: () => state.current,
    appliedGainDb: (which) => 20 * Math.log10(Math.max(state.gains[which].gain.value, 1e-12)),
    data: () => ({match_gain_db: data.match_gain_db, original_lufs: data.original_lufs, master_lufs: data.master_lufs}),
    frames: (which) => state.buffers[which].length,
  };
  init();
})();
"""

CHARTS_JS = r"""
(function () {
  const charts = {};
  const fmtHz = (f) => (f >= 1000 ? (f / 1000) + 'k' : String(f));
  function options(spec, width) {
    const series = [{label: spec.xLabel, value: (u, v) => (v == null ? '' : spec.logX ? fmtHz(Math.round(v)) + ' Hz'
                                                                : v.toFixed(1) + ' s')}];
    for (const s of spec.series) {
      const one = {label: s.label, stroke: s.colour, width: s.fill ? 1 : 1.5, spanGaps: false,
                   value: (u, v) => (v == null ? '–' : v.toFixed(1))};
      if (s.dash) one.dash = [6, 4];
      if (s.fill) { one.fill = s.fill; one.fillTo = 0; }
      one.points = {show: s.points, size: 5};
      series.push(one);
    }
    const x = {label: spec.xLabel, stroke: '#57606a', grid: {stroke: '#d0d7de80'}};
    if (spec.logX) {  // the octave centres, every one labelled
      x.splits = () => spec.xTicks;
      x.filter = (u, splits) => splits;
      x.values = (u, splits) => splits.map((v) => (v == null ? '' : fmtHz(v)));
    }
    const opts = {
      title: spec.title, width: width, height: spec.height, series: series,
      scales: {x: spec.logX ? {time: false, distr: 3, log: 10, range: [18, 22000]} : {time: false},
               y: spec.yRange ? {range: spec.yRange} : {}},
      axes: [x, {label: spec.yLabel, stroke: '#57606a', grid: {stroke: '#d0d7de80'}, size: 55}],
      legend: {live: true},
      cursor: spec.sync ? {sync: {key: spec.sync}} : {},
    };
    if (spec.band) opts.bands = [{series: spec.band, fill: '#2da44e2e'}];
    return opts;
  }
  function draw(spec) {
    const holder = document.getElementById(spec.id);
    const width = Math.max(320, holder.clientWidth || 860);
    const data = [spec.x, ...spec.series.map((s) => s.values)];
    charts[spec.id] = new uPlot(options(spec, width), data, holder);
  }
  for (const node of document.querySelectorAll('script.chart-spec')) draw(JSON.parse(node.textContent));
  window.addEventListener('resize', () => {
    for (const [id, chart] of Object.entries(charts)) {
      chart.setSize({width: Math.max(320, document.getElementById(id).clientWidth), height: chart.height});
    }
  });
  window.mixbridgeCharts = charts;
})();
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 62em; color: #1f2328; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; border-bottom: 1px solid #d0d7de; }
.sub { color: #57606a; margin-top: 0; }
.warnings { background: #fff1e5; border: 2px solid #cf222e; padding: 0.3em 1em; border-radius: 6px; }
.warnings h2 { color: #cf222e; border: none; margin: 0.4em 0; }
table.figures { border-collapse: collapse; margin: 0.5em 0; }
table.figures td, table.figures th { border: 1px solid #d0d7de; padding: 0.25em 0.7em; text-align: right; }
table.figures td:first-child, table.figures th:first-child { text-align: left; }
.chart { width: 100%; margin: 0.6em 0 1.2em; }
.uplot .u-title { font-size: 1em; font-weight: 600; }
.note { color: #57606a; font-size: 0.9em; }
.player { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
.player button { font-size: 1em; padding: 0.4em 1em; }
li.move.corrected { font-weight: 600; }
table.files td, table.files th { padding: 0.2em 0.6em; border-bottom: 1px solid #d0d7de; text-align: left; }
tr.failed td { color: #cf222e; }
"""


@functools.cache
def _vendored(name: str) -> str:
    return (resources.files("mixbridge.assistant") / VENDOR / name).read_text(encoding="utf-8")


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole document: no external resource of any kind. The charts' library and script,
    and the A/B player's, are inlined only where the page has charts or a player."""
    body = "".join(s for s in sections if s)
    charts = 'class="chart-spec"' in body
    head_style = CSS + (_vendored("uPlot.min.css") if charts else "")
    scripts = ((f"<script>{_vendored('uPlot.iife.min.js')}</script><script>{CHARTS_JS}</script>" if charts else "")
               + (f"<script>{PLAYER_JS}</script>" if 'id="ab-data"' in body else ""))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_esc(title)}</title><style>{head_style}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p class=\"sub\">{_esc(subtitle)}</p>" + body + scripts + "</body></html>\n")


def _plot(section_id: str, heading: str, charts: str) -> str:
    return f'<section id="{section_id}" class="plot"><h2>{_esc(heading)}</h2>{charts}</section>'


# ---- the pages ----------------------------------------------------------------------------------

Excerpt = tuple[tuple[float, float], tuple[list[str], float]]  # (span, encoded excerpt's parts and its loudness)


def prepare_original(input_path: str | Path, features: Features) -> Excerpt:
    """The input's half of a master's A/B, which needs only the input and its analysis: the CLI
    has it made in the background while the master runs, and hands it to :func:`master_page`."""
    span = representative_span(features)
    return span, _encode_excerpt(Path(input_path), span)


def master_page(report, html_path: str | Path, links: dict[str, Path] | None = None,
                original: Excerpt | None = None) -> Path:
    """Write the page of a :class:`~assistant.master.MasterReport` to ``html_path``; ``original``
    from :func:`prepare_original` (else it is made here)."""
    html_path = Path(html_path)
    before, after, target = report.input_features, report.output_features, report.target
    curves = {"input": before, "master": after}
    span = original[0] if original else representative_span(before)
    # the excerpts are encoded in two threads (libsndfile releases the GIL) while the plots are drawn
    with ThreadPoolExecutor(2, thread_name_prefix="mixbridge-ab") as pool:
        mastered = pool.submit(_encode_excerpt, Path(report.output_path), span)
        unmastered = None if original else pool.submit(_encode_excerpt, Path(report.input_path), span)
        plots = [_plot("spectrum", "Spectrum", spectrum_charts(curves, target)),
                 _plot("loudness", "Loudness", loudness_chart(curves, target.lufs)),
                 _plot("limiting", "Peaks and limiting", limiter_charts(report.limiter, target.ceiling_dbtp))
                 if report.limiter is not None else "",
                 '<section id="dynamics"><h2>Dynamics and stereo</h2>'
                 f'{_dynamics_table(before, after, report.goal)}{width_chart(curves)}</section>']
        before_excerpt = unmastered.result() if unmastered is not None else original[1]  # type: ignore[index]
        ab = ab_section(before_excerpt, mastered.result(), span)
    sections = [
        _warnings(report.warnings),
        '<section id="summary"><h2>Summary</h2>'
        f'<p>{_esc(report.input_path)} → {_esc(report.output_path)}; target {_esc(target.name)} '
        f'{target.lufs:.1f} LUFS, ceiling {target.ceiling_dbtp:.1f} dBTP, profile {_esc(target.profile.name)}; '
        f'engine {_esc(report.engine)}. Finalizer: gain {report.gain_db:+.2f} dB, peak limiting '
        f'{report.limiting_db:.1f} dB. Tonal error to the target: {report.tonal_error_before_db:.2f} → '
        f'{report.tonal_error_after_db:.2f} dB.</p></section>',
        ab, *plots, _chain(report.settings, report.moves, links or {}, html_path),
    ]
    title = f"Mixbridge master: {Path(report.input_path).name}"
    return write_text(html_path, page(title, f"{Path(report.output_path).name}", sections))


def stems_page(report, html_path: str | Path, links: dict[str, Path] | None = None) -> Path:
    """Write the page of a :class:`~assistant.stems.report.StemsReport`: the mix (the stems' sum)
    before and after the bus, the stems' loudness, the bus chain and why, and the A/B of the
    stems' sum against ``mix-master.wav``."""
    html_path = Path(html_path)
    before, after, target = report.mix_input, report.mix_output, report.target
    curves = {"input (stems summed)": before, "master": after}
    span = representative_span(before)
    with ThreadPoolExecutor(2, thread_name_prefix="mixbridge-ab") as pool:
        original = pool.submit(_encode_stem_sum, [s.input_path for s in report.stems], span, after.channels)
        master = pool.submit(_encode_excerpt, Path(report.mix_master_path), span)
        plots = [_plot("spectrum", "Spectrum of the mix", spectrum_charts(curves, target)),
                 _plot("loudness", "Loudness of the mix", loudness_chart(curves, target.lufs)),
                 _plot("limiting", "Peaks and limiting (the same gain curve on every stem)",
                       limiter_charts(report.limiter, target.ceiling_dbtp)) if report.limiter is not None else "",
                 '<section id="dynamics"><h2>Dynamics and stereo of the mix</h2>'
                 f'{_dynamics_table(before, after, report.goal)}{width_chart(curves)}</section>']
        ab = ab_section(original.result(), master.result(), span, "the stems summed")
    rows = "".join(f"<tr><td>{_esc(st.name)}</td><td>{fmt(st.input_lufs, 'LUFS')} → {fmt(st.output_lufs, 'LUFS')}"
                   f"</td><td>{fmt(st.output_true_peak_dbtp, 'dBTP', 2)}</td>"
                   f"<td>{_esc('; '.join(st.suggestions))}</td></tr>" for st in report.stems)
    stems_table = ('<section id="stems"><h2>Stems</h2><table class="files"><tr><th>stem</th><th>loudness before → '
                   f'after</th><th>true peak after</th><th>suggestions</th></tr>{rows}</table></section>')
    sections = [
        _warnings(report.warnings),
        '<section id="summary"><h2>Summary</h2>'
        f'<p>{_esc(report.input_dir)} ({len(report.stems)} stems) → {_esc(report.output_dir)}; one bus decision for '
        f'all stems toward {_esc(target.name)} {target.lufs:.1f} LUFS, ceiling {target.ceiling_dbtp:.1f} dBTP. '
        f'Finalizer: gain {report.gain_db:+.2f} dB, peak limiting {report.limiting_db:.1f} dB (the same gain '
        f'curve on every stem).</p></section>',
        ab, *plots, stems_table, _chain(report.settings, report.moves, links or {}, html_path),
    ]
    return write_text(html_path, page(f"Mixbridge stems: {Path(report.input_dir).name}", report.output_dir,
                                      sections))


def suggestion_page(source: str | Path, suggestion, html_path: str | Path,
                    links: dict[str, Path] | None = None) -> Path:
    """Write the page of a suggestion (no master was rendered: no A/B, no output curves)."""
    html_path = Path(html_path)
    from mixbridge.assistant.master import input_notes

    f, target = suggestion.features, suggestion.target
    curves = {"input": f}
    sections = [
        _warnings(input_notes(f, suggestion.settings)),
        '<section id="summary"><h2>Summary</h2>'
        f'<p>{_esc(source)}: suggested chain toward {_esc(target.name)} {target.lufs:.1f} LUFS, ceiling '
        f'{target.ceiling_dbtp:.1f} dBTP, profile {_esc(target.profile.name)}. Nothing was rendered: '
        f'<code>mixbridge master</code> with the saved chain renders it.</p></section>',
        _plot("spectrum", "Spectrum", spectrum_charts(curves, target)),
        _plot("loudness", "Loudness", loudness_chart(curves, target.lufs)),
        '<section id="dynamics"><h2>Dynamics and stereo</h2>'
        f'{_dynamics_table(f, None, suggestion.decision.goal)}{width_chart(curves)}</section>',
        _chain(suggestion.settings, suggestion.decision.moves, links or {}, html_path),
    ]
    return write_text(html_path, page(f"Mixbridge suggestion: {Path(source).name}", str(source), sections))


def batch_index(rows: Sequence[dict], html_path: str | Path) -> Path:
    """A catalogue's ``index.html``: one row per file of the manifest (its page linked when it
    has one), failed files with their error."""
    html_path = Path(html_path)
    body = []
    for row in sorted(rows, key=lambda r: str(r.get("input", ""))):
        name = _esc(os.path.relpath(row.get("input", "?"), html_path.parent)
                    if row.get("input") else "?")
        page_path = row.get("html")
        link = (f'<a href="{_esc(os.path.relpath(page_path, html_path.parent))}">{name}</a>'
                if page_path and Path(page_path).exists() else name)
        if row.get("status") == "failed":
            body.append(f'<tr class="failed"><td>{link}</td><td>failed</td><td colspan="3">'
                        f'{_esc(row.get("error", ""))}</td></tr>')
            continue
        b, a = row.get("before", {}), row.get("after", {})
        body.append(f"<tr><td>{link}</td><td>mastered</td>"
                    f"<td>{fmt(b.get('lufs'), 'LUFS')} → {fmt(a.get('lufs'), 'LUFS')}</td>"
                    f"<td>{fmt(a.get('true_peak_dbtp'), 'dBTP', 2)}</td>"
                    f"<td>{_esc('; '.join(row.get('warnings', [])))}</td></tr>")
    failed = sum(1 for r in rows if r.get("status") == "failed")
    table = ('<table class="files"><tr><th>file</th><th>status</th><th>loudness before → after</th>'
             f'<th>true peak after</th><th>warnings / error</th></tr>{"".join(body)}</table>')
    sections = [_warnings([f"{failed} of {len(rows)} files failed; their errors are in the table"] if failed else []),
                f'<section id="files"><h2>Files</h2>{table}</section>']
    return write_text(html_path, page("Mixbridge batch", f"{len(rows)} files", sections))
