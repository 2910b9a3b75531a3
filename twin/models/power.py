"""Electrical power system: sun-tracking solar array, Li-ion battery, unregulated bus.

Topology: the array feeds a battery-dominated unregulated bus through a
sequential shunt regulator; the bus voltage is the battery terminal voltage.
Each step the array covers the load first; a surplus charges the battery (when
allowed, within the current and voltage limits) and the rest is shunted; a
deficit is drawn from the battery within its limits, and what cannot be drawn
is a brownout (the load actually served is reduced).

Stored energy (what the SoC integrates)
    ``E = soc * capacity_wh * (1 - capacity_fade)``: the chemical energy above
    empty, counted at the open-circuit voltage. SoC is therefore an *energy*
    fraction, and the OCV table is indexed by it. With a terminal current ``I``
    (+ charging) and pack OCV ``Voc`` the chemistry receives
    ``eta_c * Voc * I`` while charging and gives ``Voc * |I| / eta_d`` while
    discharging; the terminal power is ``(Voc + I*R) * I``; the difference is
    ``p_loss_w`` (I^2 R plus the efficiency losses), which heats the battery.
    Per step, exactly: ``p_solar_used = p_load_served + dE/dt + p_loss``.

All quantities are numpy arrays over satellites (shape ``(n_sat,)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.params import ParamError, param

__all__ = ["SolarArrayParams", "SolarArray", "BatteryParams", "PowerSystem", "PowerState"]

# Li-ion NMC cell open-circuit voltage against (energy) state of charge.
_OCV_SOC = (0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0)
_OCV_CELL_V = (2.75, 3.10, 3.30, 3.45, 3.55, 3.62, 3.67, 3.72, 3.79, 3.87, 3.95, 4.05, 4.11, 4.20)


@dataclass(frozen=True)
class SolarArrayParams:
    """Sun-tracking solar array (defaults: the ~28 kW "node" spacecraft)."""

    area_m2: float = param(105.0, "m2", lo=0.0, lo_open=True, doc="array area")
    cell_efficiency: float = param(0.22, "1", lo=0.0, hi=1.0, doc="cell efficiency at ref_temp_c, BOL")
    packing_factor: float = param(0.9, "1", lo=0.0, hi=1.0, doc="fraction of the area covered by cells")
    temp_coeff_per_c: float = param(-0.002, "1/degC", lo=-0.02, hi=0.0, doc="relative power change per degC from ref_temp_c")
    ref_temp_c: float = param(28.0, "degC", lo=-100.0, hi=150.0, doc="cell reference temperature")
    degradation_per_year: float = param(0.02, "1/year", lo=0.0, hi=0.5, doc="relative power loss per year, compounding")
    years_in_orbit: float = param(0.0, "year", lo=0.0, hi=50.0, doc="age of the array")
    strings: int = param(20, "count", lo=1, hi=10000, doc="parallel strings (a lost string loses 1/strings of the power)")


class SolarArray:
    """Power the array can deliver, per satellite.

    ``strings_lost`` (int, ``(n_sat,)``) is the fault-injection hook: each lost
    string removes ``1/strings`` of the power.
    """

    def __init__(self, params: SolarArrayParams, n_sat: int):
        self.params = params
        self.n_sat = n_sat
        self.strings_lost = np.zeros(n_sat, dtype=np.int64)
        p = params
        self._p_ref_w_per_w_m2 = (p.area_m2 * p.cell_efficiency * p.packing_factor
                                  * (1.0 - p.degradation_per_year) ** p.years_in_orbit)

    def available_power_w(self, irradiance_w_m2, cos_incidence, temp_c) -> np.ndarray:
        """Maximum electrical power (W, ``(n_sat,)``) at the array's operating point.

        ``irradiance_w_m2`` already includes the shadow fraction; ``cos_incidence``
        is clipped at 0 (Sun behind the array); the temperature derating is
        clipped so that power never goes negative.
        """
        p = self.params
        derate = np.maximum(1.0 + p.temp_coeff_per_c * (np.subtract(temp_c, p.ref_temp_c)), 0.0)
        strings_ok = p.strings - np.minimum(np.maximum(self.strings_lost, 0), p.strings)
        return (self._p_ref_w_per_w_m2 / p.strings) * (np.multiply(irradiance_w_m2, np.maximum(cos_incidence, 0.0))
                                                       * derate * strings_ok)


@dataclass(frozen=True)
class BatteryParams:
    """Li-ion battery pack (defaults: 20 kWh, 24 cells in series, a 66-100.8 V bus)."""

    capacity_wh: float = param(20000.0, "Wh", lo=0.0, lo_open=True, doc="stored energy at SoC 1, BOL (at OCV)")
    cells_series: int = param(24, "count", lo=1, hi=1000, doc="cells in series")
    ocv_soc: tuple = param(_OCV_SOC, "1", doc="OCV table: SoC breakpoints, 0 .. 1 increasing")
    ocv_cell_v: tuple = param(_OCV_CELL_V, "V", doc="OCV table: cell volts at the breakpoints, increasing")
    r_internal_ohm: float = param(0.010, "ohm", lo=0.0, lo_open=True, hi=10.0, doc="pack internal resistance")
    charge_efficiency: float = param(0.98, "1", lo=0.0, lo_open=True, hi=1.0, doc="chemical / OCV-side energy in, charging")
    discharge_efficiency: float = param(0.98, "1", lo=0.0, lo_open=True, hi=1.0, doc="OCV-side / chemical energy out, discharging")
    max_charge_a: float = param(120.0, "A", lo=0.0, doc="charge current limit")
    max_discharge_a: float = param(400.0, "A", lo=0.0, doc="discharge current limit")
    cell_v_max: float = param(4.2, "V", lo=0.0, lo_open=True, doc="charge voltage limit per cell (CV phase)")
    cell_v_min: float = param(2.75, "V", lo=0.0, doc="terminal voltage floor per cell under load")
    soc_cutoff: float = param(0.05, "1", lo=0.0, hi=1.0, doc="undervoltage protection: no discharge below this SoC")
    initial_soc: float = param(0.8, "1", lo=0.0, hi=1.0, doc="SoC at reset")
    t_charge_min_c: float = param(0.0, "degC", lo=-60.0, hi=100.0, doc="charging allowed from")
    t_charge_max_c: float = param(45.0, "degC", lo=-60.0, hi=100.0, doc="charging allowed up to")
    t_discharge_min_c: float = param(-20.0, "degC", lo=-60.0, hi=100.0, doc="discharge allowed from")
    t_discharge_max_c: float = param(60.0, "degC", lo=-60.0, hi=100.0, doc="discharge allowed up to")
    capacity_fade_fraction: float = param(0.0, "1", lo=0.0, hi=0.99, doc="capacity lost to cell degradation")

    def __post_init__(self):
        soc, v = np.asarray(self.ocv_soc, float), np.asarray(self.ocv_cell_v, float)
        if soc.ndim != 1 or soc.size < 2 or soc.shape != v.shape:
            raise ParamError("ocv_soc", "ocv_soc and ocv_cell_v must be equal-length sequences of >= 2 numbers")
        if soc[0] != 0.0 or soc[-1] != 1.0 or np.any(np.diff(soc) <= 0):
            raise ParamError("ocv_soc", "must increase strictly from 0 to 1")
        if np.any(np.diff(v) <= 0) or v[0] <= 0:
            raise ParamError("ocv_cell_v", "must be positive and increase strictly")
        if not self.cell_v_min < self.cell_v_max:
            raise ParamError("cell_v_min", "must be below cell_v_max")
        if not self.t_charge_min_c < self.t_charge_max_c:
            raise ParamError("t_charge_min_c", "must be below t_charge_max_c")
        if not self.t_discharge_min_c < self.t_discharge_max_c:
            raise ParamError("t_discharge_min_c", "must be below t_discharge_max_c")


@dataclass
class PowerState:
    """Outcome of one power step, all ``(n_sat,)``; powers in W, + into the battery."""

    soc: np.ndarray
    v_bus_v: np.ndarray
    v_battery_v: np.ndarray
    i_battery_a: np.ndarray      # + charging
    i_solar_a: np.ndarray        # array current delivered to the bus (after the shunt)
    p_solar_used_w: np.ndarray
    p_shunt_w: np.ndarray        # available array power not used (left on the array as heat)
    p_load_served_w: np.ndarray
    p_battery_w: np.ndarray      # at the battery terminal, + charging
    p_loss_w: np.ndarray         # heat in the battery
    brownout: np.ndarray         # bool: the load was not fully served


class PowerSystem:
    """Solar array + battery + bus for ``n_sat`` satellites.

    State: ``soc`` ``(n_sat,)``. Fault hooks: ``solar.strings_lost`` and
    ``capacity_fade`` ``(n_sat,)`` (initialised from the parameters); :meth:`reset`
    sets the SoC only and leaves injected faults alone.
    """

    def __init__(self, solar: SolarArrayParams, battery: BatteryParams, n_sat: int):
        self.solar = SolarArray(solar, n_sat)
        self.battery = battery
        self.n_sat = n_sat
        self.capacity_fade = np.full(n_sat, battery.capacity_fade_fraction)
        b = battery
        self._soc_bp = np.asarray(b.ocv_soc, float)
        self._ocv_bp = np.asarray(b.ocv_cell_v, float) * b.cells_series
        self._v_max = b.cell_v_max * b.cells_series
        self._v_min = b.cell_v_min * b.cells_series
        self._inv_r, self._inv_2r, self._4r = 1.0 / b.r_internal_ohm, 0.5 / b.r_internal_ohm, 4.0 * b.r_internal_ohm
        self._inv_eta_c, self._inv_eta_d = 1.0 / b.charge_efficiency, 1.0 / b.discharge_efficiency
        self.soc = np.empty(n_sat)
        self.reset()

    def reset(self, soc=None) -> None:
        """Set the SoC (scalar or ``(n_sat,)``; default ``initial_soc``)."""
        value = self.battery.initial_soc if soc is None else soc
        self.soc = np.clip(np.broadcast_to(np.asarray(value, float), (self.n_sat,)), 0.0, 1.0).copy()

    def capacity_j(self) -> np.ndarray:
        """Stored energy at SoC 1 (J), after capacity fade."""
        return self.battery.capacity_wh * 3600.0 * (1.0 - self.capacity_fade)

    def stored_energy_wh(self) -> np.ndarray:
        """Chemical energy above empty, at OCV (Wh): ``soc * capacity * (1 - fade)``."""
        return self.soc * self.battery.capacity_wh * (1.0 - self.capacity_fade)

    def ocv_v(self, soc=None) -> np.ndarray:
        """Pack open-circuit voltage (V) at ``soc`` (default: the current SoC)."""
        return np.interp(self.soc if soc is None else soc, self._soc_bp, self._ocv_bp)

    def step(self, dt_s: float, p_solar_avail_w, p_load_w, charge_enable, battery_temp_c) -> PowerState:
        """Advance ``dt_s`` seconds with inputs held over the step.

        ``p_solar_avail_w``: array power available (W); ``p_load_w``: load demanded
        (W, >= 0); ``charge_enable``: the charge regulator is allowed to charge
        (bool); ``battery_temp_c``: battery temperature gating charge and discharge.
        The terminal current solves ``P = (Voc + I*R) * I`` in closed form with the
        OCV at the start of the step, then is limited by: the current limits, the
        charge voltage limit (CV taper) or the under-load voltage floor, and the
        energy left to full / to ``soc_cutoff`` in this step. ``dt_s = 0`` gives
        the operating point for these inputs without changing the SoC.
        """
        b = self.battery
        soc = self.soc
        p_solar = np.maximum(p_solar_avail_w, 0.0)
        p_load = np.maximum(p_load_w, 0.0)
        t = np.asarray(battery_temp_c, float)
        voc = np.interp(soc, self._soc_bp, self._ocv_bp)
        e_cap = self.capacity_j()
        net = p_solar - p_load
        # One closed form for both signs: P = (Voc + I R) I. Past the maximum-power
        # point (negative discriminant) it returns a current beyond Voc/2R, which
        # the limits below then cut (a brownout).
        root = np.sqrt(np.maximum(voc * voc + self._4r * net, 0.0))
        i_want = 2.0 * net / (voc + root)

        i_hi = np.minimum(b.max_charge_a, (self._v_max - voc) * self._inv_r)
        i_lo = np.minimum(np.minimum(b.max_discharge_a, (voc - self._v_min) * self._inv_r), voc * self._inv_2r)
        if dt_s > 1e-9:  # below one clock tick the energy headroom is immaterial (and 1/dt overflows)
            e_step = e_cap / (voc * dt_s)
            i_hi = np.minimum(i_hi, (1.0 - soc) * e_step * self._inv_eta_c)
            i_lo = np.minimum(i_lo, (soc - b.soc_cutoff) * e_step * b.discharge_efficiency)
        i_hi = np.maximum(i_hi, 0.0) * (np.asarray(charge_enable, bool) & (soc < 1.0)
                                        & (t >= b.t_charge_min_c) & (t <= b.t_charge_max_c))
        i_lo = np.maximum(i_lo, 0.0) * ((soc > b.soc_cutoff) & (t >= b.t_discharge_min_c)
                                        & (t <= b.t_discharge_max_c))
        brownout = i_want < -i_lo
        i = np.minimum(np.maximum(i_want, -i_lo), i_hi)

        v = voc + i * b.r_internal_ohm
        p_batt = v * i
        p_chem = voc * (np.maximum(i, 0.0) * b.charge_efficiency + np.minimum(i, 0.0) * self._inv_eta_d)
        surplus = net >= 0.0
        p_served = surplus * p_load + ~surplus * (p_solar - p_batt)
        p_used = p_served + p_batt
        self.soc = np.minimum(np.maximum(soc + p_chem * dt_s / e_cap, 0.0), 1.0)
        return PowerState(
            soc=self.soc, v_bus_v=v, v_battery_v=v, i_battery_a=i, i_solar_a=p_used / v,
            p_solar_used_w=p_used, p_shunt_w=p_solar - p_used, p_load_served_w=p_served,
            p_battery_w=p_batt, p_loss_w=p_batt - p_chem, brownout=brownout)
