"""The hardware abstraction layer: all the flight software may import.

The flight software reads a :class:`SensorFrame` and writes an
:class:`ActuatorCommand` through a :class:`Board`; it cannot tell whether the
board is simulated in-process, emulated behind a wire, or physical. The channel
table is documented in :mod:`twin.hal.channels`.
"""
from .board import Board, BoardError, BoardInfo
from .channels import *  # noqa: F401,F403  (the channel table is part of the HAL)
from .channels import __all__ as _channels_all
from .frame import FSW_HOUSEKEEPING_FIELDS, ActuatorCommand, FswHousekeeping, SensorFrame, quantize_f32

__all__ = ["Board", "BoardError", "BoardInfo", "SensorFrame", "ActuatorCommand", "FswHousekeeping", "FSW_HOUSEKEEPING_FIELDS", "quantize_f32", *_channels_all]
