"""The shared cache: one informer per (resource, namespace scope, label selector).

Controllers register what they watch; reconcilers read from here, never from the API server.
When the operator watches a list of namespaces, a namespaced resource gets one informer per
namespace; otherwise one informer covers the cluster.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Iterable, Sequence

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.informer import (
    NAMESPACE_INDEX,
    Clock,
    IndexFunc,
    Informer,
    object_key,
)
from reconciler.runtime.resources import Resource

# resource, namespace, label selector, field selector
_Scope = tuple[Resource, str | None, str | None, str | None]


class NotCachedError(LookupError):
    """A read of a resource (or namespace, or selector) that no informer covers."""


class Cache:
    """Informers shared by every controller of a manager, and a read API over their stores."""

    def __init__(
        self,
        client: Client,
        *,
        namespaces: Sequence[str] = (),
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.namespaces = tuple(namespaces)
        self._clock = clock
        self._informers: dict[_Scope, Informer] = {}
        self._tasks: asyncio.TaskGroup | None = None

    def informers(
        self,
        resource: Resource,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Informer]:
        """The informers covering `resource` with these selectors, created on first use."""
        scopes = self.namespaces if resource.namespaced and self.namespaces else (None,)
        informers = []
        for namespace in scopes:
            scope = (resource, namespace, label_selector, field_selector)
            informer = self._informers.get(scope)
            if informer is None:
                informer = Informer(
                    self.client,
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    clock=self._clock,
                )
                self._informers[scope] = informer
                if self._tasks is not None:
                    self._tasks.create_task(informer.run(), name=repr(informer))
            informers.append(informer)
        return informers

    def add_index(
        self, resource: Resource, name: str, index: IndexFunc, *, label_selector: str | None = None
    ) -> None:
        """Add a secondary index to the informers of `resource` (e.g. Secrets by cluster)."""
        for informer in self.informers(resource, label_selector=label_selector):
            informer.store.add_indexer(name, index)

    @property
    def synced(self) -> bool:
        """Whether every informer has completed its first LIST."""
        return all(informer.has_synced for informer in self._informers.values())

    async def wait_synced(self, informers: Iterable[Informer] | None = None) -> None:
        """Wait until the given informers (default: all) have completed their first LIST."""
        for informer in list(self._informers.values() if informers is None else informers):
            await informer.wait_synced()

    async def run(self) -> None:
        """Run every informer, including those added later, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                for informer in self._informers.values():
                    tasks.create_task(informer.run(), name=repr(informer))
                await asyncio.Event().wait()  # informers run until this task is cancelled
            finally:
                self._tasks = None

    def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON | None:
        """The cached object, or None. Treat it as read-only: it is shared."""
        informer = self._informer_for(resource, namespace, label_selector, field_selector)
        key = object_key({"metadata": {"name": name, "namespace": namespace}})
        return informer.store.get(key)

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        index: tuple[str, str] | None = None,
    ) -> list[JSON]:
        """Cached objects of `resource` (in `namespace`, or everywhere), optionally those an
        index maps to a value, e.g. `index=("controller", owner_uid)`."""
        if namespace is not None and resource.namespaced:
            informers = [self._informer_for(resource, namespace, label_selector, None)]
        else:
            informers = self._registered(resource, label_selector)
        in_namespace = namespace is not None and resource.namespaced
        found: list[JSON] = []
        for informer in informers:
            if index is not None:
                objects = informer.store.by_index(*index)
                if in_namespace:
                    objects = [o for o in objects if o["metadata"].get("namespace") == namespace]
            elif in_namespace:
                objects = informer.store.by_index(NAMESPACE_INDEX, str(namespace))
            else:
                objects = informer.store.list()
            found.extend(objects)
        return found

    def _registered(
        self, resource: Resource, label_selector: str | None
    ) -> builtins.list[Informer]:
        informers = [
            informer
            for (kind, _, selector, fields), informer in self._informers.items()
            if kind == resource and selector == label_selector and fields is None
        ]
        if not informers:
            raise NotCachedError(f"{resource} (selector {label_selector!r}) is not cached")
        return informers

    def _informer_for(
        self,
        resource: Resource,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> Informer:
        scope = namespace if resource.namespaced and self.namespaces else None
        informer = self._informers.get((resource, scope, label_selector, field_selector))
        if informer is None:
            raise NotCachedError(
                f"{resource} in {namespace!r} (selector {label_selector!r}) is not cached"
            )
        return informer
