"""The parameter schema: ranges, normalisation, the JSON chain format and its validation."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from mixbridge.analysis.errors import SettingsError
from mixbridge.effects.schema import (
    DEFAULT_ENABLED,
    EQ_STAGES,
    PARAM_INDEX,
    PARAMS,
    SCHEMA_VERSION,
    STAGES,
    SWITCH_TEXT,
    ChainSettings,
    describe,
    stage_of,
    stage_params,
)

PARAM_IDS = [p.name for p in PARAMS]


def _random_settings(rng: np.random.Generator) -> ChainSettings:
    """Every parameter at a random in-range value (full float precision), random on/off."""
    values = {p.name: p.denormalise(rng.uniform()) for p in PARAMS}
    enabled = {s: bool(rng.integers(2)) for s in STAGES}
    return ChainSettings.create(values, enabled)


# ---- the table --------------------------------------------------------------------------
@pytest.mark.parametrize("spec", PARAMS, ids=PARAM_IDS)
def test_default_is_within_range(spec):
    assert spec.min < spec.max
    assert spec.min <= spec.default <= spec.max
    assert spec.check(spec.default) == spec.default


@pytest.mark.parametrize("spec", PARAMS, ids=PARAM_IDS)
def test_log_scale_is_used_for_hz_ms_q_and_ratio(spec):
    """STYLE point 5: log scale for Hz and ms (and Q and ratio, as the README says)."""
    wants_log = spec.unit in ("Hz", "ms", ":1") or spec.name.endswith(".q")
    assert spec.scale == ("log" if wants_log else "lin")
    if spec.scale == "log":
        assert spec.min > 0.0


def test_names_carry_their_stage_and_every_stage_has_parameters():
    assert len(PARAM_INDEX) == len(PARAMS)  # no duplicate names
    assert {stage_of(p.name) for p in PARAMS} | set(SWITCH_TEXT) == set(STAGES)
    assert all(not stage_params(stage) for stage in SWITCH_TEXT)  # a switch: on or off, nothing to set
    for p in PARAMS:
        assert p.name.count(".") == 1
    for stage in EQ_STAGES:
        assert {p.name for p in stage_params(stage)} == {f"{stage}.freq_hz", f"{stage}.gain_db", f"{stage}.q"}


# ---- normalisation ------------------------------------------------------------------------
@pytest.mark.parametrize("spec", PARAMS, ids=PARAM_IDS)
def test_normalise_denormalise_round_trip(spec):
    assert spec.normalise(spec.min) == pytest.approx(0.0, abs=1e-12)
    assert spec.normalise(spec.max) == pytest.approx(1.0, abs=1e-12)
    for u in np.linspace(0.0, 1.0, 11):
        value = spec.denormalise(u)
        assert spec.min - 1e-9 <= value <= spec.max + 1e-9
        assert spec.normalise(value) == pytest.approx(u, abs=1e-12)
    for value in (spec.min, spec.default, spec.max, 0.5 * (spec.min + spec.max)):
        assert spec.denormalise(spec.normalise(value)) == pytest.approx(value, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("spec", PARAMS, ids=PARAM_IDS)
def test_midpoint_is_geometric_on_log_and_arithmetic_on_lin(spec):
    expected = math.sqrt(spec.min * spec.max) if spec.scale == "log" else 0.5 * (spec.min + spec.max)
    assert spec.denormalise(0.5) == pytest.approx(expected, rel=1e-12)


def test_denormalise_clips_outside_the_unit_interval():
    spec = PARAM_INDEX["highpass.cutoff_hz"]
    assert spec.denormalise(-0.5) == pytest.approx(spec.min)
    assert spec.denormalise(1.5) == pytest.approx(spec.max)


def test_known_values_on_each_scale():
    # log: 10..300 Hz, 1 decade + log10(3): 100 Hz sits at log(10)/log(30)
    hp = PARAM_INDEX["highpass.cutoff_hz"]
    assert hp.normalise(100.0) == pytest.approx(math.log(10.0) / math.log(30.0), abs=1e-12)
    # lin: -12..12 dB, +6 dB is three quarters of the way
    assert PARAM_INDEX["peak1.gain_db"].normalise(6.0) == pytest.approx(0.75, abs=1e-12)


# ---- JSON round trip -----------------------------------------------------------------------
def test_to_dict_has_the_documented_layout():
    data = ChainSettings.create({"trim.gain_db": 2.0}).to_dict()
    assert data["schema_version"] == SCHEMA_VERSION == 4
    assert list(data["stages"]) == list(STAGES) and STAGES[0] == "polarity"
    assert data["stages"]["polarity"] == {"enabled": False}
    assert data["stages"]["trim"] == {"enabled": True, "gain_db": 2.0}
    assert set(data["stages"]["peak1"]) == {"enabled", "freq_hz", "gain_db", "q"}
    json.dumps(data, allow_nan=False)  # plain JSON


def test_dict_round_trip_is_exact_for_preset_values():
    settings = ChainSettings.create(
        {"trim.gain_db": 1.5, "peak1.freq_hz": 200.0, "peak1.gain_db": -4.9, "peak1.q": 0.9,
         "compressor.ratio": 3.0, "reverb.wet": 0.1, "stereo.width_percent": 80.0},
        {"compressor": True, "reverb": True, "high_shelf": False})
    again = ChainSettings.from_dict(settings.to_dict())
    assert again == settings
    assert again is not settings


def test_dict_round_trip_is_exact_for_any_in_range_value(rng):
    """A chain saved and loaded is the chain that was used, to the last bit (JSON holds any
    float exactly; the DSP baseline's trim, for one, is a full-precision float)."""
    for _ in range(20):
        settings = _random_settings(rng)
        again = ChainSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
        mismatched = {k: (settings[k], again[k]) for k in PARAM_INDEX if again[k] != settings[k]}
        assert not mismatched, f"values changed by the round trip: {mismatched}"
        assert dict(again.enabled) == dict(settings.enabled)


def test_save_load_round_trip_is_exact(rng, tmp_path):
    for i in range(5):
        settings = _random_settings(rng)
        path = settings.save(tmp_path / f"chain{i}.json")
        assert path.exists()
        loaded = ChainSettings.load(path)
        assert loaded == settings
        assert ChainSettings.load(loaded.save(tmp_path / f"again{i}.json")) == settings


def test_save_writes_only_the_file(tmp_path):
    ChainSettings.create().save(tmp_path / "chain.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.json"]


def test_chain_of_schema_version_3_reads_with_the_expander_off(caplog):
    data = ChainSettings.create({"peak1.gain_db": 3.0}).to_dict()
    data["schema_version"] = 3
    del data["stages"]["expander"]
    with caplog.at_level("INFO"):
        settings = ChainSettings.from_dict(data, "old.json")
    assert settings["peak1.gain_db"] == 3.0 and not settings.is_on("expander")
    assert "old.json: chain of schema version 3 read with the expander (added in version 4) off" in caplog.text
    data["stages"]["expander"] = {"enabled": True, "ratio": 1.5}
    with pytest.raises(SettingsError, match="schema_version 3 has no expander stage"):
        ChainSettings.from_dict(data, "old.json")


def test_missing_stages_and_parameters_take_defaults():
    settings = ChainSettings.from_dict({"schema_version": 1, "stages": {"peak1": {"gain_db": 3.0}}})
    assert settings["peak1.gain_db"] == 3.0
    assert settings["peak1.freq_hz"] == PARAM_INDEX["peak1.freq_hz"].default
    assert dict(settings.enabled) == dict(DEFAULT_ENABLED)


# ---- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,value", [
    ("peak1.gain_db", 12.5), ("peak1.gain_db", -30.0), ("highpass.cutoff_hz", 5.0),
    ("compressor.ratio", 0.5), ("stereo.width_percent", 250.0), ("reverb.wet", 1.01),
    ("expander.ratio", 0.9), ("expander.range_db", 20.0),
])
def test_out_of_range_value_names_the_parameter_and_its_range(name, value):
    spec = PARAM_INDEX[name]
    with pytest.raises(SettingsError) as err:
        ChainSettings.create({name: value})
    message = str(err.value)
    assert name in message
    assert f"[{spec.min:g}, {spec.max:g}]" in message
    assert err.value.exit_code == 7


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(value):
    with pytest.raises(SettingsError, match="trim.gain_db"):
        ChainSettings.create({"trim.gain_db": value})


def test_range_ends_are_accepted():
    for spec in PARAMS:
        assert ChainSettings.create({spec.name: spec.min})[spec.name] == spec.min
        assert ChainSettings.create({spec.name: spec.max})[spec.name] == spec.max


def test_unknown_parameter_lists_the_valid_names():
    with pytest.raises(SettingsError) as err:
        ChainSettings.create({"peak1.gain": 3.0})
    message = str(err.value)
    assert "peak1.gain" in message
    for name in PARAM_INDEX:
        assert name in message


def test_unknown_stage_lists_the_valid_stages():
    with pytest.raises(SettingsError) as err:
        ChainSettings.create(enabled={"limiter": True})
    message = str(err.value)
    assert "limiter" in message
    for stage in STAGES:
        assert stage in message


def test_unknown_parameter_lookup_lists_the_valid_names():
    with pytest.raises(SettingsError) as err:
        ChainSettings.create()["compressor.knee_db"]
    assert "compressor.knee_db" in str(err.value) and "compressor.threshold_db" in str(err.value)


@pytest.mark.parametrize("stages,needle", [
    ({"eq": {"enabled": True}}, "eq"),
    ({"peak1": {"gain": 3.0}}, "peak1.gain"),
])
def test_chain_file_with_unknown_stage_or_parameter(stages, needle, tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"schema_version": 1, "stages": stages}))
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(path)
    message = str(err.value)
    assert str(path) in message and needle in message
    assert "valid:" in message


def test_chain_file_with_out_of_range_value_names_file_parameter_and_range(tmp_path):
    path = tmp_path / "chain.json"
    data = ChainSettings.create().to_dict()
    data["stages"]["compressor"]["ratio"] = 40.0
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(path)
    message = str(err.value)
    assert str(path) in message and "compressor.ratio" in message and "[1, 20]" in message


@pytest.mark.parametrize("version", [0, 5, "3", True, None])
def test_chain_file_of_another_schema_version(version, tmp_path):
    path = tmp_path / "chain.json"
    data = ChainSettings.create().to_dict()
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(path)
    assert str(path) in str(err.value) and "schema_version" in str(err.value)
    assert err.value.exit_code == 7


@pytest.mark.parametrize("text", [
    "{not json", "", "[1, 2, 3]", '"a string"', '{"schema_version": 1}',
    '{"schema_version": 1, "stages": [1, 2]}', '{"schema_version": 1, "stages": {"trim": 5}}',
    '{"schema_version": 1, "stages": {"trim": {"gain_db": "loud"}}}',
    '{"schema_version": 1, "stages": {"trim": {"gain_db": null}}}',
])
def test_malformed_chain_file_names_the_file(text, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(path)
    assert str(path) in str(err.value)
    assert err.value.exit_code == 7


@pytest.mark.parametrize("flag", ["false", "off"])
def test_non_boolean_enabled_flag_is_refused(flag, tmp_path):
    """``"enabled": "false"`` must not silently switch a stage on (bool("false") is True)."""
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"schema_version": 1, "stages": {"compressor": {"enabled": flag}}}))
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(path)
    assert str(path) in str(err.value) and "compressor" in str(err.value)


def test_missing_chain_file_names_the_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(path)
    assert str(path) in str(err.value) and "not found" in str(err.value)


def test_chain_file_that_is_a_directory(tmp_path):
    with pytest.raises(SettingsError) as err:
        ChainSettings.load(tmp_path)
    assert str(tmp_path) in str(err.value)


# ---- immutability -----------------------------------------------------------------------------
def test_chain_settings_is_immutable():
    settings = ChainSettings.create({"peak1.gain_db": 2.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.values = {}
    with pytest.raises(TypeError):
        settings.values["peak1.gain_db"] = 5.0
    with pytest.raises(TypeError):
        settings.enabled["reverb"] = True
    assert settings["peak1.gain_db"] == 2.0 and not settings.is_on("reverb")


def test_replace_returns_a_new_object_and_leaves_the_original():
    settings = ChainSettings.create({"peak1.gain_db": 2.0})
    changed = settings.replace({"peak1.gain_db": -3.0}, {"reverb": True})
    assert changed is not settings
    assert changed["peak1.gain_db"] == -3.0 and changed.is_on("reverb")
    assert settings["peak1.gain_db"] == 2.0 and not settings.is_on("reverb")
    assert changed != settings
    with pytest.raises(SettingsError, match="peak1.gain_db"):
        settings.replace({"peak1.gain_db": 99.0})
    assert settings["peak1.gain_db"] == 2.0


def test_settings_do_not_alias_the_callers_dicts():
    values, enabled = {"trim.gain_db": 1.0}, {"reverb": True}
    settings = ChainSettings.create(values, enabled)
    values["trim.gain_db"] = 9.0
    enabled["reverb"] = False
    assert settings["trim.gain_db"] == 1.0 and settings.is_on("reverb")


def test_fresh_chains_do_not_share_state():
    a, b = ChainSettings.create(), ChainSettings.create()
    a2 = a.replace({"trim.gain_db": 3.0})
    assert b["trim.gain_db"] == 0.0 and a["trim.gain_db"] == 0.0 and a2["trim.gain_db"] == 3.0


# ---- describe ----------------------------------------------------------------------------------
def test_describe_lists_active_stages_in_signal_order():
    settings = ChainSettings.create(
        {"trim.gain_db": 2.0, "peak1.freq_hz": 200.0, "peak1.gain_db": -4.9, "peak1.q": 0.9,
         "high_shelf.freq_hz": 10000.0, "high_shelf.gain_db": 1.5, "compressor.ratio": 3.0,
         "stereo.width_percent": 125.0},
        {"compressor": True})
    lines = describe(settings)
    assert lines[0].startswith("input trim") and "+2.0 dB" in lines[0]
    assert any(line.startswith("EQ band 1") and "200 Hz" in line and "-4.9 dB" in line and "Q 0.90" in line
               for line in lines)
    assert any(line.startswith("high shelf") and "10.00 kHz" in line for line in lines)
    assert any(line.startswith("compressor") and "3.0:1" in line for line in lines)
    assert lines[-1].startswith("stereo width") and "125 %" in lines[-1]
    # EQ bands at 0 dB and switched-off stages are left out
    assert not any(line.startswith(("EQ band 2", "low shelf", "reverb", "high-pass")) for line in lines)
    order = [next(i for i, line in enumerate(lines) if line.startswith(label))
             for label in ("input trim", "EQ band 1", "high shelf", "compressor", "stereo width")]
    assert order == sorted(order)


def test_the_stage_table_is_the_one_source_of_stage_facts():
    from mixbridge.effects.schema import LINEAR_STAGES, STAGE_LABELS, STAGE_SPECS, STAGES, switched_on

    assert STAGES == tuple(st.name for st in STAGE_SPECS) and set(STAGE_LABELS) == set(STAGES)
    assert LINEAR_STAGES == set(STAGES) - {"expander", "compressor", "reverb"}
    neutral = ChainSettings.create({"reverb.wet": 0.0}, {s: True for s in STAGES})
    assert [s for s in STAGES if neutral.active(s)] == ["polarity", "highpass", "compressor"]  # no neutral value: on is active
    moved = neutral.replace({"peak2.gain_db": 1.5, "stereo.width_percent": 90.0, "reverb.wet": 0.1,
                             "expander.ratio": 1.5})
    assert moved.active("peak2") and moved.active("stereo") and moved.active("reverb") and moved.active("expander")
    assert not moved.replace(enabled={"peak2": False}).active("peak2")
    assert switched_on("compressor", {"compressor.ratio": 1.2}) and not switched_on("compressor", {"compressor.ratio": 1.0})
    assert switched_on("reverb", {"reverb.wet": 0.01}) and not switched_on("reverb", {"reverb.wet": 0.0})
    assert ChainSettings.create({"compressor.amount_percent": 40.0}).parallel_blend == pytest.approx(0.4)


def test_a_version_2_chain_reads_with_the_polarity_stage_off_and_cannot_name_it(tmp_path):
    data = ChainSettings.create({"trim.gain_db": 1.5}).to_dict()
    del data["stages"]["polarity"], data["stages"]["expander"]
    data["schema_version"] = 2
    settings = ChainSettings.from_dict(data)
    assert not settings.is_on("polarity") and settings["trim.gain_db"] == 1.5
    data["stages"]["polarity"] = {"enabled": True}
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match="version 2 has no polarity stage") as err:
        ChainSettings.load(path)
    assert str(path) in str(err.value)


def test_the_polarity_stage_round_trips_and_is_described():
    settings = ChainSettings.create(enabled={"polarity": True})
    assert ChainSettings.from_dict(settings.to_dict()) == settings and settings.active("polarity")
    assert describe(settings)[0].split() == ["polarity", "right", "channel", "inverted"]
