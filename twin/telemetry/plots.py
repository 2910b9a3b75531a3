"""Plots of a run's telemetry: four PNGs with eclipses shaded, time in hours since the epoch.

``temperatures.png``, ``power.png``, ``compute.png`` and ``links.png`` are drawn
from the recorded rows only. Invalid or non-finite readings are left as gaps.
Long runs are decimated to a min/max envelope per bucket, so a brief spike
stays visible while a day plots in about a second. Figures are built with
``matplotlib.figure.Figure`` on the Agg canvas, never touching pyplot's global
state, so plotting is safe from any thread and needs no display.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from twin.hal import (MODES, N_ISL, N_TPU_GROUPS, RAILS, S_GROUND_LOCK, S_I_BATTERY, S_I_RAIL, S_I_SOLAR,
                      S_ISL_STATE, S_SUN_PRESENT, S_T_AVIONICS, S_T_BATTERY, S_T_COLDPLATE, S_T_RADIATOR,
                      S_T_SOLAR_ARRAY, S_T_TPU, S_V_BATTERY, S_V_BUS)

from .summary import TelemetryLimits, iso_utc

__all__ = ["write_plots"]

_DECIMATE_ABOVE = 20_000   # rows; beyond this, plot a min/max envelope
_BUCKETS = 1_500           # envelope buckets: ~2 per pixel column of the axes
_MAX_SPANS = 2_000         # shaded/barred intervals drawn per lane before coarsening


class _Run:
    """Rows reduced to what the plots draw: hours, masked readings, envelope decimation."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.t_h = rows["t_ns"] / 3.6e12
        x = rows["values"].astype(np.float64)
        self.x = np.where((rows["valid"] != 0) & np.isfinite(x), x, np.nan)
        spacing = np.diff(self.t_h)
        self.t_end = self.t_h[-1] + (spacing[-1] if len(spacing) else 0.0)

    def series(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64)
        n = len(y)
        if n <= _DECIMATE_ABOVE:
            return self.t_h, y
        k = -(-n // _BUCKETS)
        m = n // k * k
        yb = y[:m].reshape(-1, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN buckets stay gaps
            env = np.column_stack([np.nanmin(yb, axis=1), np.nanmax(yb, axis=1)]).ravel()
        t = np.repeat(self.t_h[:m:k], 2)
        return np.concatenate([t, self.t_h[m:]]), np.concatenate([env, y[m:]])

    def spans(self, mask: np.ndarray) -> list[tuple[float, float]]:
        """(start, width) in hours of each run of True in ``mask``."""
        edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if len(starts) > _MAX_SPANS:  # a flapping signal: merge runs closer than one envelope bucket
            gap = (self.t_end - self.t_h[0]) / _BUCKETS
            t_stop = np.append(self.t_h, self.t_end)[stops]
            keep = np.append(self.t_h[starts[1:]] - t_stop[:-1] > gap, True)
            starts, stops = starts[np.append(True, keep[:-1])], stops[keep]
        t_stop = np.append(self.t_h, self.t_end)[stops]
        return list(zip(self.t_h[starts].tolist(), (t_stop - self.t_h[starts]).tolist()))

    def plot(self, ax, y, **kw) -> None:
        ax.plot(*self.series(y), linewidth=1.0, **kw)


def write_plots(rows: np.ndarray, out_dir: str | os.PathLike, epoch_unix_s: float,
                limits: TelemetryLimits | None = None) -> list[Path]:
    """Write the run's PNGs into ``out_dir`` (created if needed) and return their paths.

    ``limits``, when given, are drawn as dashed lines on the temperature plot.
    Nothing is written for an empty run.
    """
    if len(rows) == 0:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(rows)
    xlabel = f"hours since epoch {iso_utc(epoch_unix_s)}"
    paths = []
    for name, draw in (("temperatures", _temperatures), ("power", _power), ("compute", _compute), ("links", _links)):
        fig = Figure(figsize=(12, 9))
        fig.subplots_adjust(left=0.12, right=0.79, top=0.93, bottom=0.06, hspace=0.25)
        axes = fig.subplots(3, 1, sharex=True)
        draw(fig, axes, run, limits)
        eclipse = run.spans(run.x[:, S_SUN_PRESENT] == 0)
        for ax in axes:
            for i, (t0, w) in enumerate(eclipse):
                ax.axvspan(t0, t0 + w, color="0.5", alpha=0.18, linewidth=0, label="eclipse" if i == 0 else None)
            ax.grid(True, alpha=0.3)
            _legend(ax)
        axes[-1].set_xlabel(xlabel)
        axes[-1].set_xlim(run.t_h[0], run.t_end)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def _legend(ax) -> None:
    """One legend right of the axes, gathering a twin y-axis's lines too (placed clear of its label)."""
    twin = getattr(ax, "twin", None)
    handles, labels = ax.get_legend_handles_labels()
    if twin is not None:
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.09 if twin else 1.01, 1.0),
              fontsize="small", frameon=False)


def _hlines(ax, levels: list[tuple[float, str, str]]) -> None:
    for y, label, color in levels:
        ax.axhline(y, linestyle="--", linewidth=1.0, color=color, label=label)


def _temperatures(fig, axes, run: _Run, lim: TelemetryLimits | None) -> None:
    fig.suptitle("Temperatures")
    a0, a1, a2 = axes
    for g in range(N_TPU_GROUPS):
        run.plot(a0, run.x[:, S_T_TPU[g]], label=f"TPU group {g}")
    run.plot(a0, run.x[:, S_T_COLDPLATE], label="cold plate", color="k")
    a0.set(title="Compute", ylabel="temperature [°C]")
    run.plot(a1, run.x[:, S_T_RADIATOR], label="radiator")
    run.plot(a1, run.x[:, S_T_SOLAR_ARRAY], label="solar array")
    a1.set(title="Structure", ylabel="temperature [°C]")
    run.plot(a2, run.x[:, S_T_BATTERY], label="battery", color="tab:green")
    run.plot(a2, run.x[:, S_T_AVIONICS], label="avionics", color="tab:purple")
    a2.set(title="Battery and avionics", ylabel="temperature [°C]")
    if lim is not None:
        _hlines(a0, [(lim.tpu_max_c, "TPU max", "tab:red")])
        _hlines(a2, [(lim.battery_max_c, "battery max", "tab:red"),
                     (lim.battery_charge_min_c, "battery charge min", "tab:olive"),
                     (lim.battery_min_discharge_c, "battery discharge min", "tab:blue"),
                     (lim.avionics_max_c, "avionics max", "tab:pink"),
                     (lim.avionics_min_c, "avionics min", "tab:cyan")])


def _power(fig, axes, run: _Run, lim) -> None:
    fig.suptitle("Power")
    a0, a1, a2 = axes
    x = run.x
    run.plot(a0, x[:, S_V_BUS] * x[:, S_I_SOLAR] / 1e3, label="solar", color="tab:orange")
    run.plot(a0, x[:, S_V_BUS] * sum(x[:, S_I_RAIL[r]] for r in RAILS) / 1e3, label="load", color="tab:red")
    run.plot(a0, x[:, S_V_BATTERY] * x[:, S_I_BATTERY] / 1e3, label="battery (+ charging)", color="tab:green")
    a0.set(title="Bus power", ylabel="power [kW]")
    soc = a0.twinx()
    run.plot(soc, run.rows["hk_soc_est"] * 100, label="SoC (onboard est.)", color="k", linestyle=":")
    soc.set(ylabel="state of charge [%]", ylim=(0, 105))
    a0.twin = soc
    for r in RAILS:
        run.plot(a1, x[:, S_V_BUS] * x[:, S_I_RAIL[r]] / 1e3, label=r)
    a1.set(title="Load by rail", ylabel="power [kW]")
    run.plot(a2, x[:, S_V_BUS], label="bus")
    run.plot(a2, x[:, S_V_BATTERY], label="battery")
    a2.set(title="Voltages", ylabel="voltage [V]")


def _compute(fig, axes, run: _Run, lim) -> None:
    fig.suptitle("Compute")
    a0, a1, a2 = axes
    rows = run.rows
    for g in range(N_TPU_GROUPS):
        run.plot(a0, rows["tpu_cap"][:, g] * (rows["switch_tpu"] != 0), label=f"group {g}", drawstyle="steps-post")
    a0.set(title="TPU power cap (0 when the TPU rail is off)", ylabel="fraction of max", ylim=(-0.05, 1.05))
    run.plot(a1, rows["hk_compute_budget_w"] / 1e3, label="compute budget", color="tab:blue")
    run.plot(a1, run.x[:, S_V_BUS] * run.x[:, S_I_RAIL["tpu"]] / 1e3, label="TPU rail draw", color="tab:red")
    a1.set(title="Compute power", ylabel="power [kW]")
    run.plot(a2, rows["hk_shed_stage"], label="shed stage", drawstyle="steps-post", color="tab:orange")
    run.plot(a2, rows["fsw_mode"] + 4, label="mode", drawstyle="steps-post", color="tab:purple")
    a2.set(title="Load shedding stage and flight-software mode", ylim=(-0.5, 3.5 + len(MODES)))
    a2.set_yticks(range(4 + len(MODES)), ["shed: none", "shed: compute", "shed: links", "shed: safe",
                                          *(f"mode: {m}" for m in MODES)])


def _lanes(ax, run: _Run, lanes: list[tuple[str, list[tuple[np.ndarray, str, str]]]]) -> None:
    """Horizontal bars, one lane per row, each (mask, color, legend label) drawn where mask is true."""
    seen = set()
    for i, (_, bars) in enumerate(lanes):
        for mask, color, label in bars:
            ax.broken_barh(run.spans(mask), (i - 0.35, 0.7), facecolors=color,
                           label=None if label in seen else label)
            seen.add(label)
    ax.set_yticks(range(len(lanes)), [name for name, _ in lanes])
    ax.set_ylim(-0.6, len(lanes) - 0.4)


def _links(fig, axes, run: _Run, lim) -> None:
    fig.suptitle("Links")
    a0, a1, a2 = axes
    rows = run.rows
    _lanes(a0, run, [("ground lock", [(run.x[:, S_GROUND_LOCK] == 1, "tab:green", "locked")]),
                     ("downlink tx", [(rows["downlink_enable"] != 0, "tab:blue", "enabled")])])
    a0.set(title="Ground contact")
    isl = [(f"isl{k}", [(rows["isl_enable"][:, k] != 0, "0.8", "enabled, down"),
                        (run.x[:, S_ISL_STATE[k]] == 1, "tab:orange", "acquiring"),
                        (run.x[:, S_ISL_STATE[k]] == 2, "tab:green", "up")]) for k in range(N_ISL)]
    _lanes(a1, run, isl)
    a1.set(title="Optical inter-satellite links")
    run.plot(a2, rows["hk_queue_bytes"] / 1e6, label="queue", color="tab:blue")
    a2.set(title="Downlink queue", ylabel="queued [MB]")
    cum = a2.twinx()
    run.plot(cum, rows["hk_downlinked_bytes"] / 1e9, label="downlinked (cum.)", color="tab:green")
    run.plot(cum, rows["hk_dropped_bytes"] / 1e9, label="dropped (cum.)", color="tab:red")
    cum.set(ylabel="cumulative [GB]")
    a2.twin = cum
