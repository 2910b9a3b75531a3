"""The whole flight software over four eclipse-season orbits against a small plant written here."""
import numpy as np
import pytest

from twin.fsw import NOMINAL, SAFE, FlightSoftware, FswConfig
from twin.hal import N_TPU_GROUPS

from .test_contact_plan import JUNE_21_2027, brute_force_eclipses, brute_force_track, brute_force_visible

OCV_SOC = [0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0]
OCV_V = [2.75, 3.10, 3.30, 3.45, 3.55, 3.62, 3.67, 3.72, 3.79, 3.87, 3.95, 4.05, 4.11, 4.20]
ARRAY_W, AVIONICS_W, DOWNLINK_W, LINK_W = 26000.0, 400.0, 150.0, 60.0
CAPACITY_J, R_OHM = 20000.0 * 3600.0, 0.010


class Plant:
    """Array + battery on an unregulated bus, first-order TPU groups, sunlight and contacts by brute force."""

    def __init__(self, cfg: FswConfig, seconds: int):
        t = np.arange(0.0, seconds, 1.0)
        r = brute_force_track(cfg.orbit, t)
        self.dark = brute_force_eclipses(cfg.orbit, t, r)
        self.visible = np.zeros(seconds, bool)
        for station in cfg.stations:
            self.visible |= brute_force_visible(cfg.orbit, station, t, cfg.min_elevation_deg, r)
        self.soc, self.t_tpu = 0.8, [30.0] * N_TPU_GROUPS
        self.i, self.v, self.p_tpu, self.p_shunt, self.lock = 0.0, 0.0, 0.0, 0.0, False
        self.step(0, None)

    def step(self, k, cmd):
        """Advance from second k-1 to k under ``cmd`` (None: everything off)."""
        voc = 24 * float(np.interp(self.soc, OCV_SOC, OCV_V))
        tpu = [0.0] * N_TPU_GROUPS
        load = AVIONICS_W
        if cmd is not None:
            if cmd.switch_tpu:
                tpu = [24 * (50.0 + 200.0 * cmd.tpu_cap[g]) for g in range(N_TPU_GROUPS)]
            load += sum(tpu) + cmd.heater_duty[0] * 200 + cmd.heater_duty[1] * 100
            load += DOWNLINK_W * cmd.downlink_enable + LINK_W * sum(cmd.isl_enable) * cmd.switch_optical
        avail = 0.0 if self.dark[k] else ARRAY_W
        net = avail - load
        if net > 0:
            self.i = min(net / voc, 120.0) if (cmd is None or cmd.charge_enable) and self.soc < 1 else 0.0
            self.p_shunt = net - self.i * voc
        else:
            self.i, self.p_shunt = net / voc, 0.0
        self.soc += voc * self.i * (0.98 if self.i > 0 else 1 / 0.98) / CAPACITY_J
        self.v = voc + self.i * R_OHM
        self.t_tpu = [t + (p - 150.0 * (t - 20.0)) / 2000.0 for t, p in zip(self.t_tpu, tpu)]
        self.p_tpu = sum(tpu)
        self.lock = bool(self.visible[k] and cmd is not None and cmd.downlink_enable)

    def readings(self, cmd):
        return {"v_battery_v": self.v, "v_bus_v": self.v, "i_battery_a": self.i, "i_tpu_a": self.p_tpu / self.v,
                "i_optical_a": (LINK_W * 4 / self.v) if cmd is not None and cmd.switch_optical else 0.0,
                "sun_present": 0.0 if self.dark[self._k] else 1.0, "ground_lock": 1.0 if self.lock else 0.0,
                **{f"t_tpu{g}_c": self.t_tpu[g] for g in range(N_TPU_GROUPS)}}


@pytest.fixture(scope="module")
def four_orbits():
    from .conftest import make_frame, run_tick
    cfg = FswConfig().__class__(orbit=FswConfig().orbit.__class__(epoch_unix_s=JUNE_21_2027))
    seconds = 4 * 5864
    plant = Plant(cfg, seconds)
    fsw = FlightSoftware(cfg)
    cmd, rows = None, []
    for k in range(seconds):
        if k:
            plant.step(k, cmd)
        plant._k = k
        dl_before = fsw.queue.total_downlinked
        cmd, hk = run_tick(fsw, make_frame(k, plant.readings(cmd)))
        merged = [0.0 if fsw.modes.tpu_temp_failed[g] else min(fsw.thermal.cap[g], fsw.power.cap)
                  for g in range(N_TPU_GROUPS)]
        rows.append(dict(k=k, mode=hk.mode, soc=plant.soc, dark=bool(plant.dark[k]), visible=bool(plant.visible[k]),
                         lock=plant.lock, sent=fsw.queue.total_downlinked - dl_before, cmd=cmd, hk=hk,
                         p_tpu=plant.p_tpu, shunt=plant.p_shunt, merged=merged, t_tpu=max(plant.t_tpu)))
    return fsw, rows


def test_boots_safe_then_runs_nominal_without_fdir_noise(four_orbits):
    fsw, rows = four_orbits
    assert rows[0]["mode"] == SAFE and all(r["mode"] == NOMINAL for r in rows[400:])
    assert [e.what for e in fsw.event_log] == ["mode SAFE -> NOMINAL"]
    assert all(r["hk"].shed_stage == 0 for r in rows)


def test_eclipses_spend_the_battery_to_the_floor_and_sunlight_refills_it(four_orbits):
    fsw, rows = four_orbits
    p = fsw.config.power
    floor = 1.0 - p.max_dod
    entries = [r["k"] for a, r in zip(rows, rows[1:]) if r["dark"] and not a["dark"]]
    exits = [r["k"] for a, r in zip(rows, rows[1:]) if a["dark"] and not r["dark"]]
    assert len(entries) >= 3
    for e in entries[1:]:
        assert rows[e]["soc"] > p.soc_target - 0.03          # charged for the eclipse
    for x in exits[1:]:
        assert floor - 0.02 < rows[x]["soc"] < floor + 0.05  # spent down to the floor, not below
    in_eclipse = [r["p_tpu"] for r in rows[entries[1]:exits[1]]]
    assert np.mean(in_eclipse) > 10000.0                      # the battery bought compute
    assert min(r["soc"] for r in rows) > floor - 0.02


def test_sunlight_is_shared_between_charging_and_compute_with_little_shunted(four_orbits):
    fsw, rows = four_orbits
    exits = [r["k"] for a, r in zip(rows, rows[1:]) if a["dark"] and not r["dark"]]
    sunlit = [r for r in rows[exits[0] + 120:] if not r["dark"]]
    assert np.mean([r["shunt"] for r in sunlit]) < 300.0          # the array's spare power is found and used
    assert np.mean([r["p_tpu"] for r in sunlit]) > 18000.0
    charging = [r["soc"] for r in rows[exits[1]:exits[1] + 3000]]
    assert charging[-1] > charging[0] + 0.15                        # while the battery refills


def test_command_merges_the_caps_and_keeps_the_tpus_under_their_limit(four_orbits):
    fsw, rows = four_orbits
    for r in rows:
        if r["cmd"].switch_tpu:
            assert r["cmd"].tpu_cap == pytest.approx(r["merged"])
        assert r["cmd"].switch_optical == (r["cmd"].switch_tpu and r["hk"].shed_stage < 2)
    assert max(r["t_tpu"] for r in rows) < fsw.config.thermal.tpu_limit_c


def test_downlink_only_in_contacts_bytes_only_with_lock_and_books_balance(four_orbits):
    fsw, rows = four_orbits
    visible = [r for r in rows if r["visible"]]
    assert len(visible) > 600
    assert all(r["cmd"].downlink_enable for r in visible[1:])          # every real contact second is planned
    margin = fsw.config.links.contact_margin_s
    assert sum(r["cmd"].downlink_enable for r in rows) < len(visible) + 2 * margin * 20
    assert all(r["lock"] for r in rows if r["sent"] > 0)              # bytes move only under lock
    assert sum(r["sent"] for r in rows) > 0
    hk = rows[-1]["hk"]
    assert hk.generated_bytes == hk.downlinked_bytes + hk.dropped_bytes + hk.queue_bytes
    ages = [r["hk"].oldest_age_s for r in rows]
    assert max(ages) < 2 * 5864                                       # nothing waits more than two orbits
