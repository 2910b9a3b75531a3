"""Lumped-node thermal network of a compute satellite, vectorized over satellites.

Nodes (:data:`NODES`) exchange heat by conduction over fixed links (W/K), with
deep space by radiation, and absorb sunlight, Earth albedo and Earth IR on four
external surfaces (main radiator, battery radiator, MLI-covered structure,
solar array). Each surface is a total radiating area with face-averaged optical
properties: ``eps*A`` radiates, ``alpha*A*sun_fraction`` sees the Sun,
``A*earth_view`` sees the Earth (albedo absorbed with alpha, Earth IR with eps).

Intended heat inputs ``q_w``: each TPU group its electrical power; ``avionics``
the avionics, optical-terminal and radio power plus the avionics heater;
``battery`` the battery's ``p_loss_w`` plus its heater; ``solar_array`` minus
the electrical power taken from it (``-p_solar_used_w``: shunted power stays
on the array as heat).

Integrator
----------
Exponential integration. Radiation is split into a part linearized about
``rad_linearization_temp_c`` (``h0 = 4 sigma eps A T0^3``, folded into the
conduction matrix ``K = G + diag(h0)``) and the residual
``sigma eps A T^4 - h0 T``, evaluated at the start of the step and held, like
the external heat. For inputs held over the step the linear part is then
integrated exactly: ``T+ = Phi T + Gamma u`` with ``Phi = exp(-C^-1 K dt)``
and ``Gamma = int_0^dt exp(-C^-1 K s) ds C^-1``, both computed once from the
eigen-decomposition of the symmetric ``C^-1/2 K C^-1/2``. So the stiff,
tightly coupled TPU/cold-plate nodes are unconditionally stable and exact at
any dt, the conduction network conserves energy to round-off, and a step
costs two small matrix products and a few element-wise operations.
Backward Euler would be as cheap but damps the fast modes with an O(dt) error;
the explicit residual is checked at construction (per node, 100-500 K).
Pass irradiance and albedo averaged over the step: penumbra is then followed
to second order in dt.

Default operating points (node scenario, steady state in sunlight, TPUs at
24 kW, avionics node 790 W, battery 50 W losses, heaters off, array giving
26 kW, albedo factor 0.1), measured with this module::

    tpu0..3 71.9 C   coldplate 48.6 C   radiator 28.2 C   battery 15.3 C
    avionics 35.2 C  structure 30.5 C   solar_array 53.7 C

Orbit cycle (77 min Sun at 24 kW, 20 min eclipse at 4.8 kW TPU idle, heaters
off, periodic state): radiator falls to -22 C at eclipse exit, avionics
to 12 C; the battery drifts only ~1 K per orbit (it is heavy), so its heater
holds it by duty rather than against eclipse transients.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from twin.params import param

__all__ = ["NODES", "NODE_INDEX", "SIGMA", "ThermalParams", "ThermalModel"]

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


class ThermalModel:
    """The node network for ``n_sat`` satellites, stepped at a fixed ``dt_s``.

    ``temps_c`` ``(n_sat, len(NODES))`` is the current state. Parameters are
    shared by all satellites (the step matrices are precomputed once); build a
    new model to change them. Raises ``ValueError`` if the explicit radiation
    residual would be unstable at ``dt_s`` (a tiny node with a large radiating area).
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
        self._neg_sea = -self._sea
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
        self._a = np.ascontiguousarray(phi_lin.T)
        self._b = np.ascontiguousarray(gamma.T)
        self._gs = gamma @ sun_abs
        self._ga = gamma @ alb_abs
        self._k0 = gamma @ const_in + (phi_lin - np.eye(n)) @ np.full(n, _ZERO_C)
        self.temps_c = np.empty((n_sat, n))
        self.reset()

    def _check_residual_stability(self, cap: np.ndarray, h0: np.ndarray) -> None:
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
        self.temps_c = np.broadcast_to(np.asarray(value, float), (self.n_sat, len(NODES))).copy()

    def step(self, q_w, irradiance_w_m2, albedo_factor) -> np.ndarray:
        """Advance one ``dt_s`` with inputs held over the step; return the new ``temps_c``.

        ``q_w`` ``(n_sat, n_nodes)``: internal heat (W). ``irradiance_w_m2``
        ``(n_sat,)``: solar flux at the spacecraft incl. the shadow fraction,
        averaged over the step. ``albedo_factor`` ``(n_sat,)``, 0..1: the cosine
        of the solar zenith angle at the sub-satellite point (0 on the night side
        and along the terminator); albedo flux = albedo * solar constant * factor.
        The returned array is the new state (a fresh array each step).
        """
        t = self.temps_c
        u = t + _ZERO_C
        u *= u
        u *= u
        u *= self._neg_sea
        u += q_w
        out = np.dot(t, self._a)
        out += np.dot(u, self._b)
        out += np.multiply.outer(irradiance_w_m2, self._gs)
        out += np.multiply.outer(albedo_factor, self._ga)
        out += self._k0
        self.temps_c = out
        return out
