"""Radiation events: Poisson statistics, power gating, reboots, injection, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest

from twin.models.radiation import RadiationModel, RadiationParams

YEAR = 365.25 * 86400.0


def run(model, n_steps, dt, powered_at, t0=0.0):
    """Step ``n_steps`` times; return summed (sdc, crashes) and the per-step lists."""
    sdc_steps, crash_steps = [], []
    for i in range(1, n_steps + 1):
        sdc, crashes = model.step(t0 + i * dt, dt, powered_at(i))
        sdc_steps.append(sdc)
        crash_steps.append(crashes)
    return np.array(sdc_steps), np.array(crash_steps)


def within_sigmas(count, mean, n_sigma=4.0):
    return abs(count - mean) <= n_sigma * math.sqrt(mean) + 1


def test_counts_over_a_year_match_poisson_expectation():
    """A scaled-rate year: groups always on, never on, and switched every 7 steps."""
    mult, chips, n_sat, dt = 20.0, 8, 4, 600.0
    model = RadiationModel(RadiationParams(rate_multiplier=mult), n_sat, 4, chips, np.random.default_rng(7))
    n_steps = int(YEAR / dt)
    on = np.array([True, True, False, True])
    half = np.array([True, True, False, False])
    on, half = np.tile(on, (n_sat, 1)), np.tile(half, (n_sat, 1))
    sdc, crashes = run(model, n_steps, dt, lambda i: on if (i // 7) % 2 == 0 else half)
    sdc_per_chip_year = 150.0 / 17.0 * mult
    crash_per_chip_year = 150.0 / 5000.0 * mult
    chip_years_full = n_sat * 2 * chips * n_steps * dt / YEAR
    steps_on = sum(1 for i in range(1, n_steps + 1) if (i // 7) % 2 == 0)
    chip_years_half = n_sat * chips * steps_on * dt / YEAR
    assert sdc[:, :, 2].sum() == 0 and crashes[:, :, 2].sum() == 0
    assert within_sigmas(sdc[:, :, :2].sum(), sdc_per_chip_year * chip_years_full)
    assert within_sigmas(crashes[:, :, :2].sum(), crash_per_chip_year * chip_years_full)
    assert within_sigmas(sdc[:, :, 3].sum(), sdc_per_chip_year * chip_years_half)
    assert within_sigmas(crashes[:, :, 3].sum(), crash_per_chip_year * chip_years_half)
    assert (model.sdc_total == sdc.sum(axis=(0, 2))).all()
    # Poisson dispersion: per-day counts of a group have variance close to their mean.
    day = int(86400 / dt)
    per_day = sdc[: (n_steps // day) * day, :, :2].reshape(-1, day, n_sat * 2).sum(axis=1)
    dispersion = per_day.var() / per_day.mean()
    assert 0.85 < dispersion < 1.15


def test_unpowered_chips_see_no_events_and_resume_when_powered():
    p = RadiationParams(rate_multiplier=1e5)  # ~3 SDC per chip-minute
    model = RadiationModel(p, 2, 4, 4, np.random.default_rng(1))
    sdc, crashes = run(model, 3600, 1.0, lambda i: np.zeros((2, 4), bool))
    assert sdc.sum() == 0 and crashes.sum() == 0 and model.sdc_total.sum() == 0
    sdc, _ = run(model, 600, 1.0, lambda i: np.ones((2, 4), bool), t0=3600.0)
    assert sdc.sum() > 0
    assert (sdc.sum(axis=0) > 0).all()


def test_crashed_chip_reboots_after_reboot_time():
    p = RadiationParams(rate_multiplier=0.0, chip_reboot_s=60.0)
    model = RadiationModel(p, 1, 4, 8, np.random.default_rng(0))
    powered = np.ones((1, 4), bool)
    model.step(99.0, 1.0, powered)
    assert model.inject_crash(0, 2, 100.0)
    assert model.online.tolist() == [[8, 8, 7, 8]]
    online, crash_counts = [], []
    for t in range(100, 169):  # the step from t leaves the state at t + 1
        _, crashes = model.step(float(t), 1.0, powered)
        online.append(int(model.online[0, 2]))
        crash_counts.append(int(crashes[0, 2]))
    assert crash_counts[0] == 1 and sum(crash_counts) == 1  # reported once, in the next step
    assert online == [7] * 59 + [8] * 10  # back at t = 160


def test_natural_crashes_reboot_on_time():
    """One chip, crash-heavy rates: after each crash the chip stays down exactly chip_reboot_s."""
    reboot = 30.0
    p = RadiationParams(rad_per_crash=17.0, rate_multiplier=2e5, chip_reboot_s=reboot)  # a crash per ~ 19 s up
    model = RadiationModel(p, 1, 1, 1, np.random.default_rng(3))
    powered = np.ones((1, 1), bool)
    online, crashed = [], []
    for t in range(1, 20001):
        _, crashes = model.step(float(t), 1.0, powered)
        online.append(int(model.online[0, 0]))
        crashed.append(int(crashes[0, 0]))
    online, crashed = np.array(online), np.array(crashed)
    assert crashed.max() == 1 and crashed.sum() > 100
    for i in np.flatnonzero(crashed):
        # Step i covers [i + 1, i + 2): a crash in it ends its reboot within step i + 30.
        assert (online[i:i + int(reboot)] == 0).all()
        assert crashed[i + 1:i + int(reboot)].sum() == 0  # no crash while the only chip is down
        if i + int(reboot) < len(online):
            assert online[i + int(reboot)] == 1 or crashed[i + int(reboot)] == 1
    # Time-change check: crashes per second of chip-up time match the rate.
    lam = 150.0 / 17.0 * 2e5 / YEAR
    up_s = np.count_nonzero(online == 1)
    assert within_sigmas(crashed.sum(), lam * up_s, n_sigma=5)


def test_rates_follow_the_running_chip_count():
    """Crash-heavy group: the chip count keeps changing, event counts follow chip-seconds running."""
    # 1 rad/s per chip: SDC every 100 s and crash every 300 s per running chip, 600 s reboots.
    p = RadiationParams(dose_rad_per_year=150.0, rate_multiplier=YEAR / 150.0, rad_per_sdc=100.0,
                        rad_per_crash=300.0, chip_reboot_s=600.0)
    model = RadiationModel(p, 1, 1, 8, np.random.default_rng(5))
    powered = np.ones((1, 1), bool)
    online, sdc_n, crash_n = [], [], []
    for t in range(1, 60001):
        sdc, crashes = model.step(float(t), 1.0, powered)
        online.append(int(model.online[0, 0]))
        sdc_n.append(int(sdc[0, 0]))
        crash_n.append(int(crashes[0, 0]))
    online, sdc_n, crash_n = map(np.array, (online, sdc_n, crash_n))
    assert online.min() <= 1 and online.max() >= 4  # the running count really moves
    # Chips crashing within a step counted as running for it.
    chip_s = (online + crash_n).sum() * 1.0
    assert within_sigmas(sdc_n.sum(), chip_s / 100.0)
    assert within_sigmas(crash_n.sum(), chip_s / 300.0)


def test_inject_sdc_and_crash_when_none_running():
    model = RadiationModel(RadiationParams(rate_multiplier=0.0), 2, 2, 1, np.random.default_rng(0))
    model.inject_sdc(1, 0, count=3)
    sdc, crashes = model.step(1.0, 1.0, np.ones((2, 2), bool))
    assert sdc.tolist() == [[0, 0], [3, 0]] and crashes.sum() == 0
    assert model.sdc_total.tolist() == [0, 3]
    assert model.inject_crash(0, 1, 1.0)
    assert not model.inject_crash(0, 1, 1.0)  # its only chip is already down
    _, crashes = model.step(2.0, 1.0, np.ones((2, 2), bool))
    assert crashes.tolist() == [[0, 1], [0, 0]]


def test_same_seed_same_events_other_seed_other_events():
    p = RadiationParams(rate_multiplier=5e3)

    def events(seed):
        model = RadiationModel(p, 3, 4, 4, np.random.default_rng(seed))
        powered = lambda i: np.array([[True, True, False, True]] * 3) if i % 7 else np.ones((3, 4), bool)
        sdc, crashes = run(model, 5000, 1.0, powered)
        return sdc, crashes

    a, b, c = events(11), events(11), events(12)
    assert a[0].sum() > 50
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_bad_powered_shape():
    model = RadiationModel(RadiationParams(), 2, 4, 4, np.random.default_rng(0))
    with pytest.raises(ValueError):
        model.step(1.0, 1.0, np.ones((4,), bool))
