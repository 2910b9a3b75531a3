"""Reference scenarios, fault side: each fault injected mid-run and the FDIR response expected from
``twin/fsw/modes.py``'s table, with nothing lost from the telemetry record.

Faults are injected the same way on every rig: into the simulated board on ``sim``, by signed
SC_FAULT_INJECT inside the emulator on ``emulated-*``, and at the link for link faults.
"""
import math

import pytest

from twin.fsw.downlink_queue import COMPUTE

pytestmark = [pytest.mark.rig_needs("lockstep", "fault_injection"), pytest.mark.scenario("scenarios/nominal.toml")]


def nominal(t):
    return t.mode == "NOMINAL"


async def test_nan_battery_temperature_inhibits_charging_then_heater_fallback(twin):
    """Row 2: charging off at once; after 5 invalid samples the heater on its fallback duty, DEGRADED."""
    await twin.run_until(nominal, within="5m")
    twin.inject("nan", "t_battery_c", duration="60s")
    s = await twin.run_until(lambda t: not t.cmd.charge_enable, within="10s")
    assert math.isnan(s.t_battery_c)
    s = await twin.run_until(lambda t: t.mode == "DEGRADED", within="1m")
    assert s.cmd.heater_duty[0] == pytest.approx(twin.fsw.config.thermal.battery_heater_fallback_duty)
    assert twin.events("t_battery_c failed")
    # The fault ends after 60 s; 30 good samples later the sensor has recovered.
    await twin.run_until(nominal, within="3m")
    assert twin.events("t_battery_c recovered")
    twin.assert_telemetry_complete()


async def test_stuck_tpu_temperature_caps_its_group_and_degrades(twin):
    """Row 1: a reading frozen for ``monitor.stuck_samples`` is STUCK; 5 samples later group 0 is capped."""
    await twin.run_until(nominal, within="5m")
    twin.inject("stuck", "t_tpu0_c")
    s = await twin.run_until(lambda t: t.mode == "DEGRADED", within="2m")
    assert s.cmd.tpu_cap[0] == 0.0 and min(s.cmd.tpu_cap[1:]) > 0.0
    failed = twin.events("t_tpu0_c failed")
    assert failed and "STUCK" in failed[0].why.upper()
    twin.assert_telemetry_complete()


@pytest.mark.scenario("scenarios/heater-failure.toml")
async def test_failed_battery_heater_inhibits_charging_then_safe(twin):
    """Rows 5 and 7: the battery heater fails off on a cold spacecraft; below 0 C charging stops,
    below -10 C for 3 samples the spacecraft goes SAFE."""
    await twin.run_until(nominal, within="5m")
    twin.inject("heater_off", "battery")
    s = await twin.run_until(lambda t: not t.cmd.charge_enable, within="30m")
    assert s.t_battery_c < twin.fsw.config.thermal.charge_min_c + 0.5
    assert s.cmd.heater_duty[0] > 0.5 and s.i_heater_battery_a < 0.1  # commanded on, drawing nothing
    s = await twin.run_until(lambda t: t.mode == "SAFE", within="30m")
    assert s.t_battery_c < twin.fsw.config.fdir.battery_safe_lo_c
    assert "t_battery_c" in twin.events("-> SAFE")[-1].why
    twin.assert_telemetry_complete()


async def test_tpu_crash_is_ridden_out_without_a_mode_change(twin):
    """A chip crash (SEFI) is not an FDIR event: the chips reboot on their own; compute output falls
    with the chips down and recovers, the mode stays NOMINAL and the rail stays on."""
    queue = twin.fsw.queue
    await twin.run_until(nominal, within="5m")
    await twin.run_for("30s")
    g0 = queue.generated[COMPUTE]
    await twin.run_for("20s")
    rate_before = (queue.generated[COMPUTE] - g0) / 20
    twin.inject("tpu_crash", "tpu1", value=24)
    onset = twin.executive.ticks
    await twin.run_until(lambda t: t.tpu1_online == 0, within="10s")
    g1 = queue.generated[COMPUTE]
    await twin.run_for("20s")
    rate_during = (queue.generated[COMPUTE] - g1) / 20
    assert rate_during / rate_before == pytest.approx(72 / 96, abs=0.05)  # 24 of 96 chips down
    await twin.run_until(lambda t: t.tpu1_online == 24, within="10m")
    rows = twin.telemetry
    assert (rows["fsw_mode"][onset:] == 2).all() and rows["switch_tpu"][onset:].all()
    assert not twin.events("-> SAFE") and not twin.events("-> DEGRADED")
    twin.assert_telemetry_complete()


async def test_board_reboot_sends_the_spacecraft_safe(twin):
    """Row 10: ``board_boot_count`` changed -> SAFE; NOMINAL again after the SAFE exit dwell."""
    await twin.run_until(nominal, within="5m")
    boots = twin.state.board_boot_count
    twin.inject("reboot")
    s = await twin.run_until(lambda t: t.mode == "SAFE", within="10s")
    assert s.board_boot_count == boots + 1
    assert "board_boot_count" in twin.events("-> SAFE")[-1].why
    await twin.run_until(nominal, within="5m")
    twin.assert_telemetry_complete()


async def test_injected_faults_give_the_same_telemetry_as_scheduled_ones_on_the_simulated_board(
        twin, scenario_ref, seed):
    """Injected mid-run on any rig == given up front to an in-process simulated board: same digest."""
    from twin.run import run_scenario
    from twin.scenarios import load_scenario
    from twin.sim.faults import FaultSpec
    from twin.sim.simboard import SimBoard

    await twin.run_for("70s")
    twin.inject("offset", "v_bus_v", duration="20s", value=2.5)
    twin.inject("reboot", at="100s")
    await twin.run_for("60s")
    reference = load_scenario(scenario_ref, duration="130s", seed=seed)
    specs = [FaultSpec(at="70s", kind="offset", target="v_bus_v", duration="20s", value=2.5),
             FaultSpec(at="100s", kind="reboot")]
    ref = await run_scenario(reference, board=SimBoard(reference, seed, faults=specs), plots=False)
    assert ref.executive.ticks == twin.executive.ticks == 130
    assert twin.recorder.digest == ref.recorder.digest
    assert twin.events("board reboot detected")
    twin.assert_telemetry_complete()
