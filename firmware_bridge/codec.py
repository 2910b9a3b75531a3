"""The MAVLink codec: bytes in, messages out, and back. No I/O.

:class:`MavlinkCodec` frames the byte stream itself: pymavlink's
``parse_buffer`` swallows a whole announced length when a header is corrupt,
taking the good frames behind it along. Here a rejected candidate costs one
byte (the scan restarts right after its start marker); a candidate still
waiting for its announced bytes does not hold back a complete, checksum-valid
frame behind it (a stray 0xFD must not stall a lockstep link), and is
discarded after ``interframe_timeout_s`` of silence.

A complete MAVLink 2 candidate is checked in this order: message id known
(``unknown_ids``; nothing else is looked at, not even the checksum), checksum
(``crc_errors``), then under a :class:`~firmware_bridge.signing.SigningPolicy`
the signature (``bad_signature``) and only then the timestamp against the
shared :class:`~firmware_bridge.signing.ReplayTable` (``replays``); an
unsigned frame passes only if it is telemetry and the rig accepts unsigned
telemetry (else ``unsigned_rejected``). Accepted frames become the objects
pymavlink's ``MAVLink.decode`` builds (:func:`~firmware_bridge.frames.decoder_for`),
``get_signed()`` true only for a verified signature. Frames lost anywhere below
the codec (a UART overrun, a link that went down) show as gaps in each
sender's sequence numbers, counted in ``seq_lost`` (a forward jump of less
than 128, modulo 256: a longer gap is undercounted, and a sender that
restarts its numbering may show as one); a frame numbered behind the newest
(up to 128 back) arrived late: counted in ``reordered``, and it takes back
one frame of ``seq_lost`` (the gap it left). On a signed link a late frame
is older than its stream's newest timestamp: rejected as a replay
(``replays``), never reordered. ``frames_out`` counts what ``encode`` made.
MAVLink 1 frames cannot be signed and our links never carry them: dropped and counted
(``mavlink1_dropped``). :func:`pack_columns` and :func:`wire_dtype` live in
:mod:`.columns`.
"""
from __future__ import annotations

import logging
import re
import struct
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from fastcrc.crc16 import mcrf4xx

from .columns import pack_columns, wire_dtype
from .dialect import load_dialect
from .errors import BridgeInitError
from .frames import (
    HEADER,
    IFLAG_SIGNED,
    STX,
    STX1,
    MessageTable,
    crc_ok,
    frame_length,
    later_good_frame,
)
from .signing import SigningPolicy

__all__ = ["CodecCounters", "MavlinkCodec", "pack_columns", "wire_dtype"]

logger = logging.getLogger(__name__)

_MARKERS = re.compile(b"[\xfd\xfe]")
_HEADER_OUT = struct.Struct("<BBBBBBBHB")
_CRC = struct.Struct("<H")


def _payload_only(mav, crc_extra, payload, force_mavlink1=False):
    return payload


@dataclass
class CodecCounters:
    """What a codec has seen. Every byte fed ends up in an accepted frame, ``bytes_dropped`` or pending.

    Error counts are per rejected candidate: a stray 0xFD inside garbage counts
    as well, so they measure link noise rather than lost frames. The signing
    counts (``signed_ok`` .. ``replays``) move only under a signing policy.
    """

    frames_ok: int = 0
    crc_errors: int = 0          # known message id, checksum wrong
    unknown_ids: int = 0         # message id not in the dialect (checksum cannot be checked)
    decode_errors: int = 0       # checksum right but the payload would not decode
    bytes_dropped: int = 0
    signed_ok: int = 0           # signature good and timestamp fresh
    unsigned: int = 0            # unsigned telemetry accepted (policy "accept")
    unsigned_rejected: int = 0   # unsigned command-class frame, or unsigned telemetry under "reject"
    bad_signature: int = 0
    replays: int = 0             # timestamp not newer than its stream's last, or a new stream out of window
    mavlink1_dropped: int = 0
    stale_partials: int = 0      # partial frames discarded after the inter-frame timeout
    internal_errors: int = 0     # exceptions caught in feed: a bug, never the input's fault
    seq_lost: int = 0            # frames the sender numbered but we never accepted (gaps in its sequence, mod 256)
    reordered: int = 0           # accepted frames numbered behind the newest one (arrived late)
    frames_out: int = 0          # frames encoded


class MavlinkCodec:
    """A MAVLink 2 codec for one link: ``feed`` parses, ``encode`` frames; neither does I/O.

    ``signing``: None (accept every well-formed frame, send unsigned) or a
    :class:`~firmware_bridge.signing.SigningPolicy`. ``link_id`` goes into
    every signature this codec makes. ``interframe_timeout_s``: after this much
    silence (on ``clock``, monotonic seconds) a partial frame is discarded.
    ``feed`` never raises: bad bytes are dropped and counted in :attr:`counters`.
    """

    def __init__(self, dialect: ModuleType | None = None, *, src_system: int = 1, src_component: int = 1,
                 signing: SigningPolicy | None = None, link_id: int = 0, interframe_timeout_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        self._mod = dialect if dialect is not None else load_dialect()
        self._mav = self._mod.MAVLink(None, srcSystem=src_system, srcComponent=src_component)
        self._table = MessageTable(self._mod)
        if not 0 <= link_id <= 255:
            raise BridgeInitError(f"link_id {link_id} is not a byte")
        self.signing, self.link_id = signing, link_id
        self._command_ids: frozenset[int] = frozenset()
        if signing is not None:
            ids = {cls.msgname: mid for mid, cls in self._mod.mavlink_map.items()}
            unknown = sorted(set(signing.command_messages) - set(ids))
            if unknown:
                raise BridgeInitError(f"command messages not in the dialect: {', '.join(unknown)}")
            self._command_ids = frozenset(ids[name] for name in signing.command_messages)
        self._timeout, self._clock = interframe_timeout_s, clock
        self._buf = bytearray()
        self._last_rx = clock()
        self._seqs: dict[int, int] = {}  # (sysid << 8 | compid) -> last sequence number accepted
        self.counters = CodecCounters()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget buffered partial input (e.g. after a reconnect); it counts as dropped."""
        self.counters.bytes_dropped += len(self._buf)
        self._buf.clear()

    def flush_stale(self, now_monotonic: float | None = None) -> int:
        """Discard a partial frame if nothing arrived for the inter-frame timeout; returns the bytes discarded.

        Call it when a read times out; :meth:`feed` applies the same rule to
        what it already holds when new bytes come in.
        """
        now = self._clock() if now_monotonic is None else now_monotonic
        if not self._buf or now - self._last_rx < self._timeout:
            return 0
        self.counters.stale_partials += 1
        n = len(self._buf)
        self.reset()
        return n

    def encode(self, msg) -> bytes:
        """Frame ``msg`` with this link's ids and next sequence number; signed under a policy.

        The bytes are those pymavlink's ``pack`` (and its signing) would give;
        only the payload comes from the generated ``pack``, the framing,
        checksum and signature are done here in one pass.
        """
        mav, policy = self._mav, self.signing
        msg._pack = _payload_only  # the generated pack() hands its struct-packed payload to _pack
        try:
            payload = msg.pack(mav)
        finally:
            del msg._pack
        payload = payload.rstrip(b"\0") or payload[:1]  # MAVLink 2 drops trailing zeros
        mid, flags, seq = msg.id, IFLAG_SIGNED if policy is not None else 0, mav.seq
        header = _HEADER_OUT.pack(STX, len(payload), flags, 0, seq, mav.srcSystem, mav.srcComponent,
                                  mid & 0xFFFF, mid >> 16)
        crc = mcrf4xx(bytes((msg.crc_extra,)), mcrf4xx(header[1:] + payload))
        data = header + payload + _CRC.pack(crc)
        if policy is not None:
            data += bytes((self.link_id,)) + policy.clock.next().to_bytes(6, "little")
            data += policy.signature(data)
        mav.seq = (seq + 1) % 256
        self.counters.frames_out += 1
        msg._header = self._mod.MAVLink_header(mid, flags, 0, len(payload), seq, mav.srcSystem, mav.srcComponent)
        msg._payload, msg._msgbuf, msg._crc = payload, bytearray(data), crc
        return data

    def feed(self, data: bytes) -> list:
        """Add received bytes; return the messages completed by them, in stream order."""
        out: list = []
        try:
            self._feed(data, out)
        except Exception:  # a bug must not reach the control loop; what was parsed is kept
            self.counters.internal_errors += 1
            if self.counters.internal_errors == 1:
                logger.exception("codec failure; buffered bytes dropped")
            self.reset()
        return out

    def _feed(self, data: bytes, out: list) -> None:
        c, buf = self.counters, self._buf
        now = self._clock()
        stale_end = len(buf) if buf and now - self._last_rx >= self._timeout else 0
        if data:
            self._last_rx = now
            buf += data
        n, pos, flushed = len(buf), 0, False
        with memoryview(buf) as mv:
            while pos < n:
                marker = buf[pos]
                if marker != STX and marker != STX1:
                    found = _MARKERS.search(buf, pos)
                    start = found.start() if found else n
                    c.bytes_dropped += start - pos
                    pos = start
                    continue
                length = frame_length(buf, pos)
                if length is None or pos + length > n:
                    if pos < stale_end:  # the start of a frame whose rest never came
                        if not flushed:
                            c.stale_partials += 1
                            flushed = True
                        c.bytes_dropped += 1
                        pos += 1
                        continue
                    later = later_good_frame(mv, pos + 1, self._table) if length is not None else -1
                    if later < 0:
                        break  # may be a real frame still arriving
                    c.bytes_dropped += later - pos
                    pos = later
                    continue
                if marker == STX1:
                    entry = self._table.lookup(buf[pos + 5])
                    if entry is not None and crc_ok(mv, pos, entry[0], 6):
                        c.mavlink1_dropped += 1
                        c.bytes_dropped += length
                        pos += length
                    else:
                        c.bytes_dropped += 1
                        pos += 1
                    continue
                msg = self._accept(buf, mv, pos, length) if length else None
                if msg is None:
                    c.bytes_dropped += 1
                    pos += 1
                else:
                    c.frames_ok += 1
                    out.append(msg)
                    pos += length
        del buf[:pos]

    def _accept(self, buf: bytearray, mv: memoryview, pos: int, length: int):
        """The message of the complete MAVLink 2 candidate at ``pos``, or None (counted) to reject it."""
        c, policy, stop = self.counters, self.signing, pos + length
        mlen, flags, cflags, seq, sysid, compid, mid_lo, mid_hi = HEADER.unpack_from(buf, pos)
        mid = mid_lo | mid_hi << 16
        entry = self._table.lookup(mid)
        if entry is None:
            c.unknown_ids += 1
            return None
        extra, decode = entry
        end = pos + 10 + mlen
        crc = mcrf4xx(extra, mcrf4xx(mv[pos + 1:end]))
        if crc != buf[end] | buf[end + 1] << 8:
            c.crc_errors += 1
            return None
        verified = False
        if policy is not None:
            if flags & IFLAG_SIGNED:
                if policy.signature(mv[pos:stop - 6]) != mv[stop - 6:stop]:
                    c.bad_signature += 1
                    return None
                if not policy.replay.accept((buf[stop - 13], sysid, compid),
                                            int.from_bytes(mv[stop - 12:stop - 6], "little")):
                    c.replays += 1
                    return None
                c.signed_ok += 1
                verified = True
            elif mid in self._command_ids or policy.unsigned_telemetry != "accept":
                c.unsigned_rejected += 1
                return None
            else:
                c.unsigned += 1
        try:
            msg = decode(buf[pos:stop], mlen, flags, cflags, seq, sysid, compid, crc, verified)
        except Exception:  # untrusted input must never reach the control loop as an exception
            c.decode_errors += 1
            return None
        sender = sysid << 8 | compid
        last = self._seqs.get(sender)
        if last is not None and seq != (last + 1) & 0xFF and seq != last:  # seq == last: a repeat, not a gap
            ahead = (seq - last) & 0xFF
            if ahead < 128:
                c.seq_lost += ahead - 1
            else:  # behind the newest: late, not lost; it fills a gap counted when the newer one came
                c.reordered += 1
                c.seq_lost -= min(c.seq_lost, 1)
                return msg
        self._seqs[sender] = seq
        return msg
