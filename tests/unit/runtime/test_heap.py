"""The garbage-collection policy: survivors frozen, frozen cycles still collected per interval."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from collections.abc import AsyncIterator, Callable

from reconciler.runtime import heap


class Node:
    """A weak-referenceable object that can sit in a reference cycle."""

    other: Node | None = None


@contextlib.asynccontextmanager
async def policy(full_scan_interval: float) -> AsyncIterator[None]:
    callbacks = len(gc.callbacks)
    task = asyncio.create_task(heap.keep_frozen(full_scan_interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert len(gc.callbacks) == callbacks


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (the collector's state announces nothing)
            await asyncio.sleep(0.01)


def in_collected_generations(obj: object) -> bool:
    return any(o is obj for generation in range(3) for o in gc.get_objects(generation))


async def test_survivors_of_a_full_collection_leave_the_collected_generations() -> None:
    survivor = [Node()]
    async with policy(full_scan_interval=3600):
        await until(lambda: gc.get_freeze_count() > 0)
        assert not in_collected_generations(survivor)
    assert gc.get_freeze_count() == 0
    assert in_collected_generations(survivor)


async def test_a_frozen_cycle_that_becomes_garbage_is_collected_at_the_next_full_scan() -> None:
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    async with policy(full_scan_interval=0.2):
        await until(lambda: not in_collected_generations(gone()))
        del first, second
        gc.collect()
        # Frozen, so an ordinary collection does not see the cycle ...
        assert gone() is not None
        # ... but the periodic thaw does.
        await until(lambda: gone() is None)
