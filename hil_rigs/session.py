"""TwinSession: the twin a rig test drives -- flight software, executive and telemetry on one board.

::

    async with TwinSession(board, scenario, rig="emulated-serial") as twin:
        await twin.run_until(lambda t: t.mode == "NOMINAL", within="10m")
        twin.inject("nan", "t_battery_c")               # from the next tick, on whatever rig
        state = await twin.run_until(lambda t: t.mode == "DEGRADED", within="2m")
        twin.assert_telemetry_complete()

Time is scenario time from the run's start (tick 0 at 0 ns); on a lockstep
board it is virtual (as fast as the link allows), otherwise the wall clock.
Conditions see a :class:`TwinState`: ``t.mode``, ``t.t_s``, any channel of the
latest sensor frame by name (``t.t_battery_c``, or ``t.values["t_battery_c"]``),
any housekeeping field (``t.soc_est``, ``t.shed_stage``), ``t.cmd`` (the
command sent), ``t.board_errors``. A condition not met within its budget of
scenario time raises AssertionError naming the condition and the last state.

Faults (:meth:`TwinSession.inject`) go where the rig can apply them: sensor and
device faults into the simulated board's fault injector (``sim``) or as a
signed SC_FAULT_INJECT to the emulated board (``emulated-*``); link faults to
the rig's ``board.link_faults``. A rig that cannot apply one raises
:class:`RigCapabilityError` (the pytest plugin skips such tests beforehand, see
``rig_needs``).
"""
from __future__ import annotations

import gc
import inspect
import math
import re

import numpy as np

from twin.hal import CHANNEL_INDEX, FSW_HOUSEKEEPING_FIELDS, MODES, BoardError
from twin.timeparse import parse_duration

__all__ = ["TwinSession", "TwinState", "RigCapabilityError", "CAPABILITIES", "board_capabilities"]

#: Capabilities a test may ask of a rig (``rig_needs``); ``link_faults:<kind>`` names one link fault kind.
CAPABILITIES = ("lockstep", "free_running", "fault_injection", "link_faults")
_EMULATED = ("emulated-serial", "emulated-mqtt")
_SHOWN_HK = ("shed_stage", "soc_est", "compute_budget_w", "invalid_channels", "fdir_events")


class RigCapabilityError(RuntimeError):
    """The rig cannot do what was asked (e.g. inject a fault); the message says what it can."""


def board_capabilities(board) -> frozenset[str]:
    """What ``board`` (as yielded by ``open_rig``) can serve; see :data:`CAPABILITIES`.

    A board may declare its own with a ``capabilities`` attribute (a bench
    rig's board, for instance); otherwise they are inferred: lockstep from
    ``board.info``; fault injection for an in-process board with a fault
    injector and for the built-in emulated rigs; link faults from
    ``board.link_faults``.
    """
    declared = getattr(board, "capabilities", None)
    if declared is not None:
        return frozenset(declared)
    caps = {"lockstep" if board.info.lockstep else "free_running"}
    if hasattr(getattr(board, "faults", None), "add") or (hasattr(board, "send_message")
                                                          and board.info.rig in _EMULATED):
        caps.add("fault_injection")
    link = getattr(board, "link_faults", None)
    if link is not None:
        caps.add("link_faults")
        caps.update(f"link_faults:{k}" for k in link.kinds)
    return frozenset(caps)


def _ns(text, what: str) -> int:
    try:
        return round(parse_duration(text) * 1e9)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def condition_text(predicate) -> str:
    """Best-effort source text of ``predicate`` (the lambda expression itself, if it is one)."""
    name = getattr(predicate, "__name__", repr(predicate))
    try:
        src = inspect.getsource(predicate)
    except (OSError, TypeError):
        return name
    if name != "<lambda>":
        return name
    start = src.find("lambda")
    depth, quote, i = 0, "", start
    while i < len(src):
        c = src[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif c in ",\n" and depth == 0:
            break
        i += 1
    return " ".join(src[start:i].split()) or name


class _Latest:
    """Executive observer: keeps the last tick's frame, command and housekeeping."""

    frame = cmd = hk = None

    def record(self, frame, cmd, hk) -> None:
        self.frame, self.cmd, self.hk = frame, cmd, hk

    def close(self) -> None:
        pass


class TwinState:
    """A live view of the twin after the last tick (cheap: read when asked, never copied)."""

    __slots__ = ("_session",)

    def __init__(self, session: "TwinSession"):
        object.__setattr__(self, "_session", session)

    @property
    def t_ns(self) -> int:
        """Scenario time of the last tick run."""
        return self._session.t_ns

    @property
    def t_s(self) -> float:
        return self._session.t_ns / 1e9

    @property
    def mode(self) -> str:
        """Flight-software mode name: SAFE, DEGRADED or NOMINAL."""
        return MODES[self._session.fsw.modes.mode]

    @property
    def values(self) -> dict[str, float]:
        """The latest sensor frame's readings by channel name."""
        frame = self._session._latest.frame
        return {} if frame is None else {n: frame.values[i] for n, i in CHANNEL_INDEX.items()}

    @property
    def valid(self) -> dict[str, bool]:
        """The board's valid flag per channel of the latest frame."""
        frame = self._session._latest.frame
        return {} if frame is None else {n: bool(frame.valid[i]) for n, i in CHANNEL_INDEX.items()}

    @property
    def hk(self):
        """The last tick's :class:`~twin.hal.FswHousekeeping`."""
        return self._session._latest.hk

    @property
    def cmd(self):
        """The last command sent to the board (quantized)."""
        return self._session._latest.cmd

    @property
    def board_errors(self) -> int:
        return self._session.executive.board_errors

    def __getattr__(self, name: str):
        latest = self._session._latest
        if name in CHANNEL_INDEX:
            return math.nan if latest.frame is None else latest.frame.values[CHANNEL_INDEX[name]]
        if name in FSW_HOUSEKEEPING_FIELDS and latest.hk is not None:
            return getattr(latest.hk, name)
        raise AttributeError(f"twin state has no {name!r} (a channel name, a housekeeping field, mode, t_s, ...)")

    def describe(self, extra: tuple[str, ...] = ()) -> str:
        """One line of the state: time, mode, key housekeeping, ``extra`` channels or fields, board errors."""
        parts = [f"t={self.t_s:g} s", f"mode={self.mode}"]
        names = [n for n in (*_SHOWN_HK, *extra) if n in CHANNEL_INDEX or n in FSW_HOUSEKEEPING_FIELDS]
        for name in dict.fromkeys(names):
            v = getattr(self, name) if self._session._latest.frame is not None else None
            parts.append(f"{name}={v:.6g}" if isinstance(v, float) else f"{name}={v}")
        parts.append(f"board_errors={self.board_errors}")
        return ", ".join(parts)


class TwinSession:
    """The twin on one board for one scenario; an async context manager (enters and leaves the board).

    ``board`` as yielded by :func:`hil_rigs.rigs.open_rig` (not yet entered).
    Attributes: ``board``, ``scenario``, ``rig``, ``seed``, ``fsw``,
    ``executive``, ``recorder``, ``capabilities``, ``state`` (a
    :class:`TwinState`).
    """

    def __init__(self, board, scenario, *, rig: str | None = None, clock=None):
        from twin.clock import VirtualClock, WallClock
        from twin.run import build_twin
        self.board, self.scenario = board, scenario
        self.rig = rig or board.info.rig
        self.seed = scenario.run.seed
        self.period_ns = scenario.period_ns
        self.capabilities = board_capabilities(board)
        self.clock = clock or (VirtualClock() if board.info.lockstep else WallClock())
        self._latest = _Latest()
        self.fsw, self.recorder, self.executive = build_twin(scenario, board, self.clock, observers=[self._latest])
        self.state = TwinState(self)
        self._outbox: list = []
        self._entered = False

    async def __aenter__(self) -> "TwinSession":
        await self.board.__aenter__()
        self._entered = True
        try:
            self.executive.start(0)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        """Close the recorder and clock and leave the board -- the board whatever the others raise."""
        try:
            try:
                self.recorder.close()
            finally:
                self.clock.close()
        finally:
            # The executive froze the objects built before the run (gc.freeze); in a long pytest
            # process of many rig tests they would otherwise never be collected.
            gc.unfreeze()
            if self._entered:
                self._entered = False
                await self.board.__aexit__(*exc)

    @property
    def t_ns(self) -> int:
        """Scenario time of the last tick run (-period before the first)."""
        return (self.executive.ticks - 1) * self.period_ns

    @property
    def next_tick_ns(self) -> int:
        return self.executive.ticks * self.period_ns

    async def run_for(self, duration) -> TwinState:
        """Run ``duration`` of scenario time ('30m', '90s', or seconds)."""
        await self._flush_outbox()
        await self.executive.run_ticks(self._ticks(_ns(duration, "run_for")))
        return self.state

    async def run_until(self, predicate, within="10m", *, what: str | None = None) -> TwinState:
        """Run until ``predicate(state)`` is true (checked after every tick) and return the state.

        AssertionError, naming the condition (``what`` or the predicate's
        source) and the last state, if it is not true within ``within`` of
        scenario time. A condition already true returns at once.
        """
        budget = _ns(within, "run_until within")
        state = self.state
        if self.executive.ticks and predicate(state):
            return state
        await self._flush_outbox()
        t0 = self.next_tick_ns
        if await self.executive.run_ticks(self._ticks(budget), until=lambda: predicate(state)):
            return state
        text = what or condition_text(predicate)
        mentioned = tuple(n for n in re.findall(r"[A-Za-z_]\w*", text)
                          if n != "mode" and (n in CHANNEL_INDEX or n in FSW_HOUSEKEEPING_FIELDS))
        events = [f"{e.t_s:g} s {e.what}" for e in list(self.fsw.event_log)[-3:]]
        raise AssertionError(
            f"condition not met within {within} of scenario time (t={t0 / 1e9:g} .. {self.t_ns / 1e9:g} s) "
            f"on rig {self.rig}: {text}\n  last state: {state.describe(mentioned)}"
            + (f"\n  last FDIR events: {'; '.join(events)}" if events else ""))

    def _ticks(self, budget_ns: int) -> int:
        return max(1, -(-budget_ns // self.period_ns))

    def inject(self, kind: str, target: str = "", at=None, duration="", value: float = 0.0):
        """Schedule a fault; returns its :class:`~twin.sim.faults.FaultSpec`.

        ``at``: scenario time since the run's start ('2h', seconds), default the
        next tick; ``duration``: '' for the rest of the run. Sensor and device
        faults act inside the board (the simulated one, or the emulated one by
        signed SC_FAULT_INJECT, sent before the next tick), with ``value``
        rounded to float32 as the wire carries it; link faults go to
        ``board.link_faults``. ValueError for a bad kind, target, value or a
        time already past; :class:`RigCapabilityError` if the rig cannot.
        """
        from hil_rigs.board_server import fault_spec, make_fault_spec
        from twin.sim.faults import LINK_FAULTS, unsupported_link_fault
        at_ns = self.next_tick_ns if at is None else (0 if at in (0, "0", "0s") else _ns(at, "inject at"))
        if at_ns < self.next_tick_ns:
            raise ValueError(f"inject at {at_ns / 1e9:g} s: that is past (the next tick is at "
                             f"{self.next_tick_ns / 1e9:g} s)")
        dur_ns = _ns(duration, "inject duration") if duration not in ("", None) else 0
        if kind in LINK_FAULTS:
            spec = fault_spec(kind, target, at_ns, dur_ns, value)
            link = getattr(self.board, "link_faults", None)
            problem = unsupported_link_fault(kind, getattr(link, "kinds", None), f"rig {self.rig}")
            if problem:
                raise RigCapabilityError(problem)
            link.add(spec)
            return spec
        with np.errstate(over="ignore"):  # the wire carries float32: every rig applies that same value
            value = float(np.float32(value))
        spec = make_fault_spec(kind, target, at_ns, dur_ns, value)
        if "fault_injection" not in self.capabilities:
            raise RigCapabilityError(f"rig {self.rig} cannot inject {kind!r}: no fault injection on this board")
        faults = getattr(self.board, "faults", None)
        if hasattr(faults, "add"):
            faults.add(spec)
        else:
            from firmware_bridge.messages import FaultInjectFields, fault_inject_message
            self._outbox.append(fault_inject_message(FaultInjectFields(kind, target, at_ns, dur_ns, value)))
        return spec

    async def _flush_outbox(self) -> None:
        """Send the queued fault injections; a link or board error (``BoardError``, e.g. ``LinkLost``,
        ``BridgeTimeout``) propagates as it is, the message kept for the next try."""
        while self._outbox:
            msg = self._outbox[0]
            try:
                await self.board.send_message(msg)
            except BoardError:
                raise
            except Exception as exc:
                raise RigCapabilityError(f"rig {self.rig}: could not send {msg.kind} fault injection: {exc}") from exc
            self._outbox.pop(0)

    @property
    def telemetry(self) -> np.ndarray:
        """Every recorded row so far (``twin.telemetry.records.RECORD_DTYPE``), one per tick."""
        return self.recorder.rows()

    def column(self, name: str) -> np.ndarray:
        """One channel (by name) or housekeeping field over the recorded rows."""
        rows = self.telemetry
        if name in CHANNEL_INDEX:
            return rows["values"][:, CHANNEL_INDEX[name]]
        if name in FSW_HOUSEKEEPING_FIELDS:
            return rows[f"hk_{name}"]
        return rows[name]

    def assert_telemetry_complete(self) -> None:
        """Nothing lost: one row per tick run, at contiguous tick times from 0, no row dropped or sink failed,
        and cumulative counters never decreasing."""
        rows, ticks = self.telemetry, self.executive.ticks
        assert len(rows) == ticks, f"{ticks} ticks run but {len(rows)} telemetry rows recorded"
        expected = np.arange(ticks, dtype=np.int64) * self.period_ns
        gaps = np.flatnonzero(rows["t_ns"] != expected)
        assert not len(gaps), (f"telemetry times not contiguous: row {gaps[0]} is at {rows['t_ns'][gaps[0]]} ns, "
                               f"expected {expected[gaps[0]]} ns ({len(gaps)} rows off)")
        assert self.recorder.dropped_rows == 0, f"{self.recorder.dropped_rows} telemetry rows dropped as malformed"
        assert self.recorder.sink_errors == 0, f"{self.recorder.sink_errors} telemetry sink errors"
        for name in ("generated_bytes", "downlinked_bytes", "dropped_bytes", "fdir_events", "task_faults"):
            down = np.flatnonzero(np.diff(rows[f"hk_{name}"]) < 0)
            assert not len(down), f"cumulative {name} decreased at t={rows['t_ns'][down[0] + 1] / 1e9:g} s"

    def events(self, text: str = "") -> list:
        """FDIR events (``t_s``, ``what``, ``why``) whose ``what`` contains ``text``."""
        return self.fsw.event_log.find(text)
