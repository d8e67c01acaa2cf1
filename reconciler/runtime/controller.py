"""A controller: watched resources map events to requests; N workers reconcile them.

    controller = (
        Controller("postgrescluster-controller", reconcile, workers=2)
        .for_(POSTGRES_CLUSTERS)
        .owns(STATEFUL_SETS, label_selector="postgres-operator.crunchydata.com/cluster")
        .watches(PODS, pods_to_clusters, label_selector="...")
    )
    manager.add(controller)

`reconcile(request)` returns None (done), `Result(requeue_after=seconds)`, or raises: an
exception requeues the request with backoff (its traceback is logged); `TerminalError` is
logged and not retried. Results are counted as controller-runtime counts them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Self

import structlog

from reconciler.runtime import metrics
from reconciler.runtime.cache import Cache
from reconciler.runtime.client import JSON
from reconciler.runtime.informer import Handler, Informer
from reconciler.runtime.resources import Resource
from reconciler.runtime.workqueue import Clock, RateLimiter, ShutDown, WorkQueue

log = structlog.get_logger(__name__)


class Request(NamedTuple):
    """What to reconcile: one object, by namespace (empty if cluster-scoped) and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks for: `requeue_after` > 0 reconciles the request again then."""

    requeue_after: float = 0.0


class TerminalError(Exception):
    """A failure that retrying cannot fix (it waits for the next change of the object)."""


Reconcile = Callable[[Request], Awaitable[Result | None]]
Mapper = Callable[[JSON], Iterable[Request]]


@dataclass(frozen=True, slots=True)
class _Watch:
    resource: Resource
    label_selector: str | None
    field_selector: str | None
    mapper: Mapper


def request_for(obj: JSON) -> Request:
    """The request naming `obj` itself."""
    meta = obj["metadata"]
    return Request(meta.get("namespace") or "", meta["name"])


class Controller:
    """Reconciles the requests its watches produce, with at most `workers` at once."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        workers: int = 1,
        rate_limiter: RateLimiter[Request] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.queue: WorkQueue[Request] = WorkQueue(name, rate_limiter=rate_limiter, clock=clock)
        self._clock = clock
        self._for: Resource | None = None
        self._watches: list[_Watch] = []
        self._informers: list[Informer] = []

    def for_(self, resource: Resource, *, label_selector: str | None = None) -> Self:
        """Reconcile every object of `resource` when it changes."""
        if self._for is not None:
            raise ValueError(f"controller {self.name} is already for {self._for}")
        self._for = resource
        return self.watches(
            resource, lambda obj: (request_for(obj),), label_selector=label_selector
        )

    def owns(self, resource: Resource, *, label_selector: str | None = None) -> Self:
        """Reconcile the controller owner (of the `for_` kind) of objects of `resource`."""
        owner = self._for
        if owner is None:
            raise ValueError("call for_() before owns(): owners are of the for_ kind")

        def owner_requests(obj: JSON) -> Iterable[Request]:
            namespace = (obj["metadata"].get("namespace") or "") if owner.namespaced else ""
            for ref in obj["metadata"].get("ownerReferences") or ():
                # Group and kind identify the owner; the version may differ (as in Go).
                group = ref.get("apiVersion", "").rpartition("/")[0]
                if ref.get("controller") and ref.get("kind") == owner.kind and group == owner.group:
                    yield Request(namespace, ref["name"])

        return self.watches(resource, owner_requests, label_selector=label_selector)

    def watches(
        self,
        resource: Resource,
        mapper: Mapper,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Self:
        """Reconcile the requests `mapper` derives from each changed object of `resource`
        (called with the old and the new state of an update)."""
        self._watches.append(_Watch(resource, label_selector, field_selector, mapper))
        return self

    async def bind(self, cache: Cache) -> None:
        """Register the watches' handlers with the cache's (shared) informers."""
        for watch in self._watches:
            informers = cache.informers(
                watch.resource,
                label_selector=watch.label_selector,
                field_selector=watch.field_selector,
            )
            for informer in informers:
                self._informers.append(informer)
                await informer.add_handler(self._handler(watch.mapper))

    def _handler(self, mapper: Mapper) -> Handler:
        async def enqueue(old: JSON | None, new: JSON | None) -> None:
            for obj in (old, new):
                if obj is not None:
                    for request in mapper(obj):
                        self.queue.add(request)

        return enqueue

    async def run(self, cache: Cache) -> None:
        """Wait for the cache, then reconcile until cancelled (workers stop between requests
        or are cancelled mid-reconcile)."""
        await cache.wait_synced(self._informers)
        metrics.controller_runtime_max_concurrent_reconciles.labels(self.name).set(self.workers)
        log.info("starting workers", controller=self.name, workers=self.workers)
        try:
            async with asyncio.TaskGroup() as workers:
                for number in range(self.workers):
                    workers.create_task(self._work(), name=f"{self.name}-worker-{number}")
        finally:
            await self.queue.shutdown(drain=False)

    async def _work(self) -> None:
        active = metrics.controller_runtime_active_workers.labels(self.name)
        while True:
            try:
                request = await self.queue.get()
            except ShutDown:
                return
            active.inc()
            try:
                await self._reconcile(request)
            finally:
                active.dec()
                self.queue.done(request)

    async def _reconcile(self, request: Request) -> None:
        started = self._clock()
        with structlog.contextvars.bound_contextvars(
            controller=self.name,
            namespace=request.namespace,
            name=request.name,
            reconcileID=str(uuid.uuid4()),
        ):
            try:
                result = await self.reconcile(request)
            except TerminalError:
                outcome = "error"
                metrics.controller_runtime_reconcile_errors_total.labels(self.name).inc()
                metrics.controller_runtime_terminal_reconcile_errors_total.labels(self.name).inc()
                log.exception("reconcile failed; not retrying")
                self.queue.forget(request)
            except Exception:
                outcome = "error"
                metrics.controller_runtime_reconcile_errors_total.labels(self.name).inc()
                log.exception("reconcile failed; retrying with backoff")
                self.queue.add_rate_limited(request)
            else:
                self.queue.forget(request)
                if result is not None and result.requeue_after > 0:
                    outcome = "requeue_after"
                    self.queue.add_after(request, result.requeue_after)
                else:
                    outcome = "success"
            finally:
                elapsed = self._clock() - started
                metrics.controller_runtime_reconcile_time_seconds.labels(self.name).observe(elapsed)
        metrics.controller_runtime_reconcile_total.labels(self.name, outcome).inc()
