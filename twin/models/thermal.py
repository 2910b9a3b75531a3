"""Lumped-node thermal network of a compute satellite, vectorized over satellites.

Nodes (:data:`NODES`) exchange heat by conduction over fixed links (W/K), with
deep space by radiation, and absorb sunlight, Earth albedo and Earth IR on four
external surfaces (main radiator, battery radiator, MLI-covered structure,
solar array). Each surface is a total radiating area with face-averaged optical
properties: ``eps*A`` radiates, ``alpha*A*sun_fraction`` sees the Sun,
``A*earth_view`` sees the Earth (albedo absorbed with alpha, Earth IR with eps).

Heat inputs ``q_w``: each TPU group its electrical power; avionics, radio and
optical terminals their power on ``avionics`` or ``structure``; heaters on
their node; ``battery`` also the battery's ``p_loss_w``; ``solar_array`` minus
the electrical power taken from it (``-p_solar_used_w``: shunted power stays on
the array as heat).

Integrator
----------
Exponential integration. Radiation is split into a part linearized about
``rad_linearization_temp_c`` (``h0 = 4 sigma eps A T0^3``, folded into the
conduction matrix ``K = G + diag(h0)``) and the residual
``sigma eps A T^4 - h0 T``, evaluated at the start of the step and held, like
the external heat. For inputs held over the step the linear part is then
integrated exactly: ``T+ = Phi T + Gamma u`` with ``Phi = exp(-C^-1 K dt)``
and ``Gamma = int_0^dt exp(-C^-1 K s) ds C^-1``, both computed once from the
eigen-decomposition of the symmetric ``C^-1/2 K C^-1/2`` (no scipy needed).
Why: the TPU groups are light and tightly coupled to the cold plate (time
constants of seconds or less), which this treats exactly and stably at any dt;
the conduction network conserves energy to round-off; a step is two 10x10
matrix-vector products per satellite in the ``@njit`` kernel
:func:`thermal_step` (well under a microsecond per satellite), which
:mod:`twin.sim.plant` calls from its fused per-tick kernel. Backward Euler
costs the same but lags fast transients by O(dt) (3.6 K against a 1 ms
reference through an eclipse with a 200 J/K TPU group, against 0.006 K here);
holding all of the radiation explicitly is stable with the defaults but ~13
times less accurate (0.08 K). The explicit residual is checked at
construction (per node, 100-500 K).
Pass irradiance and albedo averaged over the step.

Default operating points ("node" defaults, measured with this module; TPUs
6 kW per group in Sun, 1.2 kW idle in eclipse; avionics node 790 W; battery
losses 50 W in Sun, 150 W in eclipse; array giving 26 kW; albedo factor 0.1;
heaters off; orbit: 77 min Sun, 20 min eclipse, periodic state)::

    node         Sun steady   orbit min..max
    tpu0..3        67.1 C     -12.2 .. 66.2 C
    coldplate      44.0 C     -17.0 .. 43.2 C
    radiator       24.0 C     -21.4 .. 23.2 C
    battery        19.3 C       9.8 .. 12.1 C   (slow: orbit average, not eclipse)
    avionics       35.3 C       9.7 .. 32.8 C   (coldest just after eclipse)
    structure      27.4 C       0.7 .. 25.0 C
    solar_array    55.2 C     -85.5 .. 55.2 C

With the TPUs idle in eclipse the cold loop loses ~45 K per eclipse; keeping
them at full power instead holds it within 1 K (battery then ~20 C).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from twin.params import param

__all__ = ["NODES", "NODE_INDEX", "SIGMA", "ThermalParams", "ThermalModel", "thermal_step"]

NODES = ("tpu0", "tpu1", "tpu2", "tpu3", "coldplate", "radiator", "battery", "avionics", "structure",
         "solar_array")
NODE_INDEX = {name: i for i, name in enumerate(NODES)}
SIGMA = 5.670374419e-8
_ZERO_C = 273.15
_SURFACES = {"radiator": "radiator", "battery": "battery_radiator", "structure": "structure",
             "solar_array": "solar_array"}


def _pos(default, unit, doc):
    return param(default, unit, lo=0.0, lo_open=True, doc=doc)


def _nonneg(default, unit, doc, hi=None):
    return param(default, unit, lo=0.0, hi=hi, doc=doc)


@dataclass(frozen=True)
class ThermalParams:
    """Capacities, links, surfaces and environment of the node network ("node" defaults)."""

    c_tpu_group_j_k: float = _pos(2000.0, "J/K", "heat capacity of one TPU group (chips, lids, boards)")
    c_coldplate_j_k: float = _pos(20000.0, "J/K", "cold plate with its heat-pipe evaporators")
    c_radiator_j_k: float = _pos(150000.0, "J/K", "main radiator panels with heat pipes")
    c_battery_j_k: float = _pos(130000.0, "J/K", "battery pack")
    c_avionics_j_k: float = _pos(20000.0, "J/K", "avionics box")
    c_structure_j_k: float = _pos(135000.0, "J/K", "bus structure")
    c_solar_array_j_k: float = _pos(140000.0, "J/K", "solar array wing")
    g_tpu_coldplate_w_k: float = _nonneg(260.0, "W/K", "each TPU group to the cold plate")
    g_coldplate_radiator_w_k: float = _nonneg(1200.0, "W/K", "heat pipes, cold plate to radiator")
    g_coldplate_structure_w_k: float = _nonneg(2.0, "W/K", "cold plate mounts")
    g_battery_structure_w_k: float = _nonneg(15.0, "W/K", "battery mounts")
    g_avionics_structure_w_k: float = _nonneg(100.0, "W/K", "avionics box mounts")
    g_structure_radiator_w_k: float = _nonneg(150.0, "W/K", "radiator mounts")
    g_structure_solar_array_w_k: float = _nonneg(1.0, "W/K", "array hinge")
    radiator_area_m2: float = _nonneg(80.0, "m2", "main radiator, both faces (40 m2 panel)")
    radiator_emissivity: float = _nonneg(0.80, "1", "OSR", hi=1.0)
    radiator_absorptivity: float = _nonneg(0.07, "1", "OSR", hi=1.0)
    radiator_sun_fraction: float = _nonneg(0.01, "1", "sunlit projected / radiating area (edge-on)", hi=1.0)
    radiator_earth_view: float = _nonneg(0.24, "1", "mean view factor to Earth (edge-on plate at 650 km)", hi=1.0)
    battery_radiator_area_m2: float = _nonneg(0.6, "m2", "battery's own radiator")
    battery_radiator_emissivity: float = _nonneg(0.80, "1", "OSR", hi=1.0)
    battery_radiator_absorptivity: float = _nonneg(0.07, "1", "OSR", hi=1.0)
    battery_radiator_sun_fraction: float = _nonneg(0.0, "1", "sunlit projected / radiating area", hi=1.0)
    battery_radiator_earth_view: float = _nonneg(0.24, "1", "mean view factor to Earth", hi=1.0)
    structure_area_m2: float = _nonneg(30.0, "m2", "MLI-covered bus exterior")
    structure_emissivity: float = _nonneg(0.03, "1", "effective MLI emittance", hi=1.0)
    structure_absorptivity: float = _nonneg(0.03, "1", "effective MLI absorptance", hi=1.0)
    structure_sun_fraction: float = _nonneg(0.1, "1", "sunlit projected / exterior area", hi=1.0)
    structure_earth_view: float = _nonneg(0.3, "1", "mean view factor to Earth", hi=1.0)
    solar_array_area_m2: float = _nonneg(210.0, "m2", "array, both faces (105 m2 wing)")
    solar_array_emissivity: float = _nonneg(0.85, "1", "cells front / black back, averaged", hi=1.0)
    solar_array_absorptivity: float = _nonneg(0.92, "1", "cells", hi=1.0)
    solar_array_sun_fraction: float = _nonneg(0.5, "1", "sunlit projected / radiating area (tracking)", hi=1.0)
    solar_array_earth_view: float = _nonneg(0.24, "1", "mean view factor to Earth (edge-on)", hi=1.0)
    solar_constant_w_m2: float = _pos(1361.0, "W/m2", "for albedo")
    albedo: float = _nonneg(0.30, "1", "Earth albedo", hi=1.0)
    earth_ir_w_m2: float = _nonneg(240.0, "W/m2", "Earth IR flux at the orbit")
    t_space_k: float = _nonneg(2.7, "K", "deep space")
    rad_linearization_temp_c: float = param(20.0, "degC", lo=-150.0, hi=200.0, doc="radiation linearized about")
    initial_temp_c: float = param(20.0, "degC", lo=-150.0, hi=150.0, doc="all nodes at reset")

    def capacities(self) -> np.ndarray:
        """Heat capacity per node (J/K), in :data:`NODES` order."""
        return np.array([self.c_tpu_group_j_k] * 4 + [self.c_coldplate_j_k, self.c_radiator_j_k,
                        self.c_battery_j_k, self.c_avionics_j_k, self.c_structure_j_k, self.c_solar_array_j_k])

    def links(self) -> list[tuple[str, str, float]]:
        """Conduction links ``(node, node, W/K)``."""
        return [*[(f"tpu{g}", "coldplate", self.g_tpu_coldplate_w_k) for g in range(4)],
                ("coldplate", "radiator", self.g_coldplate_radiator_w_k),
                ("coldplate", "structure", self.g_coldplate_structure_w_k),
                ("battery", "structure", self.g_battery_structure_w_k),
                ("avionics", "structure", self.g_avionics_structure_w_k),
                ("structure", "radiator", self.g_structure_radiator_w_k),
                ("structure", "solar_array", self.g_structure_solar_array_w_k)]

    def surface(self, node: str) -> tuple[float, float, float, float, float]:
        """``(area, eps, alpha, sun_fraction, earth_view)`` of a node's external surface (zeros if none)."""
        pre = _SURFACES.get(node)
        if pre is None:
            return (0.0, 0.0, 0.0, 0.0, 0.0)
        return tuple(getattr(self, f"{pre}_{k}") for k in ("area_m2", "emissivity", "absorptivity",
                                                              "sun_fraction", "earth_view"))


# Rows of ThermalModel.coef: per-node vectors of the step.
_C_NEG_SEA, _C_SUN, _C_ALBEDO, _C_CONST = range(4)


@njit(cache=True, error_model="numpy")
def thermal_step(temps_c, q_w, irradiance_w_m2, albedo_factor, arrays):
    """Advance one node row ``temps_c`` in place (``(n_nodes,)``, one satellite).

    ``q_w`` ``(n_nodes,)``; ``arrays`` is :attr:`ThermalModel.kernel_arrays`.
    Row-vector form: ``T+ = T A + u B + irr gs + af ga + k0`` with
    ``u = q - sigma eps A (T + 273.15)^4``.
    """
    a, b, coef, work = arrays
    n = temps_c.shape[0]
    u, lin, ext = work[0], work[1], work[2]
    for j in range(n):
        x = temps_c[j] + _ZERO_C
        x *= x
        x *= x
        u[j] = x * coef[_C_NEG_SEA, j] + q_w[j]
        lin[j] = 0.0
        ext[j] = 0.0
    # Row by row, so the inner loop runs along contiguous rows (each lin[j] still sums over i in order).
    for i in range(n):
        t_i, u_i = temps_c[i], u[i]
        for j in range(n):
            lin[j] += t_i * a[i, j]
            ext[j] += u_i * b[i, j]
    for j in range(n):
        temps_c[j] = (lin[j] + ext[j] + irradiance_w_m2 * coef[_C_SUN, j] + albedo_factor * coef[_C_ALBEDO, j]
                      + coef[_C_CONST, j])


@njit(cache=True, error_model="numpy")
def _thermal_loop(temps_c, q_w, irradiance_w_m2, albedo_factor, arrays):
    for s in range(temps_c.shape[0]):
        thermal_step(temps_c[s], q_w[s], irradiance_w_m2[s], albedo_factor[s], arrays)


def _canon(x, shape) -> np.ndarray:
    """``x`` as a writable C-contiguous float64 array of ``shape`` (the one type the kernel compiles for)."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape == shape and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(np.broadcast_to(a, shape), dtype=np.float64)


class ThermalModel:
    """The node network for ``n_sat`` satellites, stepped at a fixed ``dt_s``.

    ``temps_c`` ``(n_sat, len(NODES))`` is the current state, updated in place
    by :meth:`step` and :meth:`reset`. Parameters are shared by all satellites
    (``kernel_arrays``: the step matrices, the per-node vectors and scratch,
    computed once); build a new model to change them. Raises ``ValueError``
    if the explicit radiation residual would be unstable at ``dt_s`` (a tiny
    node with a large radiating area).
    """

    def __init__(self, params: ThermalParams, n_sat: int, dt_s: float = 1.0):
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {dt_s!r}")
        self.params, self.n_sat, self.dt_s = params, n_sat, float(dt_s)
        n = len(NODES)
        cap = params.capacities()
        surf = np.array([params.surface(name) for name in NODES])
        area, eps, alpha, f_sun, f_earth = surf.T
        self._sea = SIGMA * eps * area
        sun_abs = alpha * area * f_sun
        alb_abs = alpha * area * f_earth * params.albedo * params.solar_constant_w_m2
        const_in = eps * area * f_earth * params.earth_ir_w_m2 + self._sea * params.t_space_k ** 4
        t_lin = params.rad_linearization_temp_c + _ZERO_C
        h0 = 4.0 * self._sea * t_lin ** 3
        self._check_residual_stability(cap, h0)

        k = np.diag(h0)
        for a, b, g in params.links():
            i, j = NODE_INDEX[a], NODE_INDEX[b]
            k[i, i] += g
            k[j, j] += g
            k[i, j] -= g
            k[j, i] -= g
        s = 1.0 / np.sqrt(cap)
        lam, v = np.linalg.eigh(s[:, None] * k * s[None, :])
        lam = np.maximum(lam, 0.0)
        x = lam * self.dt_s
        small = x < 1e-12
        phi = np.where(small, self.dt_s, -np.expm1(-x) / np.where(small, 1.0, lam))
        big_phi = (s[:, None] * (v * np.exp(-x))) @ (v.T / s[None, :])
        gamma = (s[:, None] * (v * phi)) @ (v.T * s[None, :])
        phi_lin = big_phi + gamma * h0[None, :]
        # Row-vector form (temps are (n_sat, n)): T+ = T @ A + u @ B + outer(irr, gs) + outer(af, ga) + k0.
        coef = np.empty((4, n))
        coef[_C_NEG_SEA] = -self._sea
        coef[_C_SUN] = gamma @ sun_abs
        coef[_C_ALBEDO] = gamma @ alb_abs
        # No Celsius offset term: (Phi_lin - I) @ 1 = -Gamma K 1 + Gamma h0 = 0 exactly.
        coef[_C_CONST] = gamma @ const_in
        self.kernel_arrays = (np.ascontiguousarray(phi_lin.T), np.ascontiguousarray(gamma.T), coef, np.empty((3, n)))
        self.temps_c = np.empty((n_sat, n))
        self.reset()

    def _check_residual_stability(self, cap: np.ndarray, h0: np.ndarray) -> None:
        # Growth factor of an isolated node under this scheme: exp(-a) - (1 - exp(-a)) / a * d, with
        # a = h0 dt / C (implicit part) and d the explicit residual's slope; conduction only damps further.
        t = np.linspace(100.0, 500.0, 81)[:, None]
        a = h0 * self.dt_s / cap
        d = (4.0 * self._sea * t ** 3 - h0) * self.dt_s / cap
        ratio = np.where(a > 1e-12, -np.expm1(-a) / np.where(a > 1e-12, a, 1.0), 1.0)
        growth = np.exp(-a) - ratio * d
        bad = np.any(growth < -0.5, axis=0)
        if np.any(bad):
            names = [NODES[i] for i in np.flatnonzero(bad)]
            raise ValueError(f"radiation too fast for dt={self.dt_s} s on {names}: raise the heat capacity, "
                             f"lower the emissivity*area or dt, or move rad_linearization_temp_c closer")

    def reset(self, temps_c=None) -> None:
        """Set all temperatures: scalar, ``(n_nodes,)`` or ``(n_sat, n_nodes)`` (default ``initial_temp_c``)."""
        value = self.params.initial_temp_c if temps_c is None else temps_c
        self.temps_c = _canon(self.temps_c, (self.n_sat, len(NODES)))
        self.temps_c[...] = np.broadcast_to(np.asarray(value, float), self.temps_c.shape)

    def step(self, q_w, irradiance_w_m2, albedo_factor) -> np.ndarray:
        """Advance one ``dt_s`` with inputs held over the step; return ``temps_c``.

        ``q_w`` ``(n_sat, n_nodes)``: internal heat (W). ``irradiance_w_m2``
        ``(n_sat,)``: solar flux at the spacecraft incl. the shadow fraction,
        averaged over the step. ``albedo_factor`` ``(n_sat,)``, 0..1: the cosine
        of the solar zenith angle at the sub-satellite point (0 on the night side
        and along the terminator); albedo flux = albedo * solar constant * factor.
        ``q_w`` is held over the step, so power switches belong on step edges
        (as commands are): inside a step only its average is seen, which is not
        enough for a node faster than ``dt_s``. The returned array is the state
        itself, updated in place: copy it to keep a snapshot.
        """
        n_sat, n = self.temps_c.shape
        self.temps_c = _canon(self.temps_c, (n_sat, n))
        _thermal_loop(self.temps_c, _canon(q_w, (n_sat, n)), _canon(irradiance_w_m2, (n_sat,)),
                      _canon(albedo_factor, (n_sat,)), self.kernel_arrays)
        return self.temps_c
