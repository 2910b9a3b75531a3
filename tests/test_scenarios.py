"""Scenario loading: built-ins, files, extends, and clear errors for bad input."""
import pytest

from twin.scenarios import ScenarioError, list_scenarios, load_scenario
from twin.scenarios.loader import parse_duration


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_builtins_load_and_include_the_required_ones():
    names = [n for n, _ in list_scenarios()]
    for required in ("node", "prototype"):
        assert required in names
    for name in names:
        sc = load_scenario(name)
        assert sc.name == name and sc.duration_ns > 0


def test_default_is_node_one_day_in_the_eclipse_season():
    sc = load_scenario()
    assert sc.name == "node"
    assert sc.run.epoch.startswith("2027-06-21") and sc.orbit.ltan_hours == 18.0
    assert sc.duration_ns == 86400 * 10**9


@pytest.mark.parametrize("text,expected", [
    ("1d", 86400.0), ("6h", 21600.0), ("90m", 5400.0), ("600s", 600.0), ("250ms", 0.25), ("42", 42.0),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["-5m", "0s", "abc", "5 parsecs", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_extends_overrides_only_what_it_sets(tmp_path):
    path = write(tmp_path, 'extends = "node"\n[battery]\ninitial_soc = 0.5\n[run]\nduration = "2h"\n')
    sc = load_scenario(path)
    base = load_scenario("node")
    assert sc.battery.initial_soc == 0.5 and sc.battery.capacity_wh == base.battery.capacity_wh
    assert sc.duration_ns == 7200 * 10**9 and sc.name == "s"


def test_command_line_overrides(tmp_path):
    sc = load_scenario("node", epoch="2027-12-21T06:00:00Z", duration="90m", seed=7)
    assert sc.run.epoch == "2027-12-21T06:00:00Z" and sc.duration_ns == 5400 * 10**9 and sc.run.seed == 7


@pytest.mark.parametrize("text,key,reason", [
    ("[battery]\ncapacity_wh = -5\n", "battery.capacity_wh", "must be > 0"),
    ("[battery]\ncapacty_wh = 5\n", "battery.capacty_wh", "did you mean 'capacity_wh'"),
    ("[orbit]\naltitude_km = 'high'\n", "orbit.altitude_km", "must be a number"),
    ("[orbit]\naltitude_km = 5000\n", "orbit.altitude_km", "must be <= 2000"),
    ("[run]\nduration = '-1h'\n", "run", "duration"),
    ("[run]\nepoch = 'yesterday'\n", "run", "ISO 8601"),
    ("[tpu]\nchips_per_group = 2.5\n", "tpu.chips_per_group", "whole number"),
    ("[[faults]]\nkind = 'melt'\n", "faults[0]", "unknown fault kind"),
    ("[[faults]]\nkind = 'nan'\ntarget = 't_nowhere'\n", "faults[0]", "unknown channel"),
    ("[fsw.thermal]\nbattery_heater_on_c = 20\n", "fsw.thermal", "battery_heater_off_c"),
    ("bogus = 1\n", "bogus", "unknown key"),
])
def test_bad_values_name_file_key_and_reason(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    message = str(err.value)
    assert path in message and f"key '{key}" in message and reason in message
    assert "\n" not in message


def test_bad_toml_and_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(write(tmp_path, "[battery\n"))
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(str(tmp_path / "absent.toml"))
    with pytest.raises(ScenarioError, match="unknown scenario .*node"):
        load_scenario("no-such-scenario")


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(ScenarioError, match="extends"):
        load_scenario(str(tmp_path / "a.toml"))


def test_bad_command_line_overrides_name_the_flag():
    with pytest.raises(ScenarioError, match="--duration"):
        load_scenario("node", duration="-3h")
    with pytest.raises(ScenarioError, match="--epoch"):
        load_scenario("node", epoch="2027-13-45")
    with pytest.raises(ScenarioError, match="--seed"):
        load_scenario("node", seed=-1)
