"""Streaming mastering: every block-wise stage equals its one-shot form, the streaming finalizer
equals the in-memory one, a long file masters to spec in bounded memory, and no temporary file
or partial output survives a success, a failure or Ctrl-C."""

from __future__ import annotations

import os
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from conftest import ebur128_integrated_lufs
from test_master import groove

import mixbridge.analysis.audio
import mixbridge.assistant.master
import mixbridge.effects.render
from mixbridge.analysis.analyze import analyze, analyze_file
from mixbridge.analysis.audio import Audio, load, load_spans
from mixbridge.analysis.blocks import Background, ahead, chunks
from mixbridge.analysis.errors import OutputError
from mixbridge.analysis.loudness import WeightedPowerMeter, measure_loudness, weighted_power
from mixbridge.analysis.truepeak import PeakEnvelopeMeter, peak_envelope, true_peak_dbtp
from mixbridge.assistant.decide import suggest_settings
from mixbridge.assistant.master import master_audio, master_file, resolve_target
from mixbridge.assistant.options import MasterOptions
from mixbridge.assistant.targets import profile_from_features
from mixbridge.effects.finalize import (
    BlockStatsMeter,
    FinalizeSpec,
    OutputMeter,
    apply_stream,
    finalize,
    finalize_from_stats,
)
from mixbridge.effects.limiter import TruePeakLimiter
from mixbridge.effects.render import ChainRenderer, render
from mixbridge.effects.schema import MATCH_EQ_PARAMS, ChainSettings
from mixbridge.models.predict import excerpt, excerpt_spans

ODD_CHUNKS = (1000, 4097, 44_107)  # none divides the lengths used below

EVERY_STAGE = ChainSettings.create(
    {"trim.gain_db": 2.0, "highpass.cutoff_hz": 35.0, "low_shelf.gain_db": 3.0, "peak1.gain_db": -2.0,
     "peak2.gain_db": 4.0, "peak3.gain_db": 1.5, "peak4.gain_db": -3.0, "high_shelf.gain_db": 2.5,
     "compressor.threshold_db": -24.0, "compressor.ratio": 4.0, "compressor.attack_ms": 5.0,
     "compressor.release_ms": 120.0, "compressor.makeup_db": 3.0, "compressor.amount_percent": 60.0,
     "reverb.wet": 0.3, "reverb.room_size": 0.7, "stereo.width_percent": 130.0},
    {"highpass": True, "compressor": True, "reverb": True})
FULL_COMPRESSION = EVERY_STAGE.replace({"compressor.amount_percent": 100.0})
EXPANSION = EVERY_STAGE.replace({"expander.ratio": 1.6, "expander.threshold_db": -30.0}, {"expander": True,
                                                                                           "compressor": False})


def _chunks(x: np.ndarray, size: int):
    for start in range(0, x.shape[1], size):
        yield x[:, start : start + size]


# ---- each stage, block by block == all at once ---------------------------------------------
@pytest.mark.parametrize("settings", (EVERY_STAGE, FULL_COMPRESSION, EXPANSION),
                         ids=("parallel-comp", "full-comp", "expander"))
@pytest.mark.parametrize("channels", (1, 2))
@pytest.mark.parametrize("chunk", ODD_CHUNKS)
def test_block_wise_render_equals_the_one_shot_render(settings, channels, chunk):
    sr = 44100
    x = groove(sr, 3.0, channels).astype(np.float32)
    whole = render(x, sr, settings)
    renderer = ChainRenderer(settings, sr)
    blocks = np.concatenate([renderer.process(b) for b in _chunks(x, chunk)], axis=1)
    assert blocks.shape == whole.shape
    np.testing.assert_allclose(blocks, whole, rtol=0.0, atol=1e-6)
    # and the stages did something (a chain that did nothing would pass trivially)
    assert np.max(np.abs(whole - x)) > 0.05


@pytest.mark.parametrize("sample_rate", (44100, 96000))
@pytest.mark.parametrize("chunk", ODD_CHUNKS)
def test_streaming_meters_equal_the_whole_array_functions(sample_rate, chunk, rng):
    x = (0.3 * rng.standard_normal((2, 2 * sample_rate + 17))).astype(np.float32)
    for block in (1, 22):
        power = WeightedPowerMeter(sample_rate, 2, block)
        envelope = PeakEnvelopeMeter(sample_rate, 2, block)
        p, e = [], []
        for b in _chunks(x, chunk):
            p.append(power.process(b))
            e.append(envelope.process(b))
        p = np.concatenate(p + [power.finish()])
        e = np.concatenate(e + [envelope.finish()])
        np.testing.assert_allclose(p, weighted_power(x, sample_rate, block), rtol=1e-12)
        np.testing.assert_allclose(e, peak_envelope(x, sample_rate, block), rtol=1e-6)


@pytest.mark.parametrize("chunk", (1, 7, 22, 1000))
def test_limiter_applied_to_slices_equals_the_whole(chunk, rng):
    block, n = 22, 12_345
    curve = -6.0 * rng.random(-(-n // block))
    x = rng.standard_normal((2, n)).astype(np.float32)
    whole = TruePeakLimiter.apply(x, curve, block, 1.5)
    parts = [TruePeakLimiter.apply(b, curve, block, 1.5, start)
             for start, b in zip(range(0, n, chunk), _chunks(x, chunk))]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


@pytest.mark.parametrize("chunk", ODD_CHUNKS)
@pytest.mark.parametrize("target_lufs", (-16.0, -9.0))
def test_streaming_finalize_equals_the_in_memory_finalize(chunk, target_lufs):
    sr = 44100
    x = groove(sr, 6.0, 2, peak=0.9).astype(np.float32)
    spec = FinalizeSpec(target_lufs, -1.0)
    expected = finalize(x, sr, spec)

    meter = BlockStatsMeter(sr, 2)
    for b in _chunks(x, chunk):
        meter.process(b)
    written: list[np.ndarray] = []

    def run_pass(gain_db, block_gain_db):
        written.clear()
        measure = OutputMeter(sr, 2)

        def sink(out):
            written.append(out)
            measure.process(out)

        apply_stream(_chunks(x, chunk), gain_db, block_gain_db, meter.block, sink)
        return measure.result()

    plan = finalize_from_stats(meter.result(), spec, run_pass)
    assert plan.gain_db == pytest.approx(expected.gain_db, abs=1e-6)
    assert plan.limiting_db == pytest.approx(expected.limiting_db, abs=1e-6)
    assert plan.integrated_lufs == pytest.approx(expected.integrated_lufs, abs=1e-4)
    assert plan.true_peak_dbtp == pytest.approx(expected.true_peak_dbtp, abs=1e-4)
    np.testing.assert_allclose(plan.block_gain_db, expected.block_gain_db, atol=1e-5)  # float32 envelope
    np.testing.assert_allclose(np.concatenate(written, axis=1), expected.samples, rtol=0.0, atol=1e-6)
    if target_lufs == -9.0:
        assert expected.limiting_db > 1.0  # the limiter really worked on this one


def test_master_file_writes_what_master_audio_computes(tmp_path):
    """The streaming file path and the in-memory path: the same samples, dither included
    (70 s at 22.05 kHz spans two dither blocks)."""
    sr = 22050
    path = tmp_path / "mix.wav"
    sf.write(str(path), np.tile(groove(sr, 7.0), 10).T, sr, subtype="PCM_24")
    target = resolve_target("spotify")
    out = tmp_path / "master.wav"
    report = master_file(path, out, target, MasterOptions(chain=EVERY_STAGE))
    expected, gain_db, limiting_db, _ = master_audio(load(path), target, EVERY_STAGE)
    written = load(out).samples
    assert report.gain_db == pytest.approx(gain_db, abs=1e-6)
    assert report.limiting_db == pytest.approx(limiting_db, abs=1e-6)
    np.testing.assert_allclose(written, expected.samples, rtol=0.0, atol=1.5 / 2**23)


@pytest.mark.parametrize("bit_depth", ["16", "24", "32f"])
def test_the_reports_output_features_are_the_written_files(tmp_path, bit_depth):
    """The write pass measures the samples as written (dithered, rounded) instead of reading the
    file back: the report's output features equal an analysis of the file."""
    sr = 22050
    path = tmp_path / "mix.wav"
    sf.write(str(path), np.tile(groove(sr, 7.0), 10).T, sr, subtype="PCM_24")
    out = tmp_path / "master.wav"
    report = master_file(path, out, resolve_target("spotify"), MasterOptions(chain=EVERY_STAGE, bit_depth=bit_depth))
    measured, read_back = report.output_features.to_dict(), analyze_file(out).to_dict()
    assert measured.keys() == read_back.keys()
    for key, value in read_back.items():
        if isinstance(value, float) or (isinstance(value, list) and value and isinstance(value[0], float)):
            # blocks of other sizes sum in another order: a last digit of the 4 kept may differ
            np.testing.assert_allclose(measured[key], value, rtol=0.0, atol=1.01e-4, err_msg=key)
        else:
            assert measured[key] == value, key


def test_settings_from_the_files_excerpt_equal_settings_from_the_whole_track(tmp_path):
    """master_file hands the model's refinement only the excerpt it renders, read from the file."""
    sr = 22050
    path = tmp_path / "mix.wav"
    x = np.tile(groove(sr, 5.0), 8)  # 40 s > the 30 s excerpt (0-10, 15-25, 30-40 s)...
    for start in (10, 25):  # ...which misses a brighter, louder part, so the excerpt's bias matters
        x[:, start * sr : (start + 5) * sr] = groove(sr, 5.0, seed=11, peak=0.9)
    sf.write(str(path), x.T, sr, subtype="PCM_24")
    whole = load(path)
    features = analyze_file(path)
    # a reference with less top end, so the judgment asks for EQ and the refinement has work to do
    darker = render(x, sr, ChainSettings.create({"high_shelf.gain_db": -6.0, "high_shelf.freq_hz": 4000.0}))
    reference = profile_from_features([analyze(Audio(darker, sr))], "darker", reference=True)
    target = replace(resolve_target("spotify"), profile=reference)
    part = load_spans(path, excerpt_spans(whole.frames, sr))
    assert part.frames < whole.frames
    np.testing.assert_array_equal(part.samples, excerpt(whole.samples, sr))
    from_part = suggest_settings(part, features, target, "model", refine=True).settings
    assert from_part == suggest_settings(whole, features, target, "model", refine=True).settings
    assert from_part != suggest_settings(whole, features, target, "model", refine=False).settings  # refinement ran


# ---- a long file through the streaming path ------------------------------------------------
def _long_mix(path, sample_rate: int, minutes: float) -> None:
    """Verses and choruses: a 10 s groove looped, every other 30 s 8 dB quieter."""
    loop = groove(sample_rate, 10.0, peak=0.7)
    with sf.SoundFile(str(path), "w", sample_rate, 2, "PCM_24") as f:
        for i in range(int(minutes * 6)):
            f.write((loop * (10 ** (-8 / 20) if (i // 3) % 2 else 1.0)).T)


def test_a_ten_minute_file_masters_to_spec_in_bounded_memory(tmp_path):
    sr = 44100
    path, out = tmp_path / "long.wav", tmp_path / "long-master.wav"
    _long_mix(path, sr, 10.0)
    chain = EVERY_STAGE.replace({}, {"reverb": False})
    target = resolve_target("spotify")
    tracemalloc.start()
    try:
        report = master_file(path, out, target, MasterOptions(chain=chain))
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The whole mix as float32 is 212 MB; the in-memory path held three or more such copies.
    # Streaming holds one 2**20-frame block's temporaries plus a few arrays per 0.5 ms block.
    one_copy = 2 * 600 * sr * 4
    assert peak_bytes < 0.75 * one_copy, f"peak traced memory {peak_bytes / 1e6:.0f} MB"
    features = report.output_features  # measured on the written file, by streaming it
    assert features.source == str(out) and sf.info(str(out)).frames == 600 * sr
    assert features.integrated_lufs == pytest.approx(-14.0, abs=0.1)
    assert features.true_peak_dbtp <= -1.0
    assert not report.warnings
    assert sorted(os.listdir(tmp_path)) == ["long-master.wav", "long.wav"]


def test_the_written_output_meets_the_spec_by_libebur128(tmp_path):
    sr = 48000
    path, out = tmp_path / "mix.wav", tmp_path / "master.flac"
    _long_mix(path, sr, 1.5)
    master_file(path, out, resolve_target("ebu-r128"), MasterOptions(chain=EVERY_STAGE, bit_depth="16"))
    data, rate = sf.read(str(out), always_2d=True)
    assert ebur128_integrated_lufs(data.T, rate) == pytest.approx(-23.0, abs=0.1)
    assert true_peak_dbtp(data.T, rate) <= -1.0
    assert measure_loudness(data.T, rate).integrated_lufs == pytest.approx(-23.0, abs=0.1)


# ---- failures leave nothing behind -------------------------------------------------------------
@pytest.fixture
def mix(tmp_path):
    """54 s at 22.05 kHz: two stream blocks, so a failure can strike after the first."""
    path = tmp_path / "mix.wav"
    sf.write(str(path), np.tile(groove(22050, 6.0), 9).T, 22050, subtype="PCM_24")
    assert sf.info(str(path)).frames > mixbridge.assistant.master.STREAM_BLOCK_FRAMES
    return path


def _fail_on_call(number: int, real, exc: BaseException):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise exc
        return real(*args, **kwargs)
    return wrapper


@pytest.mark.parametrize("where", ("render", "render-ahead", "render-apart", "write"))
@pytest.mark.parametrize("exc", (RuntimeError("injected"), KeyboardInterrupt()), ids=("error", "ctrl-c"))
@pytest.mark.parametrize("existing", (True, False), ids=("output-exists", "no-output"))
def test_a_failure_mid_way_leaves_no_temporary_or_partial_file(where, exc, existing, mix, monkeypatch):
    folder = mix.parent
    out = folder / "master.wav"
    if existing:
        out.write_bytes(b"previous master")
    if where == "render":  # pass 1, after a block has been rendered and spilled
        monkeypatch.setattr(ChainRenderer, "back", _fail_on_call(2, ChainRenderer.back, exc))
    elif where == "render-ahead":  # pass 1, in the thread that renders the chain's first half ahead
        monkeypatch.setattr(ChainRenderer, "front", _fail_on_call(2, ChainRenderer.front, exc))
    elif where == "render-apart":  # pass 1, in the thread that renders the second channel of a chain without reverb
        monkeypatch.setattr(mixbridge.effects.render._Lane, "back", _fail_on_call(4, mixbridge.effects.render._Lane.back, exc))
    else:  # pass 2, after a block has reached the output's temporary file
        monkeypatch.setattr(mixbridge.analysis.audio.BlockWriter, "write_quantized",
                            _fail_on_call(2, mixbridge.analysis.audio.BlockWriter.write_quantized, exc))
    with pytest.raises(type(exc)):
        chain = EVERY_STAGE.replace(enabled={"reverb": False}) if where == "render-apart" else EVERY_STAGE
        master_file(mix, out, resolve_target("spotify"), MasterOptions(chain=chain, overwrite=existing))
    assert sorted(p.name for p in folder.iterdir()) == (["master.wav", "mix.wav"] if existing else ["mix.wav"])
    if existing:
        assert out.read_bytes() == b"previous master"


@pytest.mark.parametrize("held", [True, False], ids=["held-input", "scratch-file"])
def test_an_output_folder_that_cannot_hold_the_scratch_file_is_an_output_error(mix, monkeypatch, held):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if not held:  # a long input: its render waits in a scratch file next to the output
        monkeypatch.setattr(mixbridge.assistant.master, "HOLD_BYTES", 0)
    monkeypatch.setattr(mixbridge.analysis.atomic.tempfile, "mkstemp", no_space)
    out = mix.parent / "master.wav"
    with pytest.raises(OutputError, match="cannot write in") as err:
        master_file(mix, out, resolve_target("spotify"), MasterOptions(chain=EVERY_STAGE))
    assert str(out) in str(err.value)
    assert sorted(p.name for p in mix.parent.iterdir()) == ["mix.wav"]


def test_success_leaves_only_the_output(mix):
    master_file(mix, mix.parent / "master.wav", resolve_target("spotify"), MasterOptions(chain=EVERY_STAGE))
    assert sorted(p.name for p in mix.parent.iterdir()) == ["master.wav", "mix.wav"]
    assert mixbridge.assistant.master.STREAM_BLOCK_FRAMES == mixbridge.analysis.audio.DITHER_BLOCK_FRAMES


def test_ahead_keeps_the_order_and_at_most_two_blocks_in_flight_and_raises_the_workers_error():
    read: list[int] = []

    def blocks():
        for i in range(20):
            read.append(i)
            yield np.full((1, 4), float(i))

    got = []
    for out in ahead(blocks(), lambda block: 2.0 * block):
        assert len(read) - len(got) <= 2  # the block given out and the one being worked on
        got.append(float(out[0, 0]))
    assert got == [2.0 * i for i in range(20)]
    assert list(ahead(iter(()), lambda block: block)) == []

    def fail(block):
        if block[0, 0] == 3.0:
            raise ValueError("render broke")
        return block

    with pytest.raises(ValueError, match="render broke"):
        list(ahead(blocks(), fail))


def test_a_chain_rendered_in_two_halves_one_block_apart_equals_the_whole_render(mix):
    audio = load(mix)
    renderer = ChainRenderer(EVERY_STAGE, audio.sample_rate)
    halves = [renderer.back(b) for b in ahead(chunks(audio.samples, 30000), renderer.front)]
    np.testing.assert_array_equal(np.concatenate(halves, axis=1), render(audio.samples, audio.sample_rate, EVERY_STAGE))


@pytest.mark.parametrize("channels", (2, 3))
def test_a_chain_without_reverb_rendered_channels_apart_equals_the_whole_render(channels):
    sr = 44100
    stereo = groove(sr, 3.0).astype(np.float32)
    x = stereo if channels == 2 else np.vstack([stereo, 0.5 * stereo[:1] - 0.5 * stereo[1:]])  # and a third channel
    settings = EVERY_STAGE.replace({MATCH_EQ_PARAMS[15]: 3.0}, {"reverb": False, "polarity": True, "match_eq": True})
    renderer, together = ChainRenderer(settings, sr, threads=2), ChainRenderer(settings, sr)
    assert renderer.channels_apart and not ChainRenderer(EVERY_STAGE, sr, threads=2).channels_apart
    apart = np.concatenate([renderer.process(b) for b in _chunks(x, 44_107)], axis=1)
    np.testing.assert_array_equal(apart, np.concatenate([together.process(b) for b in _chunks(x, 44_107)], axis=1))
    np.testing.assert_array_equal(render(x, sr, settings, threads=2), render(x, sr, settings, threads=1))
    assert np.max(np.abs(apart - x)) > 0.05
    with pytest.raises(RuntimeError, match="front"):  # one renderer's state serves one way of rendering
        renderer.front(x)


def test_a_chain_with_reverb_renders_its_stages_before_the_reverb_a_chunk_ahead_with_the_same_samples():
    sr = 44100
    x = groove(sr, 6.0).astype(np.float32)
    settings = EVERY_STAGE.replace({MATCH_EQ_PARAMS[15]: 3.0}, {"match_eq": True})  # overlap-add: hop-aligned chunks
    renderer = ChainRenderer(settings, sr, threads=2)
    step = renderer.exact_block(x.shape[1] // 4)
    assert not renderer.channels_apart and step < x.shape[1] // 2  # several chunks
    np.testing.assert_array_equal(render(x, sr, settings, threads=2), render(x, sr, settings, threads=1))


def test_background_consumes_in_order_and_raises_the_consumers_error():
    seen: list[float] = []
    with Background(lambda block: seen.append(float(block[0, 0]))) as measure:
        for i in range(50):
            measure.put(np.full((1, 4), float(i)))
    assert seen == [float(i) for i in range(50)]

    def fail(block):
        raise ValueError("meter broke")

    with pytest.raises(ValueError, match="meter broke"):
        with Background(fail) as measure:
            for _ in range(5):
                measure.put(np.zeros((1, 4)))


@pytest.mark.parametrize("here", (True, False))
@pytest.mark.parametrize("parallel", (True, False), ids=("two-threads", "one-thread-per-file"))
def test_fanned_out_gives_every_consumer_every_block_in_order_and_raises_a_consumers_error(here, parallel,
                                                                                          monkeypatch):
    import threading

    from mixbridge.analysis import blocks

    monkeypatch.setattr(blocks, "_parallel_within_file", parallel)
    seen: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    threads: dict[str, set[int]] = {"a": set(), "b": set(), "c": set()}

    def consumer(name: str):
        def consume(block: np.ndarray) -> None:
            seen[name].append(float(block[0, 0]))
            threads[name].add(threading.get_ident())
        return consume

    with blocks.fanned_out([consumer(n) for n in "abc"], here=here) as give:
        for i in range(30):
            give(np.full((1, 4), float(i)))
    assert all(values == [float(i) for i in range(30)] for values in seen.values())
    main = threading.get_ident()
    assert (threads["a"] == {main}) == here  # the first consumer runs in the caller's thread only when asked
    assert (main in threads["b"]) == (here and not parallel)  # one thread per file: all in one place
    if parallel:
        assert threads["b"] != threads["c"]

    def fail(block):
        raise ValueError("meter broke")

    with pytest.raises(ValueError, match="meter broke"):
        with blocks.fanned_out([consumer("a"), fail], here=here) as give:
            for _ in range(5):
                give(np.zeros((1, 4)))


def test_a_batch_workers_serial_file_work_gives_the_same_master(mix, monkeypatch):
    """A batch worker beside others keeps each file's work to one thread
    (serial_within_file); the master, its settings and its report are the same."""
    import mixbridge.analysis.blocks as blocks

    target = resolve_target(None, [str(mix)])  # a reference target, as `--reference` gives
    parallel = master_file(mix, mix.parent / "parallel.wav", target)
    monkeypatch.setattr(blocks, "_parallel_within_file", False)
    serial = master_file(mix, mix.parent / "serial.wav", target)
    assert (mix.parent / "parallel.wav").read_bytes() == (mix.parent / "serial.wav").read_bytes()
    assert serial.settings == parallel.settings
    a, b = parallel.output_features.to_dict(), serial.output_features.to_dict()
    assert {k: (a[k], b[k]) for k in a if a[k] != b[k] and k != "source"} == {}


def test_a_master_decodes_its_input_once_and_writes_what_a_second_read_writes(tmp_path, monkeypatch):
    """A file no larger than HOLD_BYTES is decoded by its analysis and its blocks are held for
    the excerpt and the render; the master is the one that reading the file again gives."""
    import mixbridge.assistant.master as master

    path = tmp_path / "mix.wav"  # 2.6 M frames: three stream blocks, the excerpt's spans cross them
    sf.write(str(path), np.tile(groove(22050, 6.0), 20).T, 22050, subtype="PCM_24")
    target = resolve_target(None, [str(path)])
    reads: list[str] = []
    real_iter, real_spans = mixbridge.analysis.audio.iter_blocks, mixbridge.analysis.audio.load_spans
    monkeypatch.setattr(mixbridge.analysis.audio, "iter_blocks", lambda p, *a: reads.append("blocks") or real_iter(p, *a))
    monkeypatch.setattr(mixbridge.analysis.audio, "load_spans", lambda p, s: reads.append("spans") or real_spans(p, s))
    once = master_file(path, tmp_path / "once.wav", target)
    assert reads == ["blocks"]
    with master.analysing_beside(path) as analysis:  # as the CLI: the analysis in a second thread
        beside = master_file(path, tmp_path / "beside.wav", target, input_features=analysis,
                             input_samples=analysis.samples)
    assert reads == ["blocks"] * 2
    with master.analysing_beside(path) as analysis:  # `suggest` cuts its excerpt from the held blocks too
        suggested = master.suggest_file(path, target, input_features=analysis, input_samples=analysis.samples)
    assert reads == ["blocks"] * 3 and suggested.settings == once.settings
    monkeypatch.setattr(master, "HOLD_BYTES", 0)
    again = master_file(path, tmp_path / "again.wav", target)
    assert reads == ["blocks"] * 3 + ["blocks", "spans", "blocks"]
    assert (tmp_path / "once.wav").read_bytes() == (tmp_path / "again.wav").read_bytes() \
        == (tmp_path / "beside.wav").read_bytes()
    assert once.settings == again.settings == beside.settings
    held: list[np.ndarray] = []
    mixbridge.analysis.analyze.analyze_file(path, keep=held)
    np.testing.assert_array_equal(master.excerpt_of(path, held).samples, master.excerpt_of(path).samples)
