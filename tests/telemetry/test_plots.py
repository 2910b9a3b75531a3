"""write_plots produces readable PNGs; decimation keeps extremes; eclipse spans are right."""
import numpy as np

from twin.hal import N_CHANNELS, S_SUN_PRESENT, S_T_TPU
from twin.telemetry.plots import _Run, write_plots
from twin.telemetry.records import RECORD_DTYPE
from twin.telemetry.summary import TelemetryLimits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIMITS = TelemetryLimits(tpu_max_c=85.0, battery_min_discharge_c=-20.0, battery_max_c=45.0,
                         battery_charge_min_c=0.0, avionics_min_c=-30.0, avionics_max_c=70.0)


def synthetic_rows(n: int, dt_s: float = 1.0) -> np.ndarray:
    """An orbit-like run: eclipse for the first fifth of every 5,860 s, temperatures following it."""
    rows = np.zeros(n, RECORD_DTYPE)
    t = np.arange(n) * dt_s
    rows["t_ns"] = (t * 1e9).astype(np.int64)
    sun = ((t % 5860) > 1172).astype(np.float32)
    values = np.full((n, N_CHANNELS), 20.0, dtype=np.float32)
    values[:, S_SUN_PRESENT] = sun
    for g in range(4):
        values[:, S_T_TPU[g]] = 60 + 10 * sun + g
    rows["values"], rows["valid"] = values, 1
    rows["valid"][n // 3:n // 3 + 50, S_T_TPU[0]] = 0
    rows["switch_tpu"], rows["tpu_cap"], rows["fsw_mode"] = 1, 0.75, 2
    rows["hk_soc_est"], rows["hk_compute_budget_w"] = 0.8, 2500.0
    rows["hk_downlinked_bytes"] = np.cumsum(np.full(n, 1e4))
    return rows


def test_writes_four_nonempty_pngs_for_a_long_run(tmp_path):
    paths = write_plots(synthetic_rows(30_000), tmp_path / "plots", 1813536000, LIMITS)
    assert [p.name for p in paths] == ["temperatures.png", "power.png", "compute.png", "links.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 20_000


def test_empty_run_writes_nothing(tmp_path):
    assert write_plots(synthetic_rows(0), tmp_path, 0) == []


def test_envelope_keeps_a_one_sample_spike_and_bounds_points():
    rows = synthetic_rows(100_000)
    y = np.zeros(100_000)
    y[54_321] = 7.0
    y[80_000:80_100] = np.nan
    t, env = _Run(rows).series(y)
    assert len(env) < 5_000 and env.max() == 7.0 and env.min() == 0.0
    assert np.all(np.diff(t) >= 0)


def test_spans_cover_each_run_of_true():
    rows = synthetic_rows(10, dt_s=0.5)  # t = 0, 0.5, ... 4.5 s
    mask = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 1], dtype=bool)
    spans = _Run(rows).spans(mask)
    hour = 3600.0
    expected = [(0.0, 1.0 / hour), (2.0 / hour, 0.5 / hour), (4.0 / hour, 1.0 / hour)]
    assert np.allclose(spans, expected, rtol=0, atol=1e-12)


def test_flapping_signal_spans_are_merged():
    rows = synthetic_rows(10_000)
    mask = np.arange(10_000) % 2 == 0  # 5,000 one-second runs: too many bars to draw
    spans = _Run(rows).spans(mask)
    assert spans == [(0.0, 9_999 / 3600.0)]
