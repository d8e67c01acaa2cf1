"""An informer: a reflector (LIST, then WATCH for ever) feeding an indexed store and handlers.

Semantics follow client-go's reflector: watches carry `allowWatchBookmarks` and a random
300-600 s server timeout; a stream silent for longer than the inactivity timeout is abandoned;
410 Gone relists; other failures reconnect from the last resourceVersion with a jittered
exponential backoff (800 ms doubling to 30 s, reset after 2 healthy minutes). `managedFields`
are stripped on ingest. Handlers run after the store is updated, with (old, new): old is None
for an addition, new is None for a deletion (deletions missed while disconnected included).
"""

from __future__ import annotations

import asyncio
import builtins
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import structlog

from reconciler.runtime import metrics
from reconciler.runtime.client import JSON, ApiError, Client, GoneError, ObjectList
from reconciler.runtime.resources import Resource

log = structlog.get_logger(__name__)

Handler = Callable[[JSON | None, JSON | None], Awaitable[None]]
IndexFunc = Callable[[JSON], Iterable[str]]
Clock = Callable[[], float]

NAMESPACE_INDEX = "namespace"
CONTROLLER_INDEX = "controller"
INACTIVITY_TIMEOUT = 120.0  # the apiserver sends a bookmark about every minute


def object_key(obj: Mapping[str, Any]) -> str:
    """The store key of an object: `namespace/name`, or `name` when cluster-scoped."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def by_namespace(obj: JSON) -> Iterable[str]:
    """Index function: the object's namespace."""
    namespace = obj["metadata"].get("namespace")
    return (namespace,) if namespace else ()


def by_controller_uid(obj: JSON) -> Iterable[str]:
    """Index function: the UID of the object's controller owner, if it has one."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return (ref["uid"],)
    return ()


class Store:
    """Objects by key, with secondary indices kept in step."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, JSON] = {}
        self._indexers: dict[str, IndexFunc] = {
            NAMESPACE_INDEX: by_namespace,
            CONTROLLER_INDEX: by_controller_uid,
            **(indexers or {}),
        }
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    def __len__(self) -> int:
        return len(self._items)

    def add_indexer(self, name: str, index: IndexFunc) -> None:
        """Add a secondary index, computed for the objects already stored too."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} exists already")
        self._indexers[name] = index
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    def get(self, key: str) -> JSON | None:
        """The object stored under `key`."""
        return self._items.get(key)

    def list(self) -> list[JSON]:
        """Every stored object."""
        return list(self._items.values())

    def list_keys(self) -> builtins.list[str]:
        """Every stored key."""
        return list(self._items)

    def by_index(self, name: str, value: str) -> builtins.list[JSON]:
        """The objects whose index function `name` yields `value`."""
        return [self._items[key] for key in self._indices[name].get(value, ())]

    def put(self, obj: JSON) -> JSON | None:
        """Store `obj`; return the object it replaced."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)
        return old

    def remove(self, key: str) -> JSON | None:
        """Remove and return the object stored under `key`."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index(self, name: str, key: str, obj: JSON) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: JSON) -> None:
        for name, index in self._indexers.items():
            for value in index(obj):
                keys = self._indices[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._indices[name][value]


class Backoff:
    """client-go's reflector backoff: `initial` doubling to `cap`, jittered, reset when healthy."""

    def __init__(
        self,
        initial: float = 0.8,
        cap: float = 30.0,
        *,
        reset_after: float = 120.0,
        jitter: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.reset_after = reset_after
        self.jitter = jitter
        self._clock = clock
        self._delay = 0.0
        self._last: float | None = None

    def next(self) -> float:
        """The delay before the next attempt."""
        now = self._clock()
        if self._last is None or now - self._last > self.reset_after:
            self._delay = self.initial
        else:
            self._delay = min(self.cap, self._delay * 2)
        self._last = now
        return self._delay * (1 + random.random() * self.jitter)


def strip_managed_fields(obj: JSON) -> JSON:
    """Drop `metadata.managedFields`: often half an object's size, and never read here."""
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


class Informer:
    """Keeps `store` equal to the objects of one resource in one scope, and calls handlers."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        inactivity_timeout: float = INACTIVITY_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.inactivity_timeout = inactivity_timeout
        self.store = Store(indexers)
        self.relists = 0
        self._handlers: list[Handler] = []
        self._resource_version: str | None = None
        self._synced = asyncio.Event()
        self._backoff = Backoff(clock=clock)
        self._log = log.bind(
            resource=str(resource), namespace=self.namespace, selector=label_selector
        )

    def __repr__(self) -> str:
        return (
            f"Informer({self.resource}, namespace={self.namespace!r}, "
            f"label_selector={self.label_selector!r})"
        )

    @property
    def has_synced(self) -> bool:
        """Whether the first LIST has been stored and delivered."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait until the first LIST has been stored and delivered to the handlers."""
        await self._synced.wait()

    async def add_handler(self, handler: Handler) -> None:
        """Deliver every later change to `handler`; objects stored already arrive as additions."""
        self._handlers.append(handler)
        for obj in self.store.list():
            await handler(None, obj)

    async def run(self) -> None:
        """List and watch until cancelled. Calling it again resumes from the last version."""
        while True:
            try:
                if self._resource_version is None:
                    await self._relist()
                await self._watch(self._resource_version or "")
            except GoneError:
                # The version is compacted away: only a fresh LIST can say what changed.
                self._log.info("watch version expired; relisting")
                self._resource_version = None
            except (ApiError, ConnectionError, OSError, aiohttp.ClientError, TimeoutError) as error:
                # TimeoutError includes the inactivity watchdog: a silent stream is abandoned.
                delay = self._backoff.next()
                self._log.warning("list/watch failed; retrying", error=repr(error), delay=delay)
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listed: ObjectList = await self.client.list(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.relists += 1
        metrics.informer_relists_total.labels(str(self.resource)).inc()
        present = set()
        for obj in listed.items:
            strip_managed_fields(obj)
            key = object_key(obj)
            present.add(key)
            old = self.store.put(obj)
            unchanged = old is not None and _version(old) == _version(obj)
            if not unchanged:
                await self._deliver(old, obj)
        # Objects deleted while we were not watching: deliver their last known state.
        for key in self.store.list_keys():
            if key not in present:
                await self._deliver(self.store.remove(key), None)
        self._resource_version = listed.resource_version
        self._synced.set()

    async def _watch(self, resource_version: str) -> None:
        timeout = random.randint(300, 600)
        events = self.client.watch(
            self.resource,
            self.namespace,
            resource_version=resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
        )
        try:
            while True:
                async with asyncio.timeout(self.inactivity_timeout):
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        return  # the server ended the watch; watch again from here
                obj = event.object
                version = _version(obj)
                if event.type == "BOOKMARK":
                    self._resource_version = version or self._resource_version
                    continue
                strip_managed_fields(obj)
                if event.type == "DELETED":
                    old = self.store.remove(object_key(obj))
                    await self._deliver(old or obj, None)
                else:
                    await self._deliver(self.store.put(obj), obj)
                self._resource_version = version or self._resource_version
        finally:
            await events.aclose()

    async def _deliver(self, old: JSON | None, new: JSON | None) -> None:
        for handler in self._handlers:
            try:
                await handler(old, new)
            except Exception:
                # A faulty handler must not stop the informer or starve the other handlers.
                self._log.exception("informer handler failed")


def _version(obj: JSON) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion") or "")
