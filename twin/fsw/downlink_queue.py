"""Store-and-forward downlink queue with priorities and a finite buffer.

Three classes, sent in this order: FDIR events (0), housekeeping (1), compute
results (2). Within a class data leaves oldest first. When new data does not
fit, room is made by dropping the oldest data of the lowest-priority class that
is not more important than the new data; if that is not enough, the new data
that does not fit is dropped. Byte counts are integers, so the books balance
exactly: ``generated == downlinked + dropped + queued``, per class and in total.

Data is kept in chunks of ``(time of first byte, bytes)``; data arriving within
``chunk_s`` of a chunk's start joins it, which bounds the bookkeeping and makes
the age of the oldest byte exact to ``chunk_s``.
"""
from __future__ import annotations

from collections import deque

__all__ = ["DownlinkQueue", "EVENTS", "HOUSEKEEPING", "COMPUTE", "PRIORITY_NAMES"]

EVENTS, HOUSEKEEPING, COMPUTE = 0, 1, 2
PRIORITY_NAMES = ("events", "housekeeping", "compute")
_UNKNOWN = object()


class DownlinkQueue:
    """Per-class FIFO of byte chunks; see the module docstring.

    Counters are ints: per class (``generated``, ``downlinked``, ``dropped``,
    ``queued``, lists indexed by priority) and in total (``total_*``).
    """

    def __init__(self, capacity_bytes: int, chunk_s: float = 10.0):
        self.capacity = int(capacity_bytes)
        self.chunk_s = chunk_s
        n = len(PRIORITY_NAMES)
        self._chunks: list[deque[list]] = [deque() for _ in range(n)]
        self.queued = [0] * n
        self.generated = [0] * n
        self.downlinked = [0] * n
        self.dropped = [0] * n
        self.total_queued = self.total_generated = self.total_downlinked = self.total_dropped = 0
        # Start time of the oldest chunk (None: empty, _UNKNOWN: to look up); only a new or a removed
        # head chunk changes it, so it is not searched for every tick.
        self._oldest_t = None

    def put(self, prio: int, nbytes: int, t_s: float) -> int:
        """Queue ``nbytes`` of class ``prio`` generated at ``t_s``; returns the bytes dropped to make room."""
        if nbytes <= 0:
            return 0
        self.generated[prio] += nbytes
        self.total_generated += nbytes
        excess = self.total_queued + nbytes - self.capacity
        dropped = 0
        if excess > 0:
            dropped, nbytes = self._make_room(prio, nbytes, excess)
            if not nbytes:
                return dropped
        chunks = self._chunks[prio]
        if not chunks:
            chunks.append([t_s, nbytes])
            self._oldest_t = _UNKNOWN
        else:
            last = chunks[-1]
            if t_s - last[0] < self.chunk_s:
                last[1] += nbytes
            else:
                chunks.append([t_s, nbytes])
        self.queued[prio] += nbytes
        self.total_queued += nbytes
        return dropped

    def _make_room(self, prio: int, nbytes: int, excess: int) -> tuple[int, int]:
        """Evict less important (then equal) data, oldest first; (bytes dropped, new bytes that still fit)."""
        dropped = 0
        for victim in range(len(self._chunks) - 1, prio - 1, -1):
            freed = self._evict(victim, excess)
            dropped += freed
            excess -= freed
            if excess <= 0:
                break
        if excess > 0:
            lost = min(nbytes, excess)
            self.dropped[prio] += lost
            self.total_dropped += lost
            dropped += lost
            nbytes -= lost
        return dropped, nbytes

    def _evict(self, prio: int, nbytes: int) -> int:
        chunks = self._chunks[prio]
        freed = 0
        while chunks and freed < nbytes:
            head, want = chunks[0], nbytes - freed
            take = want if want < head[1] else head[1]  # min(), written out (see twin.fsw.base)
            head[1] -= take
            freed += take
            if head[1] == 0:
                chunks.popleft()
                self._oldest_t = _UNKNOWN
        self.queued[prio] -= freed
        self.dropped[prio] += freed
        self.total_queued -= freed
        self.total_dropped += freed
        return freed

    def send(self, nbytes: int) -> int:
        """Downlink up to ``nbytes``, most important first; returns the bytes sent."""
        budget = nbytes
        for prio, chunks in enumerate(self._chunks):
            while chunks and budget > 0:
                head = chunks[0]
                take = budget if budget < head[1] else head[1]  # min(), written out
                head[1] -= take
                budget -= take
                self.queued[prio] -= take
                self.downlinked[prio] += take
                if head[1] == 0:
                    chunks.popleft()
                    self._oldest_t = _UNKNOWN
            if budget <= 0:
                break
        sent = nbytes - budget
        self.total_queued -= sent
        self.total_downlinked += sent
        return sent

    def oldest_age_s(self, t_s: float) -> float:
        """Age of the oldest byte waiting (0 when empty)."""
        oldest = self._oldest_t
        if oldest is _UNKNOWN:
            oldest = None
            for chunks in self._chunks:
                if chunks and (oldest is None or chunks[0][0] < oldest):
                    oldest = chunks[0][0]
            self._oldest_t = oldest
        return t_s - oldest if oldest is not None and oldest < t_s else 0.0
