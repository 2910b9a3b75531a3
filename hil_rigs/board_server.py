"""BoardServer: a board's side of the protocol, served over any transport.

It wraps a HAL board (the simulated one, in the emulator) and answers the
twin exactly as firmware would: SC_STEP_REQUEST(seq, t) -> step to t (a
repeated request for the time already reached returns the same frame again),
send the three frame messages and SC_STEP_REPLY(seq, t);
SC_ACTUATOR_COMMAND -> apply (duplicates by ``cmd_seq`` ignored). It sends a
HEARTBEAT and SC_BOARD_STATUS once per wall second. Bad input is dropped and
counted by the codec; nothing the twin sends can stop the server.

:meth:`BoardServer.stream` is the free-running mode of a physical board: it
steps the board on the wall clock at the board's own period and streams every
frame, while :meth:`serve` applies the commands that arrive.
"""
from __future__ import annotations

import asyncio
import logging
import time

from firmware_bridge.errors import BoardError, LinkLost
from firmware_bridge.messages import frame_to_messages, message_class, message_to_command

__all__ = ["BoardServer"]

log = logging.getLogger(__name__)


class BoardServer:
    def __init__(self, board, transport, codec, *, firmware_id: str = "emulator"):
        self.board, self.transport, self.codec = board, transport, codec
        self.firmware_id = firmware_id
        self.last_frame = None
        self.last_cmd_seq: int | None = None
        self.stats = {"steps": 0, "repeats": 0, "commands": 0, "duplicates": 0, "errors": 0}
        self._next_status = 0.0

    async def serve(self) -> None:
        """Serve until cancelled."""
        while True:
            try:
                data = await self.transport.recv()
            except LinkLost:
                self.codec.reset()
                continue
            for msg in self.codec.feed(data):
                try:
                    await self._handle(msg)
                except LinkLost:
                    break
                except BoardError as exc:
                    self.stats["errors"] += 1
                    log.warning("board refused: %s", exc)
            await self._maybe_status()

    async def stream(self, period_ns: int) -> None:
        """Free-running: step the board every ``period_ns`` of wall time and send each frame (until cancelled)."""
        start = time.monotonic()
        k = 0
        while True:
            delay = start + k * period_ns / 1e9 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = await self.board.step_to(k * period_ns)
            self.last_frame = frame
            self.stats["steps"] += 1
            try:
                await self.transport.send(b"".join(self.codec.encode(m) for m in frame_to_messages(frame)))
            except LinkLost:
                pass
            k += 1

    async def _handle(self, msg) -> None:
        kind = msg.get_type()
        if kind == "SC_STEP_REQUEST":
            if self.last_frame is not None and self.last_frame.t_ns == msg.t_ns:
                self.stats["repeats"] += 1
                frame = self.last_frame
            else:
                frame = await self.board.step_to(msg.t_ns)
                self.last_frame = frame
                self.stats["steps"] += 1
            out = b"".join(self.codec.encode(m) for m in frame_to_messages(frame))
            out += self.codec.encode(message_class("SC_STEP_REPLY")(msg.seq, msg.t_ns))
            await self.transport.send(out)
        elif kind == "SC_ACTUATOR_COMMAND":
            if msg.cmd_seq == self.last_cmd_seq:
                self.stats["duplicates"] += 1
                return
            self.last_cmd_seq = msg.cmd_seq
            self.stats["commands"] += 1
            await self.board.command(message_to_command(msg))

    async def _maybe_status(self) -> None:
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + 1.0
        boot = int(getattr(self.board, "boot_count", 1)) & 0xFFFF
        t_ns = self.last_frame.t_ns if self.last_frame is not None else 0
        status = message_class("SC_BOARD_STATUS")(t_ns, boot, 0, self.firmware_id.encode()[:32])
        try:
            await self.transport.send(self.codec.encode(status))
        except LinkLost as exc:
            log.debug("status not sent: %s", exc)
