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

All quantities are numpy arrays over satellites (shape ``(n_sat,)``). The
per-step arithmetic lives in ``@njit`` kernels that loop over satellites
(:func:`solar_power_w`, :func:`battery_step`); the classes hold the state and
the precomputed constants and call them. :mod:`twin.sim.plant` calls the same
kernels from its fused per-tick kernel, so both paths run one piece of physics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from twin.params import ParamError, param

__all__ = ["SolarArrayParams", "SolarArray", "BatteryParams", "PowerSystem", "PowerState",
           "solar_power_w", "battery_step"]

# Li-ion NMC cell open-circuit voltage against (energy) state of charge.
_OCV_SOC = (0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 1.0)
_OCV_CELL_V = (2.75, 3.10, 3.30, 3.45, 3.55, 3.62, 3.67, 3.72, 3.79, 3.87, 3.95, 4.05, 4.11, 4.20)

# Solar constants vector (SolarArray.consts).
_S_W_PER_STRING, _S_STRINGS, _S_TEMP_COEFF, _S_REF_TEMP = range(4)
# Battery constants vector (first of PowerSystem.kernel_consts).
(_B_CAP_J, _B_R, _B_INV_R, _B_INV_2R, _B_4R, _B_V_MAX, _B_V_MIN, _B_MAX_CHARGE, _B_MAX_DISCHARGE,
 _B_ETA_C, _B_INV_ETA_C, _B_ETA_D, _B_INV_ETA_D, _B_SOC_CUTOFF, _B_T_CHARGE_MIN, _B_T_CHARGE_MAX,
 _B_T_DISCHARGE_MIN, _B_T_DISCHARGE_MAX, _N_B) = range(19)
# Rows of a power-state buffer (see PowerState.over); v_battery_v shares the v_bus_v row.
(ROW_SOC, ROW_V, ROW_I_BATTERY, ROW_I_SOLAR, ROW_P_SOLAR_USED, ROW_P_SHUNT, ROW_P_LOAD_SERVED,
 ROW_P_BATTERY, ROW_P_LOSS, N_POWER_ROWS) = range(10)


@dataclass(frozen=True)
class SolarArrayParams:
    """Sun-tracking solar array (defaults: the ~28 kW "node" spacecraft)."""

    area_m2: float = param(105.0, "m2", lo=0.0, lo_open=True, doc="array area")
    cell_efficiency: float = param(0.22, "1", lo=0.0, hi=1.0, doc="cell efficiency at ref_temp_c, BOL")
    packing_factor: float = param(0.9, "1", lo=0.0, hi=1.0, doc="fraction of the area covered by cells")
    temp_coeff_per_c: float = param(-0.002, "1/degC", lo=-0.02, hi=0.0,
                                    doc="relative power change per degC from ref_temp_c")
    ref_temp_c: float = param(28.0, "degC", lo=-100.0, hi=150.0, doc="cell reference temperature")
    degradation_per_year: float = param(0.02, "1/year", lo=0.0, hi=0.5,
                                        doc="relative power loss per year, compounding")
    years_in_orbit: float = param(0.0, "year", lo=0.0, hi=50.0, doc="age of the array")
    strings: int = param(20, "count", lo=1, hi=10000,
                         doc="parallel strings (a lost string loses 1/strings of the power)")


@njit(cache=True, error_model="numpy")
def solar_power_w(sc, irradiance_w_m2, cos_incidence, temp_c, strings_lost):
    """One satellite's array power (W); ``sc`` is :attr:`SolarArray.consts`."""
    derate = max(1.0 + sc[_S_TEMP_COEFF] * (temp_c - sc[_S_REF_TEMP]), 0.0)
    strings = sc[_S_STRINGS]
    strings_ok = strings - min(max(float(strings_lost), 0.0), strings)
    sun = irradiance_w_m2 * max(cos_incidence, 0.0)
    return sc[_S_W_PER_STRING] * sun * derate * strings_ok


@njit(cache=True, error_model="numpy")
def _solar_loop(sc, irradiance_w_m2, cos_incidence, temp_c, strings_lost, out):
    for s in range(out.shape[0]):
        out[s] = solar_power_w(sc, irradiance_w_m2[s], cos_incidence[s], temp_c[s], strings_lost[s])


def _per_sat(x, n: int, dtype=np.float64) -> np.ndarray:
    """``x`` as a writable C-contiguous ``(n,)`` array of ``dtype`` (the one type the kernels compile for)."""
    a = np.asarray(x, dtype=dtype)
    if a.shape == (n,) and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(np.broadcast_to(a, (n,)), dtype=dtype)


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
        p_ref_w_per_w_m2 = (p.area_m2 * p.cell_efficiency * p.packing_factor
                            * (1.0 - p.degradation_per_year) ** p.years_in_orbit)
        self.consts = np.zeros(4)
        self.consts[[_S_W_PER_STRING, _S_STRINGS, _S_TEMP_COEFF, _S_REF_TEMP]] = (
            p_ref_w_per_w_m2 / p.strings, p.strings, p.temp_coeff_per_c, p.ref_temp_c)

    def available_power_w(self, irradiance_w_m2, cos_incidence, temp_c) -> np.ndarray:
        """Maximum electrical power (W, ``(n_sat,)``) at the array's operating point.

        ``irradiance_w_m2`` already includes the shadow fraction; ``cos_incidence``
        is clipped at 0 (Sun behind the array); the temperature derating is
        clipped so that power never goes negative.
        """
        n = self.n_sat
        out = np.empty(n)
        _solar_loop(self.consts, _per_sat(irradiance_w_m2, n), _per_sat(cos_incidence, n), _per_sat(temp_c, n),
                    _per_sat(self.strings_lost, n, np.int64), out)
        return out


@dataclass(frozen=True)
class BatteryParams:
    """Li-ion battery pack (defaults: 20 kWh, 24 cells in series, a 66-100.8 V bus)."""

    capacity_wh: float = param(20000.0, "Wh", lo=0.0, lo_open=True, doc="stored energy at SoC 1, BOL (at OCV)")
    cells_series: int = param(24, "count", lo=1, hi=1000, doc="cells in series")
    ocv_soc: tuple = param(_OCV_SOC, "1", doc="OCV table: SoC breakpoints, 0 .. 1 increasing")
    ocv_cell_v: tuple = param(_OCV_CELL_V, "V", doc="OCV table: cell volts at the breakpoints, increasing")
    r_internal_ohm: float = param(0.010, "ohm", lo=0.0, lo_open=True, hi=10.0, doc="pack internal resistance")
    charge_efficiency: float = param(0.98, "1", lo=0.0, lo_open=True, hi=1.0,
                                     doc="charging: energy stored / OCV-side energy in")
    discharge_efficiency: float = param(0.98, "1", lo=0.0, lo_open=True, hi=1.0,
                                        doc="discharging: OCV-side energy out / energy drawn from storage")
    max_charge_a: float = param(120.0, "A", lo=0.0, doc="charge current limit")
    max_discharge_a: float = param(400.0, "A", lo=0.0, doc="discharge current limit")
    cell_v_max: float = param(4.2, "V", lo=0.0, lo_open=True, doc="charge voltage limit per cell (CV phase)")
    cell_v_min: float = param(2.75, "V", lo=0.0, doc="terminal voltage floor per cell under load")
    soc_cutoff: float = param(0.05, "1", lo=0.0, hi=1.0,
                              doc="undervoltage protection: no discharge below this SoC")
    initial_soc: float = param(0.8, "1", lo=0.0, hi=1.0, doc="SoC at reset")
    t_charge_min_c: float = param(0.0, "degC", lo=-60.0, hi=100.0, doc="charging allowed from")
    t_charge_max_c: float = param(45.0, "degC", lo=-60.0, hi=100.0, doc="charging allowed up to")
    t_discharge_min_c: float = param(-20.0, "degC", lo=-60.0, hi=100.0, doc="discharge allowed from")
    t_discharge_max_c: float = param(60.0, "degC", lo=-60.0, hi=100.0, doc="discharge allowed up to")
    capacity_fade_fraction: float = param(0.0, "1", lo=0.0, hi=0.99, doc="capacity lost to cell degradation")

    def __post_init__(self):
        try:
            soc, v = np.asarray(self.ocv_soc, float), np.asarray(self.ocv_cell_v, float)
        except (TypeError, ValueError) as exc:
            raise ParamError("ocv_soc", f"OCV table must hold numbers ({exc})") from exc
        if soc.ndim != 1 or soc.size < 2 or soc.shape != v.shape or not np.all(np.isfinite(v)):
            raise ParamError("ocv_soc", "ocv_soc and ocv_cell_v must be equal-length sequences of >= 2 numbers")
        if soc[0] != 0.0 or soc[-1] != 1.0 or np.any(np.diff(soc) <= 0):
            raise ParamError("ocv_soc", "must increase strictly from 0 to 1")
        if np.any(np.diff(v) <= 0) or v[0] <= 0:
            raise ParamError("ocv_cell_v", "must be positive and increase strictly")
        object.__setattr__(self, "ocv_soc", tuple(float(x) for x in soc))  # hashable even if given lists
        object.__setattr__(self, "ocv_cell_v", tuple(float(x) for x in v))
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

    @staticmethod
    def buffers(n_sat: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, brownout)``: a ``(N_POWER_ROWS, n_sat)`` float buffer and a bool one for :func:`battery_step`."""
        return np.zeros((N_POWER_ROWS, n_sat)), np.zeros(n_sat, dtype=bool)

    @classmethod
    def over(cls, values: np.ndarray, brownout: np.ndarray) -> PowerState:
        """A state whose fields are views of the rows of ``values`` (so they follow it when it is rewritten)."""
        v = values[ROW_V]
        return cls(values[ROW_SOC], v, v, values[ROW_I_BATTERY], values[ROW_I_SOLAR], values[ROW_P_SOLAR_USED],
                   values[ROW_P_SHUNT], values[ROW_P_LOAD_SERVED], values[ROW_P_BATTERY], values[ROW_P_LOSS],
                   brownout)


@njit(cache=True, error_model="numpy")
def _ocv(soc, soc_bp, ocv_bp, slope):
    """Pack OCV at ``soc``: np.interp's formula (clamped at both ends)."""
    last = soc_bp.shape[0] - 1
    if soc <= soc_bp[0]:
        return ocv_bp[0]
    if soc >= soc_bp[last]:
        return ocv_bp[last]
    j = last - 1
    while soc < soc_bp[j]:
        j -= 1
    return slope[j] * (soc - soc_bp[j]) + ocv_bp[j]


@njit(cache=True, error_model="numpy")
def battery_step(s, dt_s, p_solar_avail_w, p_load_w, charge_enable, battery_temp_c,
                 soc, capacity_fade, tables, out, brownout):
    """Step satellite ``s``: update ``soc[s]``, write column ``s`` of ``out`` and ``brownout[s]``.

    ``tables`` is :attr:`PowerSystem.kernel_consts`; ``out`` and ``brownout``
    come from :meth:`PowerState.buffers`. See :meth:`PowerSystem.step` for the physics.
    """
    bc, soc_bp, ocv_bp, ocv_slope = tables
    soc0 = soc[s]
    p_solar = max(p_solar_avail_w, 0.0)
    p_load = max(p_load_w, 0.0)
    t = battery_temp_c
    voc = _ocv(soc0, soc_bp, ocv_bp, ocv_slope)
    e_cap = bc[_B_CAP_J] * (1.0 - capacity_fade[s])
    net = p_solar - p_load
    # One closed form for both signs: P = (Voc + I R) I. Past the maximum-power
    # point (negative discriminant) it returns a current beyond Voc/2R, which
    # the limits below then cut (a brownout).
    root = math.sqrt(max(voc * voc + bc[_B_4R] * net, 0.0))
    i_want = 2.0 * net / (voc + root)

    i_hi = min(bc[_B_MAX_CHARGE], (bc[_B_V_MAX] - voc) * bc[_B_INV_R])
    i_lo = min(min(bc[_B_MAX_DISCHARGE], (voc - bc[_B_V_MIN]) * bc[_B_INV_R]), voc * bc[_B_INV_2R])
    if dt_s > 1e-9:  # below one clock tick the energy headroom is immaterial (and 1/dt overflows)
        e_step = e_cap / (voc * dt_s)
        i_hi = min(i_hi, (1.0 - soc0) * e_step * bc[_B_INV_ETA_C])
        i_lo = min(i_lo, (soc0 - bc[_B_SOC_CUTOFF]) * e_step * bc[_B_ETA_D])
    can_charge = (charge_enable and soc0 < 1.0 and t >= bc[_B_T_CHARGE_MIN] and t <= bc[_B_T_CHARGE_MAX])
    can_discharge = soc0 > bc[_B_SOC_CUTOFF] and t >= bc[_B_T_DISCHARGE_MIN] and t <= bc[_B_T_DISCHARGE_MAX]
    i_hi = max(i_hi, 0.0) if can_charge else 0.0
    i_lo = max(i_lo, 0.0) if can_discharge else 0.0
    i = min(max(i_want, -i_lo), i_hi)

    v = voc + i * bc[_B_R]
    p_batt = v * i
    p_chem = voc * (max(i, 0.0) * bc[_B_ETA_C] + min(i, 0.0) * bc[_B_INV_ETA_D])
    if net >= 0.0:
        p_served = p_load
    else:  # what the array and the battery deliver; min() only absorbs round-off (subnormal loads)
        p_served = min(p_solar - p_batt, p_load)
    p_used = p_served + p_batt
    # Current-limited, or a deficit that underflowed to no current at all (subnormal loads).
    short = i_want < -i_lo or p_served < p_load * (1.0 - 1e-9)
    soc1 = min(max(soc0 + p_chem * dt_s / e_cap, 0.0), 1.0)
    soc[s] = soc1
    out[ROW_SOC, s] = soc1
    out[ROW_V, s] = v
    out[ROW_I_BATTERY, s] = i
    out[ROW_I_SOLAR, s] = p_used / v
    out[ROW_P_SOLAR_USED, s] = p_used
    out[ROW_P_SHUNT, s] = p_solar - p_used
    out[ROW_P_LOAD_SERVED, s] = p_served
    out[ROW_P_BATTERY, s] = p_batt
    out[ROW_P_LOSS, s] = p_batt - p_chem
    brownout[s] = short


@njit(cache=True, error_model="numpy")
def _battery_loop(dt_s, p_solar_avail_w, p_load_w, charge_enable, battery_temp_c,
                  soc, capacity_fade, tables, out, brownout):
    for s in range(soc.shape[0]):
        battery_step(s, dt_s, p_solar_avail_w[s], p_load_w[s], charge_enable[s], battery_temp_c[s],
                     soc, capacity_fade, tables, out, brownout)


class PowerSystem:
    """Solar array + battery + bus for ``n_sat`` satellites.

    State: ``soc`` ``(n_sat,)``, updated in place. Fault hooks: ``solar.strings_lost``
    and ``capacity_fade`` ``(n_sat,)`` (initialised from the parameters); :meth:`reset`
    sets the SoC only and leaves injected faults alone. ``kernel_consts`` holds
    the constants :func:`battery_step` takes, computed once: a vector of limits
    and coefficients and the OCV table (breakpoints, pack volts, slopes).
    """

    def __init__(self, solar: SolarArrayParams, battery: BatteryParams, n_sat: int):
        self.solar = SolarArray(solar, n_sat)
        self.battery = battery
        self.n_sat = n_sat
        self.capacity_fade = np.full(n_sat, battery.capacity_fade_fraction)
        b = battery
        self.soc_bp = np.asarray(b.ocv_soc, float)
        self.ocv_bp = np.asarray(b.ocv_cell_v, float) * b.cells_series
        self.ocv_slope = np.diff(self.ocv_bp) / np.diff(self.soc_bp)
        r = b.r_internal_ohm
        c = np.zeros(_N_B)
        c[_B_CAP_J] = b.capacity_wh * 3600.0
        c[_B_R], c[_B_INV_R], c[_B_INV_2R], c[_B_4R] = r, 1.0 / r, 0.5 / r, 4.0 * r
        c[_B_V_MAX], c[_B_V_MIN] = b.cell_v_max * b.cells_series, b.cell_v_min * b.cells_series
        c[_B_MAX_CHARGE], c[_B_MAX_DISCHARGE] = b.max_charge_a, b.max_discharge_a
        c[_B_ETA_C], c[_B_INV_ETA_C] = b.charge_efficiency, 1.0 / b.charge_efficiency
        c[_B_ETA_D], c[_B_INV_ETA_D] = b.discharge_efficiency, 1.0 / b.discharge_efficiency
        c[_B_SOC_CUTOFF] = b.soc_cutoff
        c[_B_T_CHARGE_MIN], c[_B_T_CHARGE_MAX] = b.t_charge_min_c, b.t_charge_max_c
        c[_B_T_DISCHARGE_MIN], c[_B_T_DISCHARGE_MAX] = b.t_discharge_min_c, b.t_discharge_max_c
        self.kernel_consts = (c, self.soc_bp, self.ocv_bp, self.ocv_slope)
        self.soc = np.empty(n_sat)
        self.reset()

    def reset(self, soc=None) -> None:
        """Set the SoC (scalar or ``(n_sat,)``; default ``initial_soc``), in place."""
        value = self.battery.initial_soc if soc is None else soc
        self.soc = _per_sat(self.soc, self.n_sat)
        self.soc[:] = np.clip(np.broadcast_to(np.asarray(value, float), (self.n_sat,)), 0.0, 1.0)

    def capacity_j(self) -> np.ndarray:
        """Stored energy at SoC 1 (J), after capacity fade."""
        return self.battery.capacity_wh * 3600.0 * (1.0 - self.capacity_fade)

    def stored_energy_wh(self) -> np.ndarray:
        """Chemical energy above empty, at OCV (Wh): ``soc * capacity * (1 - fade)``."""
        return self.soc * self.battery.capacity_wh * (1.0 - self.capacity_fade)

    def ocv_v(self, soc=None) -> np.ndarray:
        """Pack open-circuit voltage (V) at ``soc`` (default: the current SoC)."""
        return np.interp(self.soc if soc is None else soc, self.soc_bp, self.ocv_bp)

    def step(self, dt_s: float, p_solar_avail_w, p_load_w, charge_enable, battery_temp_c) -> PowerState:
        """Advance ``dt_s`` seconds with inputs held over the step; return a new :class:`PowerState`.

        ``p_solar_avail_w``: array power available (W); ``p_load_w``: load demanded
        (W, >= 0); ``charge_enable``: the charge regulator is allowed to charge
        (bool); ``battery_temp_c``: battery temperature gating charge and discharge.
        Each is a scalar or ``(n_sat,)``.
        The terminal current solves ``P = (Voc + I*R) * I`` in closed form with the
        OCV at the start of the step, then is limited by: the current limits, the
        charge voltage limit (CV taper) or the under-load voltage floor, and the
        energy left to full / to ``soc_cutoff`` in this step. ``dt_s = 0`` gives
        the operating point for these inputs without changing the SoC.
        """
        values, brownout = PowerState.buffers(self.n_sat)
        self.step_into(dt_s, p_solar_avail_w, p_load_w, charge_enable, battery_temp_c, values, brownout)
        return PowerState.over(values, brownout)

    def step_into(self, dt_s: float, p_solar_avail_w, p_load_w, charge_enable, battery_temp_c,
                  values: np.ndarray, brownout: np.ndarray) -> None:
        """:meth:`step`, writing the outcome into :meth:`PowerState.buffers` ``values`` and ``brownout``."""
        n = self.n_sat
        self.soc = _per_sat(self.soc, n)
        _battery_loop(float(dt_s), _per_sat(p_solar_avail_w, n), _per_sat(p_load_w, n),
                      _per_sat(charge_enable, n, np.bool_), _per_sat(battery_temp_c, n), self.soc,
                      _per_sat(self.capacity_fade, n), self.kernel_consts, values, brownout)
