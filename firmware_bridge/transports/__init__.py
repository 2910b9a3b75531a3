"""Transports: move bytes between the twin and a board (serial, MQTT, UDP). See :mod:`.base`."""
from .base import LINK_STATES, Backoff, LinkCounters, Transport

__all__ = ["Transport", "LinkCounters", "Backoff", "LINK_STATES"]
