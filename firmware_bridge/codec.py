"""The MAVLink codec: bytes in, messages out, and back. No I/O.

:class:`MavlinkCodec` frames a byte stream itself and hands each candidate
frame to the generated dialect's ``MAVLink.decode`` (a ``file=None`` instance
used as a pure parser). It frames itself because pymavlink's own
``parse_buffer`` swallows a whole announced length when a header is corrupt,
taking good frames behind it along. Here a rejected candidate costs one byte:
the scan restarts right after its start marker, so any garbage, bit flip or
cut-off frame loses at most the frames it actually touches. A candidate still
waiting for its announced bytes does not hold back a complete, checksum-valid
frame found behind it (a stray 0xFD must not stall a lockstep link). The
checksum is checked here, so pymavlink's ``MAV_IGNORE_CRC`` has no effect.

:func:`pack_columns` frames many messages of one type at once with numpy
(wire order, MAVLink 2 trailing-zero truncation, X.25 CRC with crc_extra), byte
for byte what pymavlink's ``pack`` gives; for bulk writers such as tlogs.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Mapping

import numpy as np

from .dialect import load_dialect

__all__ = ["CodecCounters", "MavlinkCodec", "pack_columns", "wire_dtype"]

_STX = 0xFD
_HEADER_LEN = 10
_IFLAG_SIGNED = 0x01
_SIGNATURE_LEN = 13


@dataclass
class CodecCounters:
    """What a codec has seen. Every byte fed ends up in an accepted frame, ``bytes_dropped`` or pending.

    Error counts are per rejected candidate: a stray 0xFD inside garbage counts
    as well, so they measure link noise rather than lost frames.
    """

    frames_ok: int = 0
    crc_errors: int = 0      # known message id, checksum wrong
    unknown_ids: int = 0     # message id not in the dialect (checksum cannot be checked)
    decode_errors: int = 0   # checksum right but pymavlink refused the frame
    bytes_dropped: int = 0


class MavlinkCodec:
    """A MAVLink 2 codec for one link: ``feed`` parses, ``encode`` frames; neither does I/O.

    ``feed`` never raises: bad bytes are dropped and counted in :attr:`counters`.
    Only MAVLink 2 frames are accepted: our links never carry MAVLink 1, which
    cannot be signed and whose 8-bit ids let far more junk pass a 16-bit
    checksum (a 0xFE byte is just garbage here). Extension points for
    later policy (signing, replay): :meth:`_decode` for accepted frames, and the
    wrapped ``MAVLink`` instance (``self._mav``) for outgoing state.
    """

    def __init__(self, dialect: ModuleType | None = None, *, src_system: int = 1, src_component: int = 1):
        self._mod = dialect if dialect is not None else load_dialect()
        self._mav = self._mod.MAVLink(None, srcSystem=src_system, srcComponent=src_component)
        self._buf = bytearray()
        self.counters = CodecCounters()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget buffered partial input (e.g. after a reconnect); it counts as dropped."""
        self.counters.bytes_dropped += len(self._buf)
        self._buf.clear()

    def encode(self, msg) -> bytes:
        """Frame ``msg`` with this link's system/component ids and next sequence number."""
        data = msg.pack(self._mav)
        self._mav.seq = (self._mav.seq + 1) % 256
        return data

    def feed(self, data: bytes) -> list:
        """Add received bytes; return the messages completed by them, in stream order."""
        buf = self._buf
        buf += data
        out, pos, n = [], 0, len(buf)
        while pos < n:
            start = buf.find(_STX, pos)
            if start < 0:
                start = n
            self.counters.bytes_dropped += start - pos
            pos = start
            if pos == n:
                break
            length = self._announced_length(buf, pos)
            if length is None:
                break
            if length and pos + length > n:
                later = self._later_good_frame(buf, pos + 1)
                if later < 0:
                    break  # may be a real frame still arriving
                self.counters.bytes_dropped += later - pos
                pos = later
                continue
            verdict = self._verdict(buf, pos) if length else "bad_header"
            msg = self._decode(bytearray(buf[pos:pos + length])) if verdict == "ok" else None
            if msg is not None:
                self.counters.frames_ok += 1
                out.append(msg)
                pos += length
            else:
                if verdict == "crc":
                    self.counters.crc_errors += 1
                elif verdict == "unknown":
                    self.counters.unknown_ids += 1
                self.counters.bytes_dropped += 1
                pos += 1
        del buf[:pos]
        return out

    def _decode(self, frame: bytearray):
        """Decode one checksum-verified frame, or return None (counted) to reject it."""
        try:
            return self._mav.decode(frame)
        except Exception:  # untrusted input must never reach the control loop as an exception
            self.counters.decode_errors += 1
            return None

    @staticmethod
    def _announced_length(buf: bytearray, pos: int) -> int | None:
        """Whole frame length from the header at ``pos``; None if too few bytes, 0 if impossible."""
        if len(buf) - pos < 3:
            return None
        flags = buf[pos + 2]
        if flags & ~_IFLAG_SIGNED:
            return 0
        return _HEADER_LEN + buf[pos + 1] + 2 + (_SIGNATURE_LEN if flags & _IFLAG_SIGNED else 0)

    def _verdict(self, buf: bytearray, pos: int) -> str:
        cls = self._mod.mavlink_map.get(buf[pos + 7] | buf[pos + 8] << 8 | buf[pos + 9] << 16)
        if cls is None:
            return "unknown"
        end = pos + _HEADER_LEN + buf[pos + 1]
        crc = self._mod.x25crc(bytes(buf[pos + 1:end]))
        crc.accumulate(bytes((cls.crc_extra,)))
        return "ok" if crc.crc == buf[end] | buf[end + 1] << 8 else "crc"

    def _later_good_frame(self, buf: bytearray, pos: int) -> int:
        """Start of the first complete, checksum-valid frame at or after ``pos``, else -1."""
        while (pos := buf.find(_STX, pos)) >= 0:
            length = self._announced_length(buf, pos)
            if length and pos + length <= len(buf) and self._verdict(buf, pos) == "ok":
                return pos
            pos += 1
        return -1


# ---- columnar framing ------------------------------------------------------------------------

_NUMPY_OF_STRUCT = {"B": "u1", "b": "i1", "H": "<u2", "h": "<i2", "I": "<u4", "i": "<i4",
                    "Q": "<u8", "q": "<i8", "f": "<f4", "d": "<f8", "c": "S1"}


def _crc_tables() -> tuple[np.ndarray, np.ndarray]:
    """CRC-16/MCRF4XX (MAVLink's X.25) lookup tables: one byte, and two bytes at once."""
    t8 = np.arange(256, dtype=np.uint32)
    for _ in range(8):  # reflected polynomial 0x1021
        t8 = np.where(t8 & 1, (t8 >> 1) ^ 0x8408, t8 >> 1)
    v = np.arange(65536, dtype=np.uint32)  # v = crc ^ (b0 | b1 << 8)
    first = t8[v & 0xFF]
    t16 = (first >> 8) ^ t8[((v >> 8) ^ first) & 0xFF]
    return t8.astype(np.uint16), t16.astype(np.uint16)


_CRC8, _CRC16 = _crc_tables()


def _x25_rows(data: np.ndarray) -> np.ndarray:
    """The X.25 CRC of every row of a C-contiguous (n, m) uint8 array."""
    n, m = data.shape
    crc = np.full(n, 0xFFFF, np.uint16)
    words = np.ascontiguousarray(data[:, :m - m % 2]).view("<u2").T.copy()  # one contiguous row per byte pair
    for w in words:
        crc = _CRC16[crc ^ w]
    if m % 2:
        crc = (crc >> 8) ^ _CRC8[(crc ^ data[:, -1]) & 0xFF]
    return crc


@functools.cache
def wire_dtype(cls) -> np.dtype:
    """The packed numpy layout of a message class's payload, fields in mavgen's wire order."""
    tokens = re.findall(r"(\d*)([a-zA-Z])", cls.unpacker.format.lstrip("<"))
    fields = []
    for name, (count, code) in zip(cls.ordered_fieldnames, tokens):
        if code == "s":
            fields.append((name, f"S{count}"))
        else:
            fields.append((name, _NUMPY_OF_STRUCT[code], (int(count),)) if count else (name, _NUMPY_OF_STRUCT[code]))
    dtype = np.dtype(fields)
    if dtype.itemsize != cls.unpacker.size:
        raise AssertionError(f"{cls.msgname}: numpy layout {dtype} disagrees with {cls.unpacker.format}")
    return dtype


def pack_columns(cls, columns: Mapping[str, np.ndarray], seq: np.ndarray, *,
                 src_system: int = 1, src_component: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``len(seq)`` messages of class ``cls`` as unsigned MAVLink 2 frames.

    ``columns`` maps every field name to an array (first axis = message; array
    fields take a second axis) or a scalar; values are cast as ``struct`` would
    (the caller keeps them in range). ``seq`` holds each frame's sequence
    number. Returns ``(frames, lengths)``: frame i is ``frames[i, :lengths[i]]``.
    """
    n = len(seq)
    dtype = wire_dtype(cls)
    size = dtype.itemsize
    payload = np.zeros(n, dtype)
    for name in cls.fieldnames:
        payload[name] = columns[name]
    raw = payload.view(np.uint8).reshape(n, size)
    plen = np.full(n, size)
    open_rows = np.flatnonzero(raw[:, -1] == 0)  # MAVLink 2 drops trailing zeros, keeping one byte
    for j in range(size - 1, 0, -1):
        if not open_rows.size:
            break
        plen[open_rows] = j
        open_rows = open_rows[raw[open_rows, j - 1] == 0]
    frames = np.zeros((n, 12 + size), np.uint8)
    frames[:, 0] = _STX
    frames[:, 1] = plen
    frames[:, 4] = seq
    frames[:, 5] = src_system
    frames[:, 6] = src_component
    frames[:, 7:10] = np.frombuffer(cls.id.to_bytes(3, "little"), np.uint8)
    frames[:, 10:10 + size] = raw
    crc = np.empty(n, np.uint16)
    for length in np.unique(plen):  # rows of one payload length share one unmasked pass
        sel = np.flatnonzero(plen == length)
        covered = np.empty((len(sel), 10 + length), np.uint8)  # header after STX, payload, crc_extra
        covered[:, :-1] = frames[sel, 1:10 + length]
        covered[:, -1] = cls.crc_extra
        crc[sel] = _x25_rows(covered)
    rows = np.arange(n)
    frames[rows, 10 + plen] = crc & 0xFF  # overwrites truncated zeros only
    frames[rows, 11 + plen] = crc >> 8
    return frames, 12 + plen
