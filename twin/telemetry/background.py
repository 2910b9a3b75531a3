"""Run a telemetry sink on a writer thread, so file I/O never blocks the control loop.

``BackgroundSink(CsvSink(...))`` takes chunks on the executive's tick and
writes them on its own thread, in order. A writer error is raised on the next
``write_chunk`` or on ``close`` (the recorder then counts it and disables the
sink, as for any failing sink). ``close`` drains the queue and joins the
thread, so after it the file is complete.
"""
from __future__ import annotations

import queue
import threading

import numpy as np

__all__ = ["BackgroundSink"]

_STOP = object()


class BackgroundSink:
    def __init__(self, sink, max_pending: int = 8):
        self.sink = sink
        self._q: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"sink-{type(sink).__name__}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue
            try:
                self.sink.write_chunk(item)
            except BaseException as exc:  # kept and re-raised on the caller's thread
                self._error = exc

    def _raise_pending(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc

    def write_chunk(self, rows: np.ndarray) -> None:
        """Queue a chunk (blocks only when ``max_pending`` chunks are already waiting)."""
        self._raise_pending()
        if self._closed:
            raise RuntimeError("sink is closed")
        self._q.put(rows)

    def close(self) -> None:
        """Write what is queued, stop the thread, close the sink (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._q.put(_STOP)
        self._thread.join()
        try:
            self._raise_pending()
        finally:
            self.sink.close()
