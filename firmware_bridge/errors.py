"""The bridge's errors: one small tree, split by phase, mapped at the edge.

::

    BoardError (twin.hal)            the executive counts it and carries on with a stale frame
     └── BridgeError                 base of everything the bridge raises
          ├── BridgeInitError        could not open: no device, broker refused, bad key file
          ├── BridgeOperationError   a link that was up failed while in use
          │    └── LinkLost          the device went away / the broker connection dropped
          ├── BridgeTimeout          (also a TimeoutError) no answer in time, e.g. a lockstep reply
          ├── ProtocolError          bytes that are not our protocol (reported, never raised into the loop)
          └── SecurityError          authentication: bad signature, replay, unsigned command, ACL denial

Foreign exceptions (``serial.SerialException``, ``aiomqtt.MqttError``,
``OSError``) are mapped to these with ``raise ... from`` where they are caught.
Every error carries ``link`` (which link, e.g. ``serial:/dev/ttyUSB0``) when known.
"""
from __future__ import annotations

from twin.hal import BoardError

__all__ = ["BridgeError", "BridgeInitError", "BridgeOperationError", "LinkLost", "BridgeTimeout",
           "ProtocolError", "SecurityError"]


class BridgeError(BoardError):
    def __init__(self, message: str, *, link: str | None = None):
        super().__init__(f"{link}: {message}" if link else message)
        self.link = link


class BridgeInitError(BridgeError):
    """A link or board could not be brought up."""


class BridgeOperationError(BridgeError):
    """A link failed while in use."""


class LinkLost(BridgeOperationError):
    """The device or connection went away; the transport reconnects on its own."""


class BridgeTimeout(BridgeError, TimeoutError):
    """No answer within the allowed time."""


class ProtocolError(BridgeError):
    """Bytes that do not parse as our protocol."""


class SecurityError(BridgeError):
    """An authentication failure: bad signature, replay, unsigned command, ACL denial."""
