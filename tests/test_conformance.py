"""EBU Tech 3341 / Tech 3342 minimum-requirements conformance of the loudness and true-peak meter.

The signals are synthesised in ``tests/ebu_signals.py`` from the standards' text (sources and
reasoning are documented there); every case runs at 48 kHz and 44.1 kHz.  Tolerances are
the standards': M, S, I +-0.1 LU; true peak +0.2/-0.4 dB; LRA +-1 LU.

A second group cross-checks integrated loudness and LRA against libebur128 (through
``pyebur128``) within 0.05 LU and 0.5 LU.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from ebu_signals import (
    CASES,
    CASES_BY_ID,
    FILE_ONLY_CASES,
    LOUDNESS_TOL_LU,
    LRA_TOL_LU,
    TRUE_PEAK_TOL_DOWN_DB,
    TRUE_PEAK_TOL_UP_DB,
    EbuCase,
)

from mixbridge.analysis.loudness import LoudnessResult, measure_loudness
from mixbridge.analysis.truepeak import true_peak_dbtp

SAMPLE_RATES = (48000, 44100)
EPS_S = 1e-9  # float slack when selecting series entries by time

ORACLE_INTEGRATED_TOL_LU = 0.05
ORACLE_LRA_TOL_LU = 0.5


@functools.lru_cache(maxsize=None)
def _signal(case_id: str, sample_rate: int):
    samples, weights = CASES_BY_ID[case_id].make(sample_rate)
    samples.setflags(write=False)
    return samples, weights


@functools.lru_cache(maxsize=None)
def _measure(case_id: str, sample_rate: int) -> LoudnessResult:
    samples, weights = _signal(case_id, sample_rate)
    return measure_loudness(samples, sample_rate, channel_weights=weights)


def _params(predicate):
    return [
        pytest.param(case, fs, id=f"{case.id}@{fs}")
        for case in CASES
        if predicate(case)
        for fs in SAMPLE_RATES
    ]


def _within(measured: float, expected: float, tol: float) -> bool:
    return bool(np.isfinite(measured)) and abs(measured - expected) <= tol + 1e-9


# ---------------------------------------------------------------------------------------------
# Tech 3341 / 3342 expectations


@pytest.mark.parametrize("case, fs", _params(lambda c: c.integrated_lufs is not None))
def test_integrated(case: EbuCase, fs: int):
    r = _measure(case.id, fs)
    assert _within(r.integrated_lufs, case.integrated_lufs, LOUDNESS_TOL_LU), (
        f"{case.id} @ {fs} Hz: I = {r.integrated_lufs:.3f} LUFS, "
        f"expected {case.integrated_lufs:.1f} +-{LOUDNESS_TOL_LU} ({case.source})"
    )


def _series_check(case: EbuCase, fs: int, values: np.ndarray, times: np.ndarray,
                  from_s: float, expected: float, name: str) -> None:
    selected = values[times >= from_s - EPS_S]
    assert selected.size > 0, f"{case.id} @ {fs} Hz: no {name} entries at t >= {from_s} s"
    worst = selected[np.argmax(np.abs(selected - expected))]
    assert np.all(np.isfinite(selected)) and abs(worst - expected) <= LOUDNESS_TOL_LU + 1e-9, (
        f"{case.id} @ {fs} Hz: {name} for t >= {from_s} s spans "
        f"[{selected.min():.3f}, {selected.max():.3f}] LUFS ({selected.size} entries), "
        f"expected constant {expected:.1f} +-{LOUDNESS_TOL_LU} ({case.source})"
    )


@pytest.mark.parametrize("case, fs", _params(lambda c: c.momentary_lufs is not None))
def test_momentary_constant(case: EbuCase, fs: int):
    r = _measure(case.id, fs)
    _series_check(case, fs, r.momentary_lufs, r.series_times_s,
                  max(case.momentary_from_s, 0.4), case.momentary_lufs, "M")


@pytest.mark.parametrize("case, fs", _params(lambda c: c.short_term_lufs is not None))
def test_short_term_constant(case: EbuCase, fs: int):
    r = _measure(case.id, fs)
    # short-term entries before 3 s of audio are undefined in our API: never assert on them
    _series_check(case, fs, r.short_term_lufs, r.series_times_s,
                  max(case.short_term_from_s, 3.0), case.short_term_lufs, "S")


@pytest.mark.parametrize("case, fs", _params(lambda c: c.max_momentary_lufs is not None))
def test_max_momentary(case: EbuCase, fs: int):
    r = _measure(case.id, fs)
    assert _within(r.max_momentary_lufs, case.max_momentary_lufs, LOUDNESS_TOL_LU), (
        f"{case.id} @ {fs} Hz: max M = {r.max_momentary_lufs:.3f} LUFS, "
        f"expected {case.max_momentary_lufs:.1f} +-{LOUDNESS_TOL_LU} ({case.source})"
    )


@pytest.mark.parametrize("case, fs", _params(lambda c: c.max_short_term_lufs is not None))
def test_max_short_term(case: EbuCase, fs: int):
    r = _measure(case.id, fs)
    assert _within(r.max_short_term_lufs, case.max_short_term_lufs, LOUDNESS_TOL_LU), (
        f"{case.id} @ {fs} Hz: max S = {r.max_short_term_lufs:.3f} LUFS, "
        f"expected {case.max_short_term_lufs:.1f} +-{LOUDNESS_TOL_LU} ({case.source})"
    )


def _successive_check(case: EbuCase, fs: int, readings, attr: str, name: str) -> None:
    """Live-meter test (Tech 3341 cases 11, 14): the max-hold reading after each segment.

    The reading at time t is the maximum over everything measured since reset, i.e. the
    ``max_*`` of the signal truncated at t (the meter is reset before the measurement).
    """
    samples, weights = _signal(case.id, fs)
    failures = []
    for t_read, expected in readings:
        prefix = samples[:, : int(round(t_read * fs))]
        got = getattr(measure_loudness(prefix, fs, channel_weights=weights), attr)
        if not _within(got, expected, LOUDNESS_TOL_LU):
            failures.append(f"at {t_read:.2f} s: {got:.3f} (expected {expected:.1f})")
    assert not failures, (
        f"{case.id} @ {fs} Hz: successive max {name} outside +-{LOUDNESS_TOL_LU} LU: "
        + "; ".join(failures) + f" ({case.source})"
    )


@pytest.mark.parametrize("case, fs", _params(lambda c: bool(c.successive_max_momentary)))
def test_successive_max_momentary(case: EbuCase, fs: int):
    _successive_check(case, fs, case.successive_max_momentary, "max_momentary_lufs", "M")


@pytest.mark.parametrize("case, fs", _params(lambda c: bool(c.successive_max_short_term)))
def test_successive_max_short_term(case: EbuCase, fs: int):
    _successive_check(case, fs, case.successive_max_short_term, "max_short_term_lufs", "S")


@pytest.mark.parametrize("case, fs", _params(lambda c: c.true_peak_dbtp is not None))
def test_true_peak(case: EbuCase, fs: int):
    samples, _ = _signal(case.id, fs)
    got = true_peak_dbtp(samples, fs)
    lo = case.true_peak_dbtp - TRUE_PEAK_TOL_DOWN_DB
    hi = case.true_peak_dbtp + TRUE_PEAK_TOL_UP_DB
    assert np.isfinite(got) and lo - 1e-9 <= got <= hi + 1e-9, (
        f"{case.id} @ {fs} Hz: true peak = {got:.3f} dBTP, expected {case.true_peak_dbtp:+.1f} "
        f"+{TRUE_PEAK_TOL_UP_DB}/-{TRUE_PEAK_TOL_DOWN_DB} dB ({case.source})"
    )


@pytest.mark.parametrize("case, fs", _params(lambda c: c.loudness_range_lu is not None))
def test_loudness_range(case: EbuCase, fs: int):
    r = _measure(case.id, fs)
    assert _within(r.loudness_range_lu, case.loudness_range_lu, LRA_TOL_LU), (
        f"{case.id} @ {fs} Hz: LRA = {r.loudness_range_lu:.3f} LU, "
        f"expected {case.loudness_range_lu:.0f} +-{LRA_TOL_LU} ({case.source})"
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in FILE_ONLY_CASES])
def test_file_only_cases(case):
    pytest.skip(f"{case.id} ({case.source}): {case.reason}")


# ---------------------------------------------------------------------------------------------
# the synthesis itself: durations and levels straight from the tables


_EXPECTED_DURATION_S = {
    "3341-1": 20.0, "3341-2": 20.0, "3341-3": 80.0, "3341-4": 100.0, "3341-5": 60.1,
    "3341-6": 20.0, "3341-9": 15.0, "3341-11": 120.0, "3341-12": 10.0, "3341-14": 16.0,
    "3342-1": 40.0, "3342-2": 40.0, "3342-3": 40.0, "3342-4": 100.0,
    **{f"3341-10-{i + 1}": i * 0.15 + 4.0 for i in range(20)},
    **{f"3341-13-{i + 1}": i * 0.020 + 1.4 for i in range(20)},
}


@pytest.mark.parametrize("fs", SAMPLE_RATES)
def test_signal_definitions(fs: int):
    for case_id, seconds in _EXPECTED_DURATION_S.items():
        samples, weights = CASES_BY_ID[case_id].make(fs)
        assert samples.dtype == np.float64 and samples.ndim == 2
        assert samples.shape[1] == int(round(seconds * fs)), case_id
        assert len(weights) == samples.shape[0], case_id
    one, w = CASES_BY_ID["3341-1"].make(fs)
    assert w == (1.0, 1.0) and np.array_equal(one[0], one[1])
    assert abs(np.abs(one).max() - 10 ** (-23 / 20)) < 1e-4
    six, w = CASES_BY_ID["3341-6"].make(fs)
    assert w == (1.0, 1.0, 1.0, 1.41, 1.41)
    peaks_db = 20 * np.log10(np.abs(six).max(axis=1))
    assert np.allclose(peaks_db, [-28.0, -28.0, -24.0, -30.0, -30.0], atol=0.01)


# ---------------------------------------------------------------------------------------------
# oracle: libebur128 (C reference implementation) through pyebur128


_ORACLE_INTEGRATED = ("3341-1", "3341-3", "3341-4", "3341-5", "3341-6", "3341-12", "3342-4")
_ORACLE_LRA = ("3341-3", "3341-5", "3341-9", "3342-1", "3342-2", "3342-3", "3342-4")

def _libebur128(case_id: str, fs: int) -> tuple[float, float]:
    pyebur128 = pytest.importorskip("pyebur128")
    samples, weights = _signal(case_id, fs)
    channels = samples.shape[0]
    mode = pyebur128.MeasurementMode.MODE_I | pyebur128.MeasurementMode.MODE_LRA
    state = pyebur128.R128State(channels, fs, mode)
    if channels == 5:  # L, R, C, Ls, Rs
        kinds = (pyebur128.ChannelType.LEFT, pyebur128.ChannelType.RIGHT,
                 pyebur128.ChannelType.CENTER, pyebur128.ChannelType.LEFT_SURROUND,
                 pyebur128.ChannelType.RIGHT_SURROUND)
    else:
        kinds = (pyebur128.ChannelType.LEFT, pyebur128.ChannelType.RIGHT)
    assert len(kinds) == channels and weights == ((1.0,) * 3 + (1.41,) * 2)[:channels]
    for index, kind in enumerate(kinds):
        state.set_channel(index, kind)
    interleaved = np.ascontiguousarray(samples.T).reshape(-1)
    state.add_frames(interleaved, samples.shape[1])
    return pyebur128.get_loudness_global(state), pyebur128.get_loudness_range(state)


@functools.lru_cache(maxsize=None)
def _oracle(case_id: str, fs: int) -> tuple[float, float]:
    return _libebur128(case_id, fs)


@pytest.mark.parametrize("case_id", _ORACLE_INTEGRATED)
@pytest.mark.parametrize("fs", SAMPLE_RATES)
def test_integrated_matches_libebur128(case_id: str, fs: int):
    ours = _measure(case_id, fs).integrated_lufs
    ref, _ = _oracle(case_id, fs)
    assert np.isfinite(ours) and abs(ours - ref) <= ORACLE_INTEGRATED_TOL_LU, (
        f"{case_id} @ {fs} Hz: I = {ours:.3f} LUFS, libebur128 {ref:.3f} "
        f"(tolerance {ORACLE_INTEGRATED_TOL_LU})"
    )


@pytest.mark.parametrize("case_id", _ORACLE_LRA)
@pytest.mark.parametrize("fs", SAMPLE_RATES)
def test_lra_matches_libebur128(case_id: str, fs: int):
    ours = _measure(case_id, fs).loudness_range_lu
    _, ref = _oracle(case_id, fs)
    assert np.isfinite(ours) and abs(ours - ref) <= ORACLE_LRA_TOL_LU, (
        f"{case_id} @ {fs} Hz: LRA = {ours:.3f} LU, libebur128 {ref:.3f} "
        f"(tolerance {ORACLE_LRA_TOL_LU})"
    )
