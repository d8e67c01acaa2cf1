"""What the PGUpgrade controller reads of one upgrade's cluster, from the shared cache, once per
reconcile: the cluster, its instance StatefulSets (the startup instance and the replicas), its
Jobs and Patroni's Endpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler import naming
from reconciler.runtime.client import JSON
from reconciler.runtime.resources import Resource

# (resource, namespace, cluster) -> the cached objects carrying that cluster's label
ListByCluster = Callable[[Resource, str, str], list[JSON]]


@dataclass
class World:
    """One upgrade's cluster as cached."""

    cluster: JSON | None
    primary: JSON | None = None
    replicas: list[JSON] = field(default_factory=list)
    jobs: dict[str, JSON] = field(default_factory=dict)
    patroni_endpoints: list[JSON] = field(default_factory=list)

    @property
    def replicas_expected(self) -> int:
        """How many remove-data Jobs a finished upgrade has (every instance but the primary)."""
        return len(self.replicas)

    @property
    def shutdown(self) -> bool:
        """PGO's test: `spec.shutdown` observed by the cluster controller, no instance left."""
        if self.cluster is None:
            return False
        status = self.cluster.get("status") or {}
        generation = self.cluster["metadata"].get("generation")
        return (
            bool((self.cluster.get("spec") or {}).get("shutdown"))
            and status.get("observedGeneration") == generation
            and not any(int(s.get("replicas") or 0) for s in status.get("instances") or [])
        )


def observe(
    cluster: JSON | None,
    list_by_cluster: ListByCluster,
    *,
    statefulsets: Resource,
    jobs: Resource,
    endpoints: Resource,
) -> World:
    """The world of an upgrade whose cluster is `cluster` (None: not found)."""
    if cluster is None:
        return World(cluster=None)
    meta = cluster["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    world = World(cluster=cluster)
    startup = (cluster.get("status") or {}).get("startupInstance") or ""
    for sts in list_by_cluster(statefulsets, namespace, name):
        if not (sts["metadata"].get("labels") or {}).get(naming.LABEL_INSTANCE):
            continue  # the pgBackRest repository host
        if not startup:
            continue
        if sts["metadata"]["name"] == startup:
            world.primary = sts
        else:
            world.replicas.append(sts)
    world.replicas.sort(key=lambda s: str(s["metadata"]["name"]))
    world.jobs = {j["metadata"]["name"]: j for j in list_by_cluster(jobs, namespace, name)}
    world.patroni_endpoints = [
        e
        for e in list_by_cluster(endpoints, namespace, name)
        if (e["metadata"].get("labels") or {}).get(naming.LABEL_PATRONI)
    ]
    return world
