"""The Board interface: the only way the flight software touches hardware.

A board is an async context manager. Entering it brings the board up in its
boot state; leaving it puts the hardware in its safe state and releases every
resource (idempotent, safe after a half-finished start).

Two ways of running, both through the same interface:

* lockstep (``info.lockstep`` true): the executive calls :meth:`Board.step_to`
  with the next tick's time; the board advances its physics (or asks the
  emulator/physical board to) to exactly that time and returns the frame for it.
  Deterministic, and as fast as the board allows.
* free-running (physical boards on the wall clock): :meth:`Board.step_to`
  returns the latest frame the board streamed at or before ``t_ns``.

Each tick the executive does ``frame = await board.step_to(t)``, runs the
flight software on ``frame``, then ``await board.command(cmd)``; a command
applies from that tick on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .frame import ActuatorCommand, SensorFrame

__all__ = ["Board", "BoardInfo", "BoardError"]


class BoardError(Exception):
    """A board could not serve a step or take a command (link lost, timeout, reboot).

    The executive counts it and carries on with a stale frame, so the flight
    software's FDIR sees the staleness; it never stops the control loop.
    Transports subclass it with their own, more precise errors.
    """


@dataclass(frozen=True)
class BoardInfo:
    """Facts about a board, recorded with every run."""

    rig: str            # "sim", "emulated-serial", a rig file name, ...
    transport: str      # "in-process", "serial", "mqtt", ...
    firmware_id: str    # board firmware name and version
    lockstep: bool


@runtime_checkable
class Board(Protocol):
    info: BoardInfo

    async def __aenter__(self) -> "Board": ...

    async def __aexit__(self, *exc) -> None: ...

    async def step_to(self, t_ns: int) -> SensorFrame:
        """Advance to board time ``t_ns`` (lockstep) and return the frame for it."""
        ...

    async def command(self, cmd: ActuatorCommand) -> None:
        """Send an actuator command; it applies from the current tick on."""
        ...
