"""A rate-limited, delaying work queue with client-go's guarantees.

- A key is in the queue at most once (`dirty`), and never handed to two workers at once
  (`processing`): an `add` while the key is being processed is remembered and the key comes
  back after `done`.
- `add_after` keeps the earliest ready time of a key.
- `add_rate_limited` delays by the worse of a per-key exponential backoff (5 ms doubling up to
  1000 s, reset by `forget`) and a global token bucket (10 per second, burst 100).
- `shutdown(drain=True)` stops accepting keys and waits until the queued ones are processed.

Time comes from a `clock` callable (monotonic seconds) so that tests control it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from reconciler.runtime import metrics

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class ShutDown(Exception):
    """The queue was shut down: there are no more keys to process."""


class ExponentialBackoff(Generic[K]):
    """Per-key delay `base * 2**failures`, capped; `forget` resets a key."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        """The delay for the key's next retry; counts one more failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Compare exponents rather than computing 2**failures: it overflows floats after ~1000.
        if failures >= 64 or self.base * 2**failures > self.cap:
            return self.cap
        return float(self.base * 2**failures)

    def retries(self, key: K) -> int:
        """How many times the key failed since it was last forgotten."""
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """Reset the key's failure count."""
        self._failures.pop(key, None)


class TokenBucket:
    """A token bucket (`rate` per second, `burst` deep); each reservation takes one token.

    A reservation never fails: when the bucket is empty it returns how long to wait for its
    token, as golang.org/x/time/rate's Reserve does.
    """

    def __init__(self, rate: float = 10.0, burst: int = 100, *, clock: Clock = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self) -> float:
        """Take a token; return the seconds until it is actually available (0 if now)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1
        return max(0.0, -self._tokens / self.rate)


class RateLimiter(Generic[K]):
    """controller-runtime's default: the worse of per-key backoff and the global bucket."""

    def __init__(
        self,
        backoff: ExponentialBackoff[K] | None = None,
        bucket: TokenBucket | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self.bucket = bucket or TokenBucket(clock=clock)

    def when(self, key: K) -> float:
        """The delay before the key may be retried."""
        return max(self.backoff.when(key), self.bucket.reserve())

    def retries(self, key: K) -> int:
        """How many times the key was rate limited since it was last forgotten."""
        return self.backoff.retries(key)

    def forget(self, key: K) -> None:
        """Stop tracking the key's failures."""
        self.backoff.forget(key)


class WorkQueue(Generic[K]):
    """Deduplicating FIFO of keys with delays and rate limiting; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        rate_limiter: RateLimiter[K] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        self._limiter: RateLimiter[K] = rate_limiter or RateLimiter(clock=clock)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: dict[K, float] = {}  # key -> when its processing started
        self._added_at: dict[K, float] = {}
        # Delayed keys: a heap of (ready time, sequence, key); `_ready_at` holds each key's
        # current (earliest) time, so superseded heap entries are skipped when popped.
        self._waiting: list[tuple[float, int, K]] = []
        self._ready_at: dict[K, float] = {}
        self._sequence = itertools.count()
        self._shutting_down = False
        self._draining = False
        self._changed = asyncio.Event()
        labels = (name, name)
        self._m_depth = metrics.workqueue_depth.labels(*labels)
        self._m_adds = metrics.workqueue_adds_total.labels(*labels)
        self._m_retries = metrics.workqueue_retries_total.labels(*labels)
        self._m_queued = metrics.workqueue_queue_duration_seconds.labels(*labels)
        self._m_work = metrics.workqueue_work_duration_seconds.labels(*labels)
        metrics.workqueue_unfinished_work_seconds.labels(*labels).set_function(self._unfinished)
        metrics.workqueue_longest_running_processor_seconds.labels(*labels).set_function(
            self._longest_running
        )

    def __len__(self) -> int:
        """Keys ready to be processed now (delayed keys that are due included)."""
        self._promote()
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        """Whether `shutdown` was called."""
        return self._shutting_down

    def add(self, key: K) -> None:
        """Queue `key` unless it is queued already; if it is being processed, queue it after."""
        if self._shutting_down or key in self._dirty:
            return
        self._m_adds.inc()
        self._dirty.add(key)
        self._added_at.setdefault(key, self._clock())
        if key in self._processing:
            return
        self._queue.append(key)
        self._m_depth.set(len(self._queue))
        self._changed.set()

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds; an earlier pending time for the key wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock() + delay
        current = self._ready_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._ready_at[key] = ready_at
        heapq.heappush(self._waiting, (ready_at, next(self._sequence), key))
        self._changed.set()

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` after its rate-limited delay (a retry after a failure)."""
        self._m_retries.inc()
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset the key's backoff (after a success)."""
        self._limiter.forget(key)

    def retries(self, key: K) -> int:
        """How many rate-limited retries the key had since it was last forgotten."""
        return self._limiter.retries(key)

    def try_get(self) -> K | None:
        """The next ready key, now marked as processing, or None if no key is ready."""
        self._promote()
        if not self._queue:
            return None
        key = self._queue.popleft()
        self._m_depth.set(len(self._queue))
        now = self._clock()
        self._m_queued.observe(now - self._added_at.pop(key, now))
        self._dirty.discard(key)
        self._processing[key] = now
        return key

    async def get(self) -> K:
        """Wait for the next ready key; raises `ShutDown` when the queue is shut down (and,
        when draining, empty)."""
        while True:
            if self._shutting_down and not self._draining:
                raise ShutDown
            key = self.try_get()
            if key is not None:
                return key
            if self._shutting_down:
                raise ShutDown
            self._changed.clear()
            timeout = self._ready_at_next() - self._clock() if self._waiting else None
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def done(self, key: K) -> None:
        """Mark the key's processing finished; re-queue it if it was added meanwhile."""
        started = self._processing.pop(key, None)
        if started is not None:
            self._m_work.observe(self._clock() - started)
        if key in self._dirty:
            self._queue.append(key)
            self._m_depth.set(len(self._queue))
        self._changed.set()

    async def shutdown(self, *, drain: bool = True) -> None:
        """Stop accepting keys; with `drain`, wait until every queued key was processed.

        Delayed keys that are not due yet are dropped, as client-go drops them.
        """
        self._shutting_down = True
        self._draining = drain
        self._waiting.clear()
        self._ready_at.clear()
        self._changed.set()
        while drain and (self._queue or self._processing):
            self._changed.clear()
            await self._changed.wait()

    def _promote(self) -> None:
        now = self._clock()
        while self._waiting and self._waiting[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._waiting)
            if self._ready_at.get(key) == ready_at:
                del self._ready_at[key]
                self.add(key)

    def _ready_at_next(self) -> float:
        return self._waiting[0][0]

    def _unfinished(self) -> float:
        now = self._clock()
        return sum(now - started for started in self._processing.values())

    def _longest_running(self) -> float:
        now = self._clock()
        return max((now - started for started in self._processing.values()), default=0.0)
