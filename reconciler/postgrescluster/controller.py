"""The PostgresCluster controller: load, default, run the subreconcilers in order, report status.

Subreconcilers are modules with one `reconcile(ctx)`; `STEPS` orders them. Each reads from the
cache and writes only what differs, so a converged cluster costs no write at all. What only the
operator can find wrong with a cluster becomes a condition and an Event, never a crash loop.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog

from reconciler.api import (
    INVALID_SPEC_REASON,
    InvalidSpec,
    invalid_spec_condition,
    parse_postgres_cluster,
    with_defaults,
)
from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.config import Settings
from reconciler.postgrescluster import (
    cluster_config,
    database_init,
    instances,
    naming,
    patroni_rest,
    postgres_users,
    rbac,
    rollout,
    services,
    tls,
    users,
)
from reconciler.postgrescluster.context import Context, Environment, Reader, Recorder
from reconciler.postgrescluster.intent import JSON
from reconciler.runtime import conditions
from reconciler.runtime.cache import Cache
from reconciler.runtime.client import ApiError, Client, ConflictError, NotFoundError
from reconciler.runtime.controller import Controller, Request, Result
from reconciler.runtime.events import EventRecorder
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    ENDPOINTS,
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

log = structlog.get_logger(__name__)

NAME = naming.FIELD_MANAGER
CLUSTERS = POSTGRES_CLUSTERS.resource
# Every informer of owned kinds is scoped to objects carrying the cluster label: Secrets and
# ConfigMaps of other software are never cached.
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
)
Step = Callable[[Context], Awaitable[None]]
STEPS: tuple[Step, ...] = (
    tls.reconcile,
    services.reconcile,
    rbac.reconcile,
    cluster_config.reconcile,
    instances.reconcile,
    rollout.reconcile,
    users.reconcile,
    postgres_users.reconcile,
    database_init.reconcile,
    patroni_rest.reconcile,
)
# While instances are being removed on deletion, look again this often even without events.
TEARDOWN_POLL = 2.0


class ClusterReader:
    """The cache as subreconcilers see it: objects of clusters, filtered by labels."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def get(self, resource: Resource, namespace: str | None, name: str) -> JSON | None:
        """One cached object (the root certificate comes from its own informer)."""
        if resource == CLUSTERS:
            return self.cache.get(resource, name, namespace)
        if resource == SECRETS and name == naming.ROOT_CA_SECRET:
            return self.cache.get(resource, name, namespace, field_selector=ROOT_SELECTOR)
        return self.cache.get(resource, name, namespace, label_selector=CLUSTER_SELECTOR)

    def list(
        self, resource: Resource, namespace: str | None, labels: Mapping[str, str | None]
    ) -> list[JSON]:
        """Cached objects whose labels match (a None value: the label exists).

        Lookups by cluster go through an index: a reconcile's cost must not grow with the
        number of other clusters in the namespace.
        """
        cluster = labels.get(naming.LABEL_CLUSTER)
        index = (CLUSTER_INDEX, f"{namespace}/{cluster}") if cluster else None
        found = self.cache.list(resource, namespace, label_selector=CLUSTER_SELECTOR, index=index)
        return [obj for obj in found if _matches(obj, labels)]


def _matches(obj: JSON, labels: Mapping[str, str | None]) -> bool:
    have = obj["metadata"].get("labels") or {}
    return all(k in have and (v is None or have[k] == v) for k, v in labels.items())


def _status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> JSON:
    """A merge patch turning status `old` into `new` (removed keys become null)."""
    patch: JSON = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch


class PostgresClusterReconciler:
    """Reconciles one PostgresCluster per call; keeps a little memory per cluster."""

    def __init__(
        self, reader: Reader, client: Client, recorder: Recorder, environment: Environment
    ) -> None:
        self.reader = reader
        self.client = client
        self.recorder = recorder
        self.environment = environment
        self._memory: dict[str, dict[str, Any]] = {}

    async def __call__(self, request: Request) -> Result | None:
        """Converge the cluster named by `request`."""
        cached = self.reader.get(CLUSTERS, request.namespace, request.name)
        if cached is None:
            return None
        raw = copy.deepcopy(cached)  # the cache is shared: never modify what it holds
        uid = raw["metadata"]["uid"]
        if raw["metadata"].get("deletionTimestamp"):
            result = await self._teardown(raw)
            if result is None:
                self._memory.pop(uid, None)
            return result
        try:
            cluster = with_defaults(parse_postgres_cluster(raw))
        except InvalidSpec as error:
            await self._reject(raw, error)
            return None
        ctx = Context(
            raw=raw,
            cluster=cluster,
            spec=cluster.spec.dump(),
            reader=self.reader,
            client=self.client,
            recorder=self.recorder,
            environment=self.environment,
            status=copy.deepcopy(raw.get("status") or {}),
            memory=self._memory.setdefault(uid, {}),
        )
        try:
            await self._ensure_finalizer(raw)
            await self._converge(ctx)
            await self._write_status(raw, ctx.status)
        except ApiError as error:
            if not _namespace_terminating(error):
                raise
            # Nothing can be created there any more; the cluster's deletion follows.
            log.info("namespace is being deleted; waiting for the cluster's deletion")
        return None

    async def _converge(self, ctx: Context) -> None:
        if _has_invalid_spec(ctx.status):
            ctx.clear_condition("Ready")  # the spec parses again
        if ctx.spec.get("paused"):
            ctx.set_condition(
                "Progressing",
                "False",
                "Paused",
                "No spec changes will be applied and no other statuses will be updated.",
            )
            return
        ctx.clear_condition("Progressing")
        if instances.image(ctx) is None and not ctx.spec.get("shutdown"):
            key = f"RELATED_IMAGE_{instances.image_key(ctx.spec)}"
            message = (
                f"No image for PostgreSQL {ctx.spec['postgresVersion']}: set spec.image, "
                f"or set {key} in the operator's environment"
            )
            await ctx.warn("MissingRequiredImage", message)
            ctx.set_condition("Ready", "False", "MissingRequiredImage", message)
            return
        self._observe_patroni(ctx)
        for step in STEPS:
            if step is instances.reconcile and instances.image(ctx) is None:
                continue  # shut down with no image: nothing to run, nothing to roll
            await step(ctx)
        _set_ready(ctx)
        ctx.status["observedGeneration"] = ctx.generation

    def _observe_patroni(self, ctx: Context) -> None:
        """`status.patroni.systemIdentifier`, from the annotation Patroni writes at bootstrap."""
        endpoints = ctx.cached(ENDPOINTS, naming.patroni_distributed_configuration(ctx.name))
        identifier = ((endpoints or {}).get("metadata", {}).get("annotations") or {}).get(
            "initialize"
        )
        if identifier:
            ctx.status["patroni"] = {
                **(ctx.status.get("patroni") or {}),
                "systemIdentifier": identifier,
            }

    async def _reject(self, raw: JSON, error: InvalidSpec) -> None:
        generation = int(raw["metadata"].get("generation", 0))
        status = copy.deepcopy(raw.get("status") or {})
        condition = invalid_spec_condition(error, generation)
        previous = conditions.find(status.get("conditions") or [], "Ready")
        status["conditions"] = conditions.set_condition(
            status.get("conditions") or [],
            "Ready",
            "False",
            INVALID_SPEC_REASON,
            condition["message"],
            observed_generation=generation,
        )
        if previous is None or previous.get("message") != condition["message"]:
            message = f"{condition['message']}; correct the field and apply the manifest again"
            await self.recorder.event(raw, "Warning", INVALID_SPEC_REASON, message)
        log.warning("invalid spec", field=error.field, error=error.message)
        await self._write_status(raw, status)

    async def _ensure_finalizer(self, raw: JSON) -> None:
        finalizers = raw["metadata"].get("finalizers") or []
        if naming.FINALIZER in finalizers:
            return
        meta = raw["metadata"]
        patch = {
            "metadata": {
                "finalizers": [*finalizers, naming.FINALIZER],
                "resourceVersion": meta["resourceVersion"],
            }
        }
        await self.client.patch(CLUSTERS, meta["name"], patch, namespace=meta["namespace"])

    async def _teardown(self, raw: JSON) -> Result | None:
        """Stop the replicas, then the primary, then remove Patroni's records and the finalizer.

        Everything else (Services, Secrets, volumes) goes with the cluster through its owner
        references, collected by Kubernetes' garbage collector.
        """
        meta = raw["metadata"]
        if naming.FINALIZER not in (meta.get("finalizers") or []):
            return None
        namespace, name = meta["namespace"], meta["name"]
        selector: dict[str, str | None] = {naming.LABEL_CLUSTER: name}
        pods = self.reader.list(PODS, namespace, {**selector, naming.LABEL_INSTANCE: None})
        statefulsets = self.reader.list(
            STATEFUL_SETS, namespace, {**selector, naming.LABEL_INSTANCE: None}
        )
        primaries = {
            p["metadata"]["labels"][naming.LABEL_INSTANCE] for p in pods if instances.is_primary(p)
        }
        replicas = [s for s in statefulsets if s["metadata"]["name"] not in primaries]
        stopping = replicas if any(not instances.is_primary(p) for p in pods) else statefulsets
        for sts in stopping:
            if (sts.get("spec") or {}).get("replicas", 1) == 0:
                continue
            # Gone already (the cache lags a deletion): stopped, which is all this asks.
            with contextlib.suppress(NotFoundError):
                await self.client.patch(
                    STATEFUL_SETS,
                    sts["metadata"]["name"],
                    {"spec": {"replicas": 0}},
                    namespace=namespace,
                    field_manager=NAME,
                )
        if pods:
            return Result(requeue_after=TEARDOWN_POLL)
        patroni = {**selector, naming.LABEL_PATRONI: naming.patroni_scope(name)}
        for endpoints in self.reader.list(ENDPOINTS, namespace, patroni):
            with contextlib.suppress(NotFoundError):
                await self.client.delete(ENDPOINTS, endpoints["metadata"]["name"], namespace)
        finalizers = [f for f in meta.get("finalizers") or [] if f != naming.FINALIZER]
        # A conflict means it changed meanwhile: the next event brings us back.
        with contextlib.suppress(ConflictError, NotFoundError):
            await self.client.patch(
                CLUSTERS,
                name,
                {
                    "metadata": {
                        "finalizers": finalizers,
                        "resourceVersion": meta["resourceVersion"],
                    }
                },
                namespace=namespace,
            )
        return None

    async def _write_status(self, raw: JSON, status: JSON) -> None:
        patch = _status_patch(raw.get("status") or {}, status)
        if not patch:
            return
        meta = raw["metadata"]
        with contextlib.suppress(NotFoundError):
            await self.client.patch(
                CLUSTERS,
                meta["name"],
                {"status": patch},
                namespace=meta["namespace"],
                subresource="status",
            )


def _namespace_terminating(error: ApiError) -> bool:
    # Creates carry a NamespaceTerminating cause; server-side applies only the message.
    causes = (error.body.get("details") or {}).get("causes") or []
    return error.status == 403 and (
        any(c.get("type") == "NamespaceTerminating" for c in causes)
        or "because it is being terminated" in str(error.body.get("message", ""))
    )


def _has_invalid_spec(status: JSON) -> bool:
    ready = conditions.find(status.get("conditions") or [], "Ready")
    return ready is not None and ready.get("reason") == INVALID_SPEC_REASON


def _set_ready(ctx: Context) -> None:
    """`Ready` (PGO has none): every instance of every set has a ready pod."""
    observed = ctx.status.get("instances") or []
    wanted = sum(int(s["replicas"]) for s in ctx.spec["instances"])
    ready = sum(int(s.get("readyReplicas", 0)) for s in observed)
    if ctx.spec.get("shutdown"):
        ctx.set_condition("Ready", "False", "Shutdown", "The cluster is shut down (spec.shutdown).")
    elif ready >= wanted:
        ctx.set_condition(
            "Ready", "True", "AllInstancesReady", f"{ready} of {wanted} instances ready"
        )
    else:
        ctx.set_condition(
            "Ready", "False", "InstancesNotReady", f"{ready} of {wanted} instances ready"
        )


def _by_cluster(obj: JSON) -> Iterable[str]:
    """Index key: `<namespace>/<cluster>` from the cluster label."""
    cluster = (obj["metadata"].get("labels") or {}).get(naming.LABEL_CLUSTER)
    if cluster:
        yield f"{obj['metadata'].get('namespace')}/{cluster}"


def _cluster_of(obj: JSON) -> Iterable[Request]:
    """Pods and Patroni's Endpoints map to the cluster named by their cluster label."""
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


def controller(
    cache: Cache,
    client: Client,
    recorder: Recorder,
    environment: Environment,
    *,
    workers: int,
    name: str = NAME,
) -> Controller:
    """The PostgresCluster controller with its watches, ready for a manager to run.

    `name` names the controller in logs and metrics (tests run a second one beside the first);
    the field manager of its writes is always `postgrescluster-controller`.
    """
    reconciler = PostgresClusterReconciler(ClusterReader(cache), client, recorder, environment)
    built = Controller(name, reconciler, workers=workers).for_(CLUSTERS)
    for resource in OWNED:
        built.owns(resource, label_selector=CLUSTER_SELECTOR)
    built.watches(PODS, _cluster_of, label_selector=CLUSTER_SELECTOR)
    built.watches(ENDPOINTS, _cluster_of, label_selector=CLUSTER_SELECTOR)
    built.watches(SECRETS, _root_users(cache), field_selector=ROOT_SELECTOR)
    for resource in (*OWNED, PODS):
        cache.add_index(resource, CLUSTER_INDEX, _by_cluster, label_selector=CLUSTER_SELECTOR)
    return built


async def setup(manager: Manager, settings: Settings) -> None:
    """Register the PostgresCluster controller with the manager (`reconciler run`)."""
    environment = Environment(
        images=settings.images,
        instance_sidecars=settings.feature_gates.get("InstanceSidecars", True),
        auto_create_user_schema=settings.feature_gates.get("AutoCreateUserSchema", True),
    )
    recorder = EventRecorder(manager.client, NAME)
    await manager.add(
        controller(manager.cache, manager.client, recorder, environment, workers=settings.workers)
    )
