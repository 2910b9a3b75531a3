"""Optical inter-satellite links: link state, received power and electrical load.

Each satellite has ``n_links`` optical terminals. A link is *active* when the
flight software enables it, the optical rail is powered and the terminal has
not failed. An active link acquires for ``acquisition_s`` and is then up; it
drops to down at once when it stops being active, and acquires from scratch
when it becomes active again.

Load per link: ``power_per_link_w`` when up, ``standby_power_w`` when enabled
on a powered rail but not up (acquiring, or failed: a failed terminal keeps its
electronics on until the flight software disables it), 0 otherwise.

Neighbour spacing oscillates between ``spacing_min_m`` and ``spacing_max_m``
twice per orbit (the formation's two shape cycles), each link with its own
phase::

    d(t) = mid + amp * cos(4 pi t / period + phase[sat, link])

Received power. At 100-200 m a diffraction-limited 10 cm beam is in its deep
near field (Rayleigh range ~5 km), so its size barely changes. The terminals
are modelled as deliberately defocused to a divergence ``divergence_urad``
(1/e^2 half angle) that makes pointing at short range easy. A Gaussian beam of
waist ``beam_waist_m`` then has radius ``w(d)^2 = w0^2 + (theta d)^2`` and the
receive aperture of radius ``a`` captures ``eta(d) = 1 - exp(-2 a^2 / w(d)^2)``::

    rx_dbm(d) = rx_power_at_150m_dbm + 10 log10(eta(d) / eta(150 m))

With the defaults this is -20 dBm at 150 m, about +2.6 dB at 100 m and -2.1 dB
at 200 m; with a diffraction-limited divergence (~10 urad) it is flat.
Links that are not up report :data:`RX_DBM_NO_SIGNAL`.

The per-step arithmetic is the ``@njit`` kernel :func:`optical_step` (one
satellite's links); :mod:`twin.sim.plant` calls it from its fused per-tick kernel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from twin.params import param

__all__ = ["OpticalParams", "OpticalLinkModel", "RX_DBM_NO_SIGNAL", "LINK_DOWN", "LINK_ACQUIRING", "LINK_UP",
           "optical_step"]

LINK_DOWN, LINK_ACQUIRING, LINK_UP = 0, 1, 2  # same codes as twin.hal.channels.ISL_*
RX_DBM_NO_SIGNAL = -90.0
_REF_DISTANCE_M = 150.0
_GOLDEN = 0.6180339887498949
# OpticalLinkModel.consts
(_O_STANDBY_W, _O_UP_EXTRA_W, _O_ACQ_DONE_S, _O_OMEGA2, _O_MID_M, _O_AMP_M, _O_W0_SQ, _O_THETA_SQ, _O_TWO_A_SQ,
 _O_RX_OFFSET_DBM, _N_O) = range(11)


@dataclass(frozen=True)
class OpticalParams:
    """Optical terminal power, acquisition, formation spacing and beam."""

    power_per_link_w: float = param(60.0, "W", lo=0.0, doc="load of an up link: 5 W EDFA, electronics, pointing")
    standby_power_w: float = param(30.0, "W", lo=0.0, doc="load of an enabled link that is not up")
    acquisition_s: float = param(20.0, "s", lo=0.0, doc="time from enabled and powered to link up")
    spacing_min_m: float = param(100.0, "m", lo=1.0, doc="closest neighbour distance over an orbit")
    spacing_max_m: float = param(200.0, "m", lo=1.0, doc="farthest neighbour distance over an orbit")
    rx_power_at_150m_dbm: float = param(-20.0, "dBm", lo=-80.0, hi=20.0, doc="received power per channel at 150 m")
    aperture_diameter_m: float = param(0.10, "m", lo=0.001, hi=1.0, doc="receive aperture diameter")
    beam_waist_m: float = param(0.05, "m", lo=0.001, hi=1.0, doc="transmit beam 1/e^2 waist radius")
    divergence_urad: float = param(1000.0, "urad", lo=0.0, hi=1e5, doc="transmit beam 1/e^2 half-angle divergence")


@njit(cache=True, error_model="numpy")
def optical_step(s, t_end_s, dt_s, enable, powered, failed, arrays, rx_dbm, power_w):
    """Advance the links of satellite ``s`` over a step ending at ``t_end_s``; return their load (W).

    ``enable``, ``failed`` ``(n_sat, n_links)`` bool; ``powered``: this
    satellite's optical rail (bool); ``arrays`` is
    :attr:`OpticalLinkModel.kernel_arrays`, whose ``elapsed`` and
    ``link_state`` rows ``s`` are updated. Writes row ``s`` of ``rx_dbm`` and ``power_w``.
    """
    elapsed, state, phase, oc = arrays
    total = 0.0
    for k in range(elapsed.shape[1]):
        drawing = enable[s, k] and powered
        active = drawing and not failed[s, k]
        e = elapsed[s, k] + dt_s if active else 0.0
        elapsed[s, k] = e
        up = e >= oc[_O_ACQ_DONE_S]
        state[s, k] = (LINK_UP if up else LINK_ACQUIRING) if active else LINK_DOWN
        # up implies drawing, so this is standby for enabled links and full power for up ones.
        p = (oc[_O_STANDBY_W] if drawing else 0.0) + (oc[_O_UP_EXTRA_W] if up else 0.0)
        power_w[s, k] = p
        total += p
        if up:
            d = math.cos(phase[s, k] + oc[_O_OMEGA2] * t_end_s) * oc[_O_AMP_M] + oc[_O_MID_M]
            w_sq = oc[_O_THETA_SQ] * (d * d) + oc[_O_W0_SQ]
            rx_dbm[s, k] = oc[_O_RX_OFFSET_DBM] + 10.0 * math.log10(-math.expm1(-oc[_O_TWO_A_SQ] / w_sq))
        else:
            rx_dbm[s, k] = RX_DBM_NO_SIGNAL
    return total


@njit(cache=True, error_model="numpy")
def _optical_loop(t_end_s, dt_s, enable, powered, failed, arrays, rx_dbm, power_w):
    for s in range(powered.shape[0]):
        optical_step(s, t_end_s, dt_s, enable, powered[s], failed, arrays, rx_dbm, power_w)


def _bools(x) -> np.ndarray:
    """``x`` as a writable C-contiguous bool array (the one type the kernel compiles for)."""
    a = np.asarray(x, dtype=np.bool_)
    return a if a.flags.c_contiguous and a.flags.writeable else np.array(a, dtype=np.bool_, order="C")


class OpticalLinkModel:
    """State, received power and load of ``n_links`` optical links on each of ``n_sat`` satellites.

    ``period_s`` is the orbital period, which sets the spacing oscillation.
    Call :meth:`step` once per tick. ``kernel_arrays`` is what
    :func:`optical_step` works on: ``elapsed`` (time each link has been
    active) and ``link_state`` (the codes of the last step), both updated in
    place, and the constants ``phase`` and ``consts``.
    """

    def __init__(self, params: OpticalParams, n_sat: int, period_s: float, n_links: int = 4):
        if n_sat < 1 or n_links < 1 or not period_s > 0:
            raise ValueError(f"need n_sat >= 1, n_links >= 1, period_s > 0; got {n_sat}, {n_links}, {period_s}")
        if params.spacing_max_m < params.spacing_min_m:
            raise ValueError("OpticalParams: spacing_max_m must be >= spacing_min_m")
        self.params = params
        self.n_sat, self.n_links, self.period_s = n_sat, n_links, float(period_s)
        self._shape = (n_sat, n_links)
        k = np.arange(n_links) / n_links
        # Golden-ratio offsets spread satellites' phases evenly and deterministically (no rng).
        s = (np.arange(n_sat) * _GOLDEN) % 1.0
        self.phase = 2.0 * np.pi * ((k[None, :] + s[:, None]) % 1.0)
        self._omega2 = 4.0 * np.pi / self.period_s
        self._mid = 0.5 * (params.spacing_min_m + params.spacing_max_m)
        self._amp = 0.5 * (params.spacing_max_m - params.spacing_min_m)
        self._w0_sq = params.beam_waist_m ** 2
        self._theta_sq = (params.divergence_urad * 1e-6) ** 2
        self._two_a_sq = 2.0 * (0.5 * params.aperture_diameter_m) ** 2
        self._rx_offset = params.rx_power_at_150m_dbm - float(self._capture_db(_REF_DISTANCE_M))
        c = np.zeros(_N_O)
        c[_O_STANDBY_W] = params.standby_power_w
        c[_O_UP_EXTRA_W] = params.power_per_link_w - params.standby_power_w
        # Tolerance so that acquisition_s / dt summed steps count as done despite rounding; kept
        # above 0 so that a link that is not active (elapsed 0) is never up.
        c[_O_ACQ_DONE_S] = max(params.acquisition_s - 1e-9 * max(1.0, params.acquisition_s), 1e-12)
        c[_O_OMEGA2], c[_O_MID_M], c[_O_AMP_M] = self._omega2, self._mid, self._amp
        c[_O_W0_SQ], c[_O_THETA_SQ], c[_O_TWO_A_SQ] = self._w0_sq, self._theta_sq, self._two_a_sq
        c[_O_RX_OFFSET_DBM] = self._rx_offset
        self.consts = c
        self.elapsed = np.zeros(self._shape)
        self.link_state = np.zeros(self._shape, dtype=np.int8)
        self.kernel_arrays = (self.elapsed, self.link_state, self.phase, self.consts)
        self._never_failed = np.zeros(self._shape, dtype=bool)
        self.reset()

    def reset(self) -> None:
        """Every link down, acquisition timers cleared (in place)."""
        self.elapsed[...] = 0.0
        self.link_state[...] = LINK_DOWN

    @property
    def state(self) -> np.ndarray:
        """Link states after the last step, (n_sat, n_links) int8 (a copy)."""
        return self.link_state.copy()

    def spacing_m(self, t_s: float) -> np.ndarray:
        """Distance to each link's neighbour at time ``t_s``, (n_sat, n_links) metres."""
        d = np.cos(self.phase + self._omega2 * t_s)
        d *= self._amp
        d += self._mid
        return d

    def rx_dbm_at(self, distance_m: np.ndarray) -> np.ndarray:
        """Received power per channel (dBm) of an up link at ``distance_m``."""
        return self._rx_offset + self._capture_db(distance_m)

    def _capture_db(self, distance_m):
        w_sq = self._theta_sq * np.square(distance_m) + self._w0_sq
        return 10.0 * np.log10(-np.expm1(-self._two_a_sq / w_sq))

    def step(self, t_s: float, dt_s: float, enable: np.ndarray, powered: np.ndarray,
             failed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance over [t_s, t_s + dt_s) with the given inputs held; return the links at its end.

        ``enable`` (n_sat, n_links) bool: the flight software's link enables.
        ``powered`` (n_sat,) bool: the optical rail is on. ``failed``
        (n_sat, n_links) bool, optional: injected terminal failures.

        Returns ``(state, rx_dbm, power_w)``: state int8 (0 down, 1 acquiring,
        2 up), received power in dBm (``RX_DBM_NO_SIGNAL`` when not up) and
        electrical load in W, each (n_sat, n_links) and freshly allocated.
        """
        enable, powered = np.asarray(enable), np.asarray(powered)
        if enable.shape != self._shape or powered.shape != self._shape[:1] or (
                failed is not None and np.shape(failed) != self._shape):
            raise ValueError(f"expected enable and failed {self._shape}, powered {self._shape[:1]}; got "
                             f"{enable.shape}, {np.shape(failed)}, {powered.shape}")
        failed = self._never_failed if failed is None else _bools(failed)
        rx, power = np.empty(self._shape), np.empty(self._shape)
        _optical_loop(float(t_s) + float(dt_s), float(dt_s), _bools(enable), _bools(powered), failed,
                      self.kernel_arrays, rx, power)
        return self.link_state.copy(), rx, power
