"""The background sink writes every chunk in order off the caller's thread and reports writer errors."""
import threading

import numpy as np
import pytest

from twin.telemetry.background import BackgroundSink


class SlowListSink:
    def __init__(self, fail_on=None):
        self.chunks, self.threads, self.closed, self.fail_on = [], set(), False, fail_on
        self.gate = threading.Event()

    def write_chunk(self, rows):
        self.gate.wait(5)
        self.threads.add(threading.get_ident())
        if self.fail_on is not None and int(rows[0]) == self.fail_on:
            raise OSError("disk full")
        self.chunks.append(rows)

    def close(self):
        self.closed = True


def test_chunks_written_in_order_on_another_thread_and_close_drains():
    inner = SlowListSink()
    sink = BackgroundSink(inner)
    for k in range(5):
        sink.write_chunk(np.array([k]))  # returns at once although the writer is blocked
    assert inner.chunks == []
    inner.gate.set()
    sink.close()
    assert [int(c[0]) for c in inner.chunks] == [0, 1, 2, 3, 4]
    assert threading.get_ident() not in inner.threads and inner.closed
    sink.close()  # idempotent


def test_writer_error_is_raised_to_the_caller_and_sink_still_closes():
    inner = SlowListSink(fail_on=1)
    inner.gate.set()
    sink = BackgroundSink(inner)
    sink.write_chunk(np.array([0]))
    sink.write_chunk(np.array([1]))
    with pytest.raises(OSError, match="disk full"):
        sink.close()
    assert inner.closed and [int(c[0]) for c in inner.chunks] == [0]
