"""The flight software's configuration and its isolation from everything but the HAL."""
import ast
import dataclasses
import sys
from pathlib import Path

import pytest

import twin.fsw
from twin.fsw import FlightSoftware, FswConfig
from twin.fsw.config import BatteryConfig, MonitorConfig, PowerConfig, ThermalConfig
from twin.params import ParamError, param_info
from twin.scenarios.loader import ScenarioError, build_dataclass

FSW_DIR = Path(twin.fsw.__file__).parent
ALLOWED = {"twin.hal", "numpy", "twin.params"}   # twin.params: the param() declarations the scenario loader reads


def test_flight_software_imports_only_the_hal_stdlib_and_numpy():
    for path in FSW_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:                      # relative: inside twin.fsw
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert name in ALLOWED or name.startswith("twin.hal.") or top in sys.stdlib_module_names, \
                    f"{path.name} imports {name}"


def test_every_tunable_is_a_declared_parameter():
    top = FswConfig()
    for f in dataclasses.fields(FswConfig):
        group = getattr(top, f.name)
        if dataclasses.is_dataclass(group):
            for g in dataclasses.fields(group):
                assert param_info(g) is not None, f"{f.name}.{g.name} lacks param()"
        else:
            assert param_info(f) is not None, f"{f.name} lacks param()"


@pytest.mark.parametrize("make", [
    lambda: ThermalConfig(tpu_throttle_start_c=93.0),
    lambda: ThermalConfig(battery_heater_on_c=12.0),
    lambda: PowerConfig(shed2_soc=0.65),
    lambda: PowerConfig(max_dod=0.45),                 # the eclipse floor would sit below stage 1
    lambda: BatteryConfig(ocv_cell_v=(3.0, 2.9) + BatteryConfig().ocv_cell_v[2:]),
    lambda: MonitorConfig(stuck_exempt=("t_nowhere_c",)),
    lambda: FswConfig(stations=(("Nowhere", 95.0, 0.0),)),
])
def test_inconsistent_settings_are_refused(make):
    with pytest.raises(ParamError):
        make()


def test_scenario_tables_set_fields_with_range_checks():
    cfg = build_dataclass(FswConfig, {"thermal": {"tpu_limit_c": 90.0, "tpu_cap_zero_c": 88.0},
                                      "stations": [["Svalbard", 78.23, 15.41]],
                                      "battery": {"capacity_wh": 15000.0}, "rates": {"links_hz": 0.2}}, "test")
    assert cfg.thermal.tpu_limit_c == 90.0 and cfg.stations == (("Svalbard", 78.23, 15.41),)
    fsw = FlightSoftware(cfg)
    assert {t.name: t.rate_hz for t in fsw.tasks}["links"] == 0.2
    with pytest.raises(ScenarioError, match="tpu_limit_c"):
        build_dataclass(FswConfig, {"thermal": {"tpu_limit_c": 500.0}}, "test")
    with pytest.raises(ScenarioError, match="did you mean"):
        build_dataclass(FswConfig, {"power": {"shed1_sco": 0.5}}, "test")


def test_tasks_in_the_contract_order():
    fsw = FlightSoftware()
    assert [t.name for t in fsw.tasks] == ["monitor", "soc", "fdir", "thermal", "power", "links", "watchdog"]
    assert set(fsw.health) == {t.name for t in fsw.tasks} and all(fsw.health.values())
