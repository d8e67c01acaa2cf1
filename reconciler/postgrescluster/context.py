"""What a subreconciler gets: the cluster, read access to the cache, and the ways to act.

Subreconcilers read only from the cache and write only through `apply` and `delete`, which
skip what is already in place; so a reconcile of a converged cluster sends no write at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from reconciler.api import PostgresCluster
from reconciler.postgrescluster import naming
from reconciler.postgrescluster.intent import JSON, Owner
from reconciler.runtime import conditions, drift
from reconciler.runtime.client import Client, NotFoundError
from reconciler.runtime.resources import Resource


class Reader(Protocol):
    """Read access to the informer cache."""

    def get(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        """The cached object, or None."""
        ...

    def list(
        self, resource: Resource, namespace: str | None, labels: Mapping[str, str | None]
    ) -> list[JSON]:
        """Cached objects matching `labels` (a None value means: the key exists)."""
        ...


class Recorder(Protocol):
    """Posts Events about an object."""

    async def event(
        self, obj: JSON, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """Record one Event (Normal or Warning)."""
        ...


@dataclass(frozen=True, slots=True)
class Environment:
    """What the operator was configured with that matters to a cluster."""

    images: Mapping[str, str] = field(default_factory=dict)  # POSTGRES_17 -> image, etc.
    instance_sidecars: bool = True
    auto_create_user_schema: bool = True  # the AutoCreateUserSchema feature gate


@dataclass
class Context:
    """One reconcile of one PostgresCluster."""

    raw: JSON
    cluster: PostgresCluster
    spec: JSON
    reader: Reader
    client: Client
    recorder: Recorder
    environment: Environment
    status: JSON = field(default_factory=dict)
    # Set by earlier steps for later ones: the namespace's root certificate, etc.
    shared: dict[str, Any] = field(default_factory=dict)
    # Kept by the controller for this cluster from one reconcile to the next.
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def owner(self) -> Owner:
        """The cluster as the owner of what it creates."""
        return Owner.of(self.raw)

    @property
    def namespace(self) -> str:
        """The cluster's namespace."""
        return str(self.raw["metadata"]["namespace"])

    @property
    def name(self) -> str:
        """The cluster's name."""
        return str(self.raw["metadata"]["name"])

    @property
    def generation(self) -> int:
        """The generation of the spec being reconciled."""
        return int(self.raw["metadata"].get("generation", 0))

    @property
    def bootstrapped(self) -> bool:
        """Whether Patroni has initialised the cluster (it then owns the DCS configuration)."""
        return bool((self.status.get("patroni") or {}).get("systemIdentifier"))

    def cached(self, resource: Resource, name: str) -> JSON | None:
        """An object of the cluster's namespace, from the cache."""
        return self.reader.get(resource, self.namespace, name)

    def cluster_objects(
        self, resource: Resource, labels: Mapping[str, str | None] | None = None
    ) -> list[JSON]:
        """Cached objects of this cluster (its label), optionally narrowed by more labels."""
        selector: dict[str, str | None] = {naming.LABEL_CLUSTER: self.name, **(labels or {})}
        return self.reader.list(resource, self.namespace, selector)

    async def apply(self, resource: Resource, intent: JSON) -> JSON:
        """Server-side apply `intent` unless the cached object already holds it."""
        live = self.cached(resource, intent["metadata"]["name"])
        if drift.in_sync(intent, live):
            assert live is not None
            return live
        return await self.client.apply(
            resource, drift.with_intent_hash(intent), field_manager=naming.FIELD_MANAGER
        )

    async def delete(self, resource: Resource, obj: JSON) -> None:
        """Delete exactly this object (its UID), if it still exists."""
        meta = obj["metadata"]
        with contextlib.suppress(NotFoundError):
            await self.client.delete(resource, meta["name"], meta.get("namespace"), uid=meta["uid"])

    async def warn(self, reason: str, message: str) -> None:
        """A Warning Event on the cluster."""
        await self.recorder.event(self.raw, "Warning", reason, message)

    def set_condition(self, type_: str, status: str, reason: str, message: str) -> None:
        """Set a status condition for the generation being reconciled."""
        self.status["conditions"] = conditions.set_condition(
            self.status.get("conditions") or [],
            type_,
            status,
            reason,
            message,
            observed_generation=self.generation,
        )

    def clear_condition(self, type_: str) -> None:
        """Remove a status condition."""
        self.status["conditions"] = conditions.remove_condition(
            self.status.get("conditions") or [], type_
        )
