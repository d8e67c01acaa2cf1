"""Keep CPython's cyclic garbage collector off the informer cache.

A full (generation 2) collection walks every container object of the process. An operator's
cache is millions of dicts and lists (every cached object's JSON tree) that live as long as the
object and are freed by reference counting, never by the cyclic collector: at 1000 clusters a
full collection walks them for 0.3-0.6 s while nothing else runs, and it recurs every 20-40 s
while the cache grows, so it shows up directly as reaction latency (measured in `bench/`).

`keep_frozen` moves whatever survives a full collection into the permanent generation
(`gc.freeze`), where later collections do not look. Reference counting still frees frozen
objects, so a replaced cache entry goes at once. What freezing gives up is finding cycles among
objects that were alive at a freeze and became garbage since (a closed connection's protocol and
transport, say): every `full_scan_interval` the permanent generation is thawed and collected
once, so such garbage lives at most that long and one pause is paid per interval instead of one
per growth step.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import structlog

log = structlog.get_logger(__name__)

FULL_SCAN_INTERVAL = 900.0


async def keep_frozen(full_scan_interval: float = FULL_SCAN_INTERVAL) -> None:
    """Freeze the survivors of every full collection until cancelled; thaw and collect
    everything once per `full_scan_interval` seconds. Leaves nothing frozen when it ends."""
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Handle] = []

    def after_collection(phase: str, info: dict[str, Any]) -> None:
        # Called inside the collector, possibly on another thread: freeze from the loop.
        if phase == "stop" and info["generation"] == 2 and not loop.is_closed():
            pending[:] = [loop.call_soon_threadsafe(gc.freeze)]

    gc.callbacks.append(after_collection)
    try:
        gc.collect()
        while True:
            await asyncio.sleep(full_scan_interval)
            frozen = gc.get_freeze_count()
            gc.unfreeze()
            found = gc.collect()
            log.debug("full garbage collection", frozen=frozen, collected=found)
    finally:
        gc.callbacks.remove(after_collection)
        for handle in pending:
            handle.cancel()
        gc.unfreeze()
