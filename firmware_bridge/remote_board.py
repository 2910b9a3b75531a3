"""RemoteBoard: the HAL implemented over a codec and a transport.

To the executive it is a board like the simulated one. Underneath:

* lockstep: ``step_to(t)`` sends SC_STEP_REQUEST(seq, t) and waits for the
  three frame messages for ``t`` (and the SC_STEP_REPLY); no answer within
  ``step_timeout_s`` -> the request is sent again (a board answers a repeated
  step with the frame it already has), up to ``retries`` times, then
  :class:`~firmware_bridge.errors.BridgeTimeout` (the executive counts it and
  hands the flight software a stale frame);
* free-running: ``step_to(t)`` returns the newest complete frame the board
  streamed, re-timed to the twin's clock: ``t_ns = t`` and each group's sample
  time moved so that its age is the board-reported age plus the time since the
  frame arrived (a board that stops streaming reads as stale, not as frozen);
* ``command(cmd)`` sends SC_ACTUATOR_COMMAND with an incrementing sequence number.

A receive task (supervised, strong reference) feeds every chunk to the codec;
when the transport reports the link lost, the parser is reset. Link state and
counters are in :attr:`link_stats` for the flight software's FDIR and the
summary. Leaving the context sends the board's safe command, then closes.
"""
from __future__ import annotations

import asyncio
import logging
import time

from twin.hal import ActuatorCommand, BoardInfo, SensorFrame
from twin.supervisor import Supervisor

from .errors import BridgeTimeout, LinkLost
from .messages import FRAME_GROUPS, FrameAssemblyError, command_to_message, message_class, messages_to_frame

__all__ = ["RemoteBoard"]

log = logging.getLogger(__name__)
_FRAME_TYPES = {g.message for g in FRAME_GROUPS}
_MAX_PARTIAL = 64


class RemoteBoard:
    def __init__(self, transport, codec, *, rig: str, lockstep: bool = True, step_timeout_s: float = 1.0,
                 retries: int = 2):
        self.transport, self.codec = transport, codec
        self.info = BoardInfo(rig, transport.name.split(":", 1)[0], "unknown", lockstep)
        self.lockstep, self.step_timeout_s, self.retries = lockstep, step_timeout_s, retries
        self._sup = Supervisor()
        self._parts: dict[int, dict[str, object]] = {}
        self._frames: dict[int, SensorFrame] = {}
        self._latest: SensorFrame | None = None
        self._latest_arrival = 0
        self._arrived = asyncio.Event()
        self._step_seq = 0
        self._cmd_seq = 0
        self.boot_count: int | None = None
        self.t_ns = 0  # the last step's target: scenario time as the link sees it
        self.link_stats = {"frames_in": 0, "steps": 0, "step_retries": 0, "step_timeouts": 0,
                           "assembly_errors": 0, "link_lost": 0, "last_frame_monotonic": 0.0}

    async def __aenter__(self) -> "RemoteBoard":
        await self.transport.__aenter__()
        try:
            await self._sup.__aenter__()
            self._sup.start("rx", self._rx_loop)
        except BaseException:
            await self.transport.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await asyncio.wait_for(self.command(ActuatorCommand()), timeout=1.0)
        except (LinkLost, BridgeTimeout, asyncio.TimeoutError, OSError):
            log.warning("could not send the safe command on exit")
        finally:
            await self._sup.close()
            await self.transport.__aexit__(*exc)

    async def _rx_loop(self) -> None:
        while True:
            try:
                data = await self.transport.recv()
            except LinkLost:
                self.link_stats["link_lost"] += 1
                self.codec.reset()
                self._parts.clear()
                continue
            for msg in self.codec.feed(data):
                self._dispatch(msg)

    def _dispatch(self, msg) -> None:
        kind = msg.get_type()
        if kind in _FRAME_TYPES:
            parts = self._parts.setdefault(msg.t_ns, {})
            parts[kind] = msg
            if len(parts) == len(_FRAME_TYPES):
                del self._parts[msg.t_ns]
                try:
                    frame = messages_to_frame(parts.values())
                except FrameAssemblyError:
                    self.link_stats["assembly_errors"] += 1
                    return
                self._frames[frame.t_ns] = frame
                if self._latest is None or frame.t_ns >= self._latest.t_ns:
                    self._latest = frame
                    self._latest_arrival = time.monotonic_ns()
                self.link_stats["frames_in"] += 1
                self.link_stats["last_frame_monotonic"] = time.monotonic()
                self._arrived.set()
            if len(self._parts) > _MAX_PARTIAL:  # frames that will never complete (lost parts)
                for t in sorted(self._parts)[:-_MAX_PARTIAL // 2]:
                    del self._parts[t]
        elif kind == "SC_BOARD_STATUS":
            self.boot_count = msg.boot_count

    async def _wait_frame(self, t_ns: int, timeout: float) -> SensorFrame | None:
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frames.pop(t_ns, None) if self.lockstep else self._newest_retimed(t_ns)
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                return None

    def _newest_retimed(self, t_ns: int) -> SensorFrame | None:
        f = self._latest
        if f is None:
            return None
        waited = time.monotonic_ns() - self._latest_arrival
        sample = tuple(t_ns - (f.t_ns - s) - waited for s in f.sample_t_ns)
        return SensorFrame(t_ns, f.values, f.valid, sample)

    async def step_to(self, t_ns: int) -> SensorFrame:
        self.t_ns = t_ns
        if not self.lockstep:
            frame = await self._wait_frame(t_ns, self.step_timeout_s)
            if frame is None:
                raise BridgeTimeout("no frame streamed yet", link=self.transport.name)
            return frame
        self._step_seq += 1
        self.link_stats["steps"] += 1
        for attempt in range(self.retries + 1):
            if attempt:
                self.link_stats["step_retries"] += 1
            await self._send(self._step_request(self._step_seq, t_ns))
            frame = await self._wait_frame(t_ns, self.step_timeout_s)
            if frame is not None:
                for old in [t for t in self._frames if t < t_ns]:
                    del self._frames[old]
                return frame
        self.link_stats["step_timeouts"] += 1
        raise BridgeTimeout(f"no reply to step {self._step_seq} (t={t_ns} ns) after {self.retries + 1} tries",
                            link=self.transport.name)

    def _step_request(self, seq: int, t_ns: int):
        return message_class("SC_STEP_REQUEST")(seq & 0xFFFF_FFFF, t_ns)

    async def command(self, cmd: ActuatorCommand) -> None:
        self._cmd_seq += 1
        await self._send(command_to_message(cmd, self._cmd_seq))

    async def send_message(self, msg) -> None:
        """Encode (and sign) one MAVLink message and send it to the board."""
        await self.transport.send(self.codec.encode(msg))

    _send = send_message
