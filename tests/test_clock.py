"""The wall and paced clocks: never wake before the target, report lateness, clean up on cancel.

No timed assertions: each wake is checked against a deadline computed here
from ``time.monotonic_ns()`` readings taken around ``start``, never against a
bound on how late it is.
"""
import asyncio
import os
import time

import pytest

import twin.clock as clock_module
from twin.clock import PacedClock, VirtualClock, WallClock, make_clock

MS = 1_000_000


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wakes(clock, targets_ns):
    """Start the clock, wait for each target; (anchor_lo, anchor_hi, [(target, woke_at, late)])."""
    lo = time.monotonic_ns()
    clock.start(0)
    hi = time.monotonic_ns()
    out = []
    for t in targets_ns:
        late = await clock.wait_until(t)
        out.append((t, time.monotonic_ns(), late))
    return lo, hi, out


# Targets off the millisecond grid too: stock asyncio rounds a timeout to whole
# milliseconds, and a clock that rounded to nearest instead would wake early there.
TARGETS = [k * 10 * MS for k in range(1, 31)] + [301 * MS + k * 3_333_333 for k in range(30)]


@pytest.mark.parametrize("timerfd", [True, False], ids=["timerfd", "fallback"])
@pytest.mark.parametrize("make", [WallClock, lambda: PacedClock(4.0)], ids=["wall", "paced-x4"])
def test_every_wake_is_at_or_after_its_target_never_early(make, timerfd, monkeypatch):
    if not timerfd:
        monkeypatch.setattr(clock_module, "_LIBC", None)
    clock = make()
    lo, hi, out = asyncio.run(wakes(clock, TARGETS))
    speed = clock.speed
    for t, woke, late in out:
        # The clock was anchored at some instant in [lo, hi]: waking before lo + t / speed is early for sure.
        assert woke - lo >= t / speed, (t, woke - lo)
        assert late >= 0
    assert clock.now_ns() == TARGETS[-1]


def test_a_target_already_past_returns_at_once_with_its_lateness():
    async def main():
        clock = WallClock()
        clock.start(0)
        await asyncio.sleep(0.02)
        return await clock.wait_until(5 * MS)
    late = asyncio.run(main())
    assert late >= 15 * MS  # slept at least 20 ms for a target at 5 ms


def test_lateness_is_what_the_caller_sees():
    async def main():
        clock = WallClock()
        lo = time.monotonic_ns()
        clock.start(0)
        late = await clock.wait_until(7 * MS)
        woke = time.monotonic_ns()
        return late, woke - lo - 7 * MS
    late, upper = asyncio.run(main())
    assert 0 <= late <= upper  # measured before the return, from an anchor at or after lo


def test_a_cancelled_wait_leaves_no_reader_and_no_fd_and_the_clock_still_works():
    fds = fd_count()

    async def main():
        clock = WallClock()
        clock.start(0)
        task = asyncio.create_task(clock.wait_until(10_000 * MS))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        lo = time.monotonic_ns()
        clock.start(0)
        await clock.wait_until(3 * MS)
        assert time.monotonic_ns() - lo >= 3 * MS
        clock.close()
        clock.close()  # idempotent

    asyncio.run(main())
    assert fd_count() == fds


def test_two_waiters_on_one_clock_both_wake_in_order_never_early():
    async def main():
        clock = WallClock()
        lo = time.monotonic_ns()
        clock.start(0)
        woke = {}

        async def wait(t):
            await clock.wait_until(t)
            woke[t] = time.monotonic_ns()
        await asyncio.gather(wait(12 * MS), wait(6 * MS))
        clock.close()
        return lo, woke
    lo, woke = asyncio.run(main())
    assert woke[6 * MS] - lo >= 6 * MS and woke[12 * MS] - lo >= 12 * MS
    assert woke[6 * MS] < woke[12 * MS]


def test_virtual_clock_unchanged_and_make_clock_picks_the_kind():
    assert isinstance(make_clock(None), VirtualClock)
    assert isinstance(make_clock(None, realtime=True), WallClock)
    assert isinstance(make_clock(2.0), PacedClock) and make_clock(2.0).speed == 2.0
    with pytest.raises(ValueError):
        PacedClock(0)
