"""Frames in a byte buffer: their length, their checksum, and the message objects they decode to.

:func:`decoder_for` turns a message class into a function that builds, from a
checksum-verified frame, the very object pymavlink's ``MAVLink.decode`` builds
(same class, same field values, header, ``_msgbuf``, ``_payload`` and
``_crc``) without the generic work ``decode`` repeats for every frame: field
order, array slicing and string fields are worked out once per class, and a
full-length payload is unpacked in place. ``tests/bridge/test_codec.py`` holds
it to ``MAVLink.decode`` on every message type of the dialect.
"""
from __future__ import annotations

import functools
import operator
import re
import struct
from types import ModuleType
from typing import Callable, Sequence

from fastcrc.crc16 import mcrf4xx

__all__ = ["STX", "STX1", "IFLAG_SIGNED", "HEADER", "MessageTable", "frame_length", "crc_ok", "later_good_frame",
           "decoder_for"]

STX, STX1 = 0xFD, 0xFE                  # MAVLink 2, MAVLink 1 start markers
IFLAG_SIGNED = 0x01
HEADER = struct.Struct("<xBBBBBBHB")    # MAVLink 2 header after STX: len, flags, cflags, seq, sys, comp, id

#: ``decode(frame, mlen, flags, cflags, seq, sysid, compid, crc, verified) -> message``
Decoder = Callable[[bytearray, int, int, int, int, int, int, int, bool], object]


class MessageTable(dict):
    """Message id -> (crc_extra as one byte, decoder) for a dialect's known messages, filled on first use."""

    def __init__(self, dialect: ModuleType):
        super().__init__()
        self._mod = dialect

    def lookup(self, mid: int) -> tuple[bytes, Decoder] | None:
        entry = self.get(mid)
        if entry is None:
            cls = self._mod.mavlink_map.get(mid)
            if cls is None:
                return None
            entry = self[mid] = (bytes((cls.crc_extra,)), decoder_for(cls, self._mod.MAVLink_header))
        return entry


def frame_length(buf, pos: int) -> int | None:
    """Whole length of the frame announced at ``pos``; None if too few bytes to tell, 0 if impossible."""
    if len(buf) - pos < 3:
        return None
    if buf[pos] == STX1:
        return 8 + buf[pos + 1]
    flags = buf[pos + 2]
    if flags & ~IFLAG_SIGNED:
        return 0
    return 12 + buf[pos + 1] + (13 if flags else 0)


def crc_ok(mv: memoryview, pos: int, extra: bytes, header_len: int) -> bool:
    """Checksum of the complete frame at ``pos`` (``header_len``: 10 for MAVLink 2, 6 for MAVLink 1)."""
    end = pos + header_len + mv[pos + 1]
    return mcrf4xx(extra, mcrf4xx(mv[pos + 1:end])) == mv[end] | mv[end + 1] << 8


def later_good_frame(mv: memoryview, pos: int, table: MessageTable) -> int:
    """Start of the first complete, checksum-valid MAVLink 2 frame at or after ``pos``, else -1."""
    buf = mv.obj
    while (pos := buf.find(STX, pos)) >= 0:
        length = frame_length(buf, pos)
        if length and pos + length <= len(buf):
            entry = table.lookup(buf[pos + 7] | buf[pos + 8] << 8 | buf[pos + 9] << 16)
            if entry is not None and crc_ok(mv, pos, entry[0], 10):
                return pos
        pos += 1
    return -1


def _struct_items(fmt: str) -> list[bool]:
    """For each value ``struct.unpack`` yields for ``fmt``: is it a ``bytes``?"""
    items: list[bool] = []
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt.lstrip("<>=!@")):
        items += [True] if code == "s" else [code == "c"] * int(count or 1)
    return items


def _field_builder(cls) -> Callable[[tuple], Sequence]:
    """``unpacked tuple -> constructor arguments``, as ``MAVLink.decode`` computes them."""
    orders, lengths = cls.orders, cls.lengths
    is_bytes = _struct_items(cls.unpacker.format)
    if sum(lengths) == len(lengths):
        pick = operator.itemgetter(*orders)
        base = (lambda t: (pick(t),)) if len(orders) == 1 else pick
        sources = list(orders)
    else:
        spans = [(sum(lengths[:o]), lengths[o], lengths[o] == 1 or is_bytes[sum(lengths[:o])]) for o in orders]

        def base(t):
            return [t[tip] if scalar else list(t[tip:tip + size]) for tip, size, scalar in spans]

        sources = [tip if scalar else None for tip, _, scalar in spans]
    strings = [i for i, src in enumerate(sources) if src is not None and is_bytes[src]]
    if not strings:
        return base

    def with_strings(t):
        values = list(base(t))
        for i in strings:
            values[i] = values[i].rstrip(b"\x00")
        return values

    return with_strings


@functools.cache
def decoder_for(cls, header_cls) -> Decoder:
    """A decoder for frames of message class ``cls`` (``header_cls``: the dialect's ``MAVLink_header``).

    The frame must be a complete MAVLink 2 frame whose length and checksum the
    caller has verified; ``verified`` tells whether its signature was checked
    and found good (then ``_signed`` is set and ``_link_id`` taken from the
    frame, as pymavlink does; a signature nobody checked leaves both unset).
    """
    unpack, unpack_from, size, mid = cls.unpacker.unpack, cls.unpacker.unpack_from, cls.unpacker.size, cls.id
    fields = _field_builder(cls)
    zeros = bytes(size)

    def decode(frame, mlen, flags, cflags, seq, sysid, compid, crc, verified):
        end = len(frame) - (15 if flags & 1 else 2)
        if mlen == size:
            values = fields(unpack_from(frame, 10))
        else:  # MAVLink 2 drops trailing zeros; fields added later may be absent or extra
            values = fields(unpack((bytes(frame[10:end]) + zeros)[:size]))
        msg = cls(*values)
        msg._header = header_cls(mid, flags, cflags, mlen, seq, sysid, compid)
        msg._msgbuf, msg._payload, msg._crc = frame, frame[6:end], crc
        if verified:
            msg._signed, msg._link_id = True, frame[-13]
        return msg

    return decode
