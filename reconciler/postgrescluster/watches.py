"""What the PostgresCluster controller watches and caches, and how it reads the cache.

Every informer of an owned kind is scoped to objects carrying the cluster label, so Secrets and
ConfigMaps of other software are never cached; the root certificate has an informer of its own,
narrowed by name. Lookups by cluster go through an index, so a reconcile's cost does not grow
with the number of other clusters in the namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from reconciler import naming
from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.runtime.cache import Cache
from reconciler.runtime.client import JSON
from reconciler.runtime.controller import Controller, Request
from reconciler.runtime.rbac import APPLY, READ, Rule
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    CRON_JOBS,
    DEPLOYMENTS,
    ENDPOINTS,
    JOBS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFUL_SETS,
    Resource,
)

CLUSTERS = POSTGRES_CLUSTERS.resource
CLUSTER_SELECTOR = naming.LABEL_CLUSTER
ROOT_SELECTOR = f"metadata.name={naming.ROOT_CA_SECRET}"
CLUSTER_INDEX = "cluster"
OWNED: tuple[Resource, ...] = (
    CONFIG_MAPS,
    SECRETS,
    SERVICES,
    ENDPOINTS,
    SERVICE_ACCOUNTS,
    ROLES,
    ROLE_BINDINGS,
    STATEFUL_SETS,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    JOBS,
    CRON_JOBS,
    DEPLOYMENTS,
)

# What the controller's calls need: informers (list, watch) of every kind it reads, server-side
# apply (create, patch) of what it renders, deletes of what it removes by itself; objects it
# never deletes go with their cluster through the garbage collector.
RULES = (
    Rule(
        "postgres-operator.crunchydata.com",
        ("postgresclusters",),
        (*READ, "patch"),
        "PostgresClusters are watched; their finalizer is added and removed with a patch.",
    ),
    Rule(
        "postgres-operator.crunchydata.com",
        ("postgresclusters/status",),
        ("patch",),
        "Status is written with its own patch.",
    ),
    Rule(
        "postgres-operator.crunchydata.com",
        ("postgresclusters/finalizers",),
        ("update",),
        "Owner references that block the cluster's deletion, where admission enforces it.",
    ),
    Rule(
        "",
        ("configmaps", "persistentvolumeclaims", "secrets"),
        (*READ, *APPLY, "delete"),
        "Configuration, certificates, user Secrets and volumes; a removed instance's go too.",
    ),
    Rule(
        "",
        ("configmaps",),
        ("get",),
        "spec.databaseInitSQL's ConfigMap is the user's (not cached): read when it runs.",
    ),
    Rule(
        "",
        ("endpoints",),
        (*READ, *APPLY, "delete"),
        "The primary Service's Endpoints; Patroni's records are removed on deletion.",
    ),
    Rule(
        "",
        ("serviceaccounts", "services"),
        (*READ, *APPLY, "delete"),
        "The cluster's Services and ServiceAccounts; pgBackRest's go when backups are removed.",
    ),
    Rule(
        "",
        ("pods",),
        (*READ, "delete"),
        "Instance pods are observed; a rolling update deletes outdated ones.",
    ),
    Rule(
        "apps",
        ("statefulsets",),
        (*READ, *APPLY, "delete"),
        "One StatefulSet per instance; removed instances' go.",
    ),
    Rule(
        "policy",
        ("poddisruptionbudgets",),
        (*READ, *APPLY, "delete"),
        "A disruption budget per instance set with replicas.",
    ),
    Rule(
        "rbac.authorization.k8s.io",
        ("rolebindings", "roles"),
        (*READ, *APPLY, "delete"),
        "Roles and RoleBindings of Patroni and of backup Jobs; the latter go with backups.",
    ),
)


class ClusterReader:
    """The cache as subreconcilers see it: objects of clusters, filtered by labels."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def get(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        """One cached object (the root certificate comes from its own informer)."""
        if resource == CLUSTERS:
            return self.cache.get(resource, name, namespace)
        if resource == NODES:
            return self.cache.get(resource, name)  # cluster-scoped, every one cached
        if resource == SECRETS and name == naming.ROOT_CA_SECRET:
            return self.cache.get(resource, name, namespace, field_selector=ROOT_SELECTOR)
        return self.cache.get(resource, name, namespace, label_selector=CLUSTER_SELECTOR)

    def list(
        self, resource: Resource, namespace: str | None, labels: Mapping[str, str | None]
    ) -> list[JSON]:
        """Cached objects whose labels match (a None value: the label exists)."""
        cluster = labels.get(naming.LABEL_CLUSTER)
        index = (CLUSTER_INDEX, f"{namespace}/{cluster}") if cluster else None
        found = self.cache.list(resource, namespace, label_selector=CLUSTER_SELECTOR, index=index)
        return [obj for obj in found if _matches(obj, labels)]


def _matches(obj: JSON, labels: Mapping[str, str | None]) -> bool:
    have = obj["metadata"].get("labels") or {}
    return all(k in have and (v is None or have[k] == v) for k, v in labels.items())


def _by_cluster(obj: JSON) -> Iterable[str]:
    """Index key: `<namespace>/<cluster>` from the cluster label."""
    cluster = (obj["metadata"].get("labels") or {}).get(naming.LABEL_CLUSTER)
    if cluster:
        yield f"{obj['metadata'].get('namespace')}/{cluster}"


def _cluster_of(obj: JSON) -> Iterable[Request]:
    """Pods, Jobs and Patroni's Endpoints map to the cluster named by their cluster label."""
    cluster = (obj["metadata"].get("labels") or {}).get(naming.LABEL_CLUSTER)
    if cluster:
        yield Request(obj["metadata"].get("namespace") or "", cluster)


def _root_users(cache: Cache) -> Callable[[JSON], Iterable[Request]]:
    """The root certificate maps to every cluster of its namespace."""

    def mapper(secret: JSON) -> Iterable[Request]:
        namespace = secret["metadata"].get("namespace")
        for cluster in cache.list(CLUSTERS, namespace):
            yield Request(namespace or "", cluster["metadata"]["name"])

    return mapper


def watch(built: Controller, cache: Cache) -> Controller:
    """Register the controller's watches and the cache's cluster index."""
    built.for_(CLUSTERS)
    for resource in OWNED:
        if resource != JOBS:
            built.owns(resource, label_selector=CLUSTER_SELECTOR)
    # Jobs by their label: those of scheduled backups belong to their CronJob, not the cluster.
    built.watches(JOBS, _cluster_of, label_selector=CLUSTER_SELECTOR)
    built.watches(PODS, _cluster_of, label_selector=CLUSTER_SELECTOR)
    built.watches(ENDPOINTS, _cluster_of, label_selector=CLUSTER_SELECTOR)
    built.watches(SECRETS, _root_users(cache), field_selector=ROOT_SELECTOR)
    for resource in (*OWNED, PODS):
        cache.add_index(resource, CLUSTER_INDEX, _by_cluster, label_selector=CLUSTER_SELECTOR)
    return built


def _clusters_on(cache: Cache) -> Callable[[JSON], Iterable[Request]]:
    """A Node maps to the clusters with instance pods on it (a scan of the cached pods, done
    only with node-loss recovery on: Nodes change about once a minute each)."""

    def mapper(node: JSON) -> Iterable[Request]:
        name = node["metadata"]["name"]
        found = {
            Request(pod["metadata"].get("namespace") or "", cluster)
            for pod in cache.list(PODS, None, label_selector=CLUSTER_SELECTOR)
            if (pod.get("spec") or {}).get("nodeName") == name
            and (cluster := (pod["metadata"].get("labels") or {}).get(naming.LABEL_CLUSTER))
        }
        yield from found

    return mapper


def watch_nodes(built: Controller, cache: Cache) -> Controller:
    """With node-loss recovery on (the InstanceNodeLossRecovery gate): Nodes are watched, so
    that a node going NotReady or deleted brings its clusters' reconciles."""
    return built.watches(NODES, _clusters_on(cache))
