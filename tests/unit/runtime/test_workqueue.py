"""The work queue's guarantees, on a fake clock: nothing here waits in real time."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.runtime.workqueue import (
    ExponentialBackoff,
    RateLimiter,
    ShutDown,
    TokenBucket,
    WorkQueue,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue("test", clock=clock)


def test_add_deduplicates_queued_keys() -> None:
    queue = _queue(FakeClock())
    for key in ("a", "b", "a", "a", "b"):
        queue.add(key)
    assert len(queue) == 2
    assert [queue.try_get(), queue.try_get(), queue.try_get()] == ["a", "b", None]


def test_add_during_processing_requeues_after_done() -> None:
    queue = _queue(FakeClock())
    queue.add("a")
    assert queue.try_get() == "a"
    queue.add("a")
    queue.add("a")
    assert queue.try_get() is None, "a key must not be handed to a second worker"
    queue.done("a")
    assert queue.try_get() == "a"
    queue.done("a")
    assert queue.try_get() is None


# Operations: add(key), get (take the oldest ready key), done(one of the keys in progress).
_operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcd")),
        st.tuples(st.just("get"), st.just("")),
        st.tuples(st.just("done"), st.integers(min_value=0, max_value=3)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_operations)
def test_no_key_is_processed_twice_at_once_and_no_add_is_lost(
    operations: list[tuple[str, str | int]],
) -> None:
    queue = _queue(FakeClock())
    processing: list[str] = []
    pending: set[str] = set()  # keys added since they were last handed out
    for operation, argument in operations:
        if operation == "add":
            queue.add(str(argument))
            pending.add(str(argument))
        elif operation == "get":
            key = queue.try_get()
            if key is not None:
                assert key not in processing
                processing.append(key)
                pending.discard(key)
        elif processing:
            key = processing.pop(int(argument) % len(processing))
            queue.done(key)
    for key in processing:
        queue.done(key)
    drained = set()
    while (key := queue.try_get()) is not None:
        assert key not in drained, "a key was queued twice"
        drained.add(key)
        queue.done(key)
    assert drained == pending


def test_add_after_orders_by_ready_time_and_the_earliest_time_wins() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.add_after("late", 10)
    queue.add_after("early", 5)
    queue.add_after("moved", 30)
    queue.add_after("moved", 1)  # earlier: replaces the 30 s
    queue.add_after("early", 20)  # later: ignored
    assert len(queue) == 0
    clock.now += 1
    assert queue.try_get() == "moved"
    clock.now += 4
    assert queue.try_get() == "early"
    assert queue.try_get() is None
    clock.now += 5
    assert queue.try_get() == "late"
    clock.now += 100
    assert queue.try_get() is None, "a superseded time must not deliver the key again"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0.001, 100)), max_size=30))
def test_delayed_keys_come_out_in_ready_time_order(delays: list[tuple[str, float]]) -> None:
    clock = FakeClock()
    queue = _queue(clock)
    earliest: dict[str, float] = {}
    for key, delay in delays:
        queue.add_after(key, delay)
        # The queue orders by the time a key becomes ready: delays that differ by less than
        # the clock's float resolution become the same time, and may come out in either order.
        at = clock.now + delay
        earliest[key] = min(at, earliest.get(key, at))
    clock.now += 1000
    order = []
    while (ready := queue.try_get()) is not None:
        order.append(ready)
    assert sorted(order) == sorted(earliest)
    assert [earliest[k] for k in order] == sorted(earliest[k] for k in order)


def test_backoff_doubles_per_failure_up_to_the_cap_and_forget_resets() -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff()
    delays = [backoff.when("a") for _ in range(22)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert all(b == min(2 * a, 1000.0) for a, b in itertools.pairwise(delays))
    assert delays[-1] == 1000.0
    assert backoff.retries("a") == 22
    assert backoff.when("b") == 0.005, "keys back off independently"
    backoff.forget("a")
    assert backoff.retries("a") == 0
    assert backoff.when("a") == 0.005


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=5000))
def test_backoff_never_exceeds_the_cap(failures: int) -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff()
    for _ in range(failures):
        backoff.when("a")
    assert 0.005 <= backoff.when("a") <= 1000.0


def test_the_global_bucket_limits_a_burst_of_distinct_keys() -> None:
    clock = FakeClock()
    limiter: RateLimiter[str] = RateLimiter(bucket=TokenBucket(clock=clock), clock=clock)
    delays = [limiter.when(f"key-{n}") for n in range(120)]
    assert all(d == 0.005 for d in delays[:100]), "the burst of 100 passes at once"
    assert delays[100] == pytest.approx(0.1)
    assert delays[119] == pytest.approx(2.0), "then 10 per second"
    clock.now += 100
    assert limiter.when("fresh") == 0.005, "the bucket refills"


def test_add_rate_limited_delays_the_key_by_its_backoff() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(
        "test", rate_limiter=RateLimiter(bucket=TokenBucket(clock=clock)), clock=clock
    )
    for _ in range(3):
        queue.add_rate_limited("a")  # 5, 10, 20 ms: the earliest (5 ms) is kept
    assert queue.retries("a") == 3
    assert queue.try_get() is None
    clock.now += 0.005
    assert queue.try_get() == "a"
    queue.done("a")
    queue.forget("a")
    assert queue.retries("a") == 0


async def test_get_waits_for_an_add() -> None:
    queue = _queue(FakeClock())
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not getter.done()
    queue.add("a")
    assert await asyncio.wait_for(getter, 5) == "a"


async def test_shutdown_with_drain_lets_workers_finish_the_queued_keys() -> None:
    queue = _queue(FakeClock())
    for key in "abc":
        queue.add(key)
    queue.add_after("later", 60)
    processed: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            await asyncio.sleep(0)  # processing yields to the event loop
            processed.append(key)
            queue.done(key)

    first = await queue.get()  # in progress while the shutdown starts
    drained = asyncio.create_task(queue.shutdown(drain=True))
    await asyncio.sleep(0)
    queue.add("refused")
    assert not drained.done(), "the drain waits for the key in progress"
    queue.done(first)
    await asyncio.wait_for(asyncio.gather(worker(), drained), 5)
    assert [first, *processed] == ["a", "b", "c"]
    with pytest.raises(ShutDown):
        await queue.get()


async def test_shutdown_without_drain_stops_getters_at_once() -> None:
    queue = _queue(FakeClock())
    queue.add("a")
    await asyncio.wait_for(queue.shutdown(drain=False), 5)
    with pytest.raises(ShutDown):
        await queue.get()
