"""Downlink queue: priorities, overflow drops compute results first, the books balance."""
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.fsw.downlink_queue import COMPUTE, EVENTS, HOUSEKEEPING, DownlinkQueue


def balanced(q):
    return all(g == d + x + k for g, d, x, k in zip(q.generated, q.downlinked, q.dropped, q.queued)) and \
        q.total_queued == sum(q.queued) <= q.capacity


def test_sends_events_then_housekeeping_then_compute_oldest_first():
    q = DownlinkQueue(10_000, chunk_s=0.0)
    q.put(COMPUTE, 300, 0.0)
    q.put(HOUSEKEEPING, 200, 1.0)
    q.put(COMPUTE, 100, 2.0)
    q.put(EVENTS, 50, 3.0)
    assert q.send(120) == 120
    assert q.downlinked == [50, 70, 0]
    assert q.send(430) == 430
    assert q.downlinked == [50, 200, 300] and q.queued == [0, 0, 100]
    assert q.oldest_age_s(10.0) == 8.0                       # the compute chunk from t = 2 is left
    assert q.send(1000) == 100 and q.total_queued == 0 and q.oldest_age_s(10.0) == 0.0
    assert balanced(q)


def test_overflow_drops_compute_results_first_then_the_new_data_that_does_not_fit():
    q = DownlinkQueue(1000, chunk_s=0.0)
    q.put(COMPUTE, 600, 0.0)
    q.put(HOUSEKEEPING, 300, 1.0)
    assert q.put(EVENTS, 250, 2.0) == 150                    # room made from the oldest compute bytes
    assert q.queued == [250, 300, 450] and q.dropped == [0, 0, 150]
    assert q.put(HOUSEKEEPING, 500, 3.0) == 500              # evicts the remaining 450 compute, then 50 housekeeping
    assert q.queued == [250, 750, 0] and q.dropped == [0, 50, 600]
    assert q.put(COMPUTE, 100, 4.0) == 100                   # nothing less important to evict: the new data goes
    assert q.queued == [250, 750, 0] and q.dropped == [0, 50, 700]
    assert q.put(EVENTS, 800, 5.0) == 800                    # events evict housekeeping, never each other first
    assert q.queued == [1000, 0, 0] and q.dropped == [50, 800, 700]
    assert balanced(q) and q.total_generated == q.total_downlinked + q.total_dropped + q.total_queued


def test_chunks_merge_within_chunk_s_and_age_is_from_the_first_byte():
    q = DownlinkQueue(10_000, chunk_s=10.0)
    for t in range(25):
        q.put(HOUSEKEEPING, 10, float(t))
    assert len(q._chunks[HOUSEKEEPING]) == 3
    assert q.oldest_age_s(30.0) == 30.0
    q.send(100)                                              # the first chunk (t = 0..9) leaves
    assert q.oldest_age_s(30.0) == 20.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "send"]), st.integers(0, 2), st.integers(0, 700)), max_size=60),
       st.integers(1, 2000))
def test_books_always_balance(ops, capacity):
    q = DownlinkQueue(capacity, chunk_s=5.0)
    for t, (op, prio, n) in enumerate(ops):
        if op == "put":
            q.put(prio, n, float(t))
        else:
            assert q.send(n) <= n
        assert balanced(q)
        heads = [chunks[0][0] for chunks in q._chunks if chunks]
        assert q.oldest_age_s(float(t)) == (t - min(heads) if heads else 0.0) >= 0.0
