"""The PGUpgrade controller: a major PostgreSQL upgrade of a shut-down PostgresCluster, as PGO
v5 does it.

The sequence, for `PGUpgrade/<u>` of `PostgresCluster/<c>`:
1. the user shuts the cluster down (`spec.shutdown: true`) and annotates it with
   `postgres-operator.crunchydata.com/allow-upgrade: <u>`;
2. the controller removes Patroni's DCS Endpoints and runs Job `<u>-pgdata` (initdb of the new
   major, `pg_upgrade --check`, `pg_upgrade --link` by default) on the startup instance's
   volumes, then a Job `<u>-<instance>` per replica that removes its old data directory;
3. it records the new major in the cluster's `status.postgresVersion`, clears
   `status.pgbackrest.repos` (a new stanza and backup follow) and deletes the replica-create
   backup Job, then reports `Succeeded` once the cluster's spec names the new major;
4. the user sets `spec.postgresVersion` to the new major, removes the shutdown and the
   annotation; the replicas are cloned afresh from the upgraded primary.

Each reason that stops the sequence is the `Progressing` condition's, with PGO's names; a new
stopping reason is also a Warning Event. Nothing here crashes on a bad spec.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

import structlog

from reconciler import naming
from reconciler.api.crd import PG_UPGRADES, POSTGRES_CLUSTERS
from reconciler.config import Settings
from reconciler.pgupgrade import jobs
from reconciler.pgupgrade.world import World, observe
from reconciler.runtime import conditions
from reconciler.runtime import jobs as job_progress
from reconciler.runtime.cache import Cache
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.controller import Controller, Request, Result
from reconciler.runtime.events import EventRecorder
from reconciler.runtime.manager import Manager
from reconciler.runtime.rbac import APPLY, READ, Rule
from reconciler.runtime.resources import ENDPOINTS, JOBS, STATEFUL_SETS, Resource

log = structlog.get_logger(__name__)

NAME = "pgupgrade-controller"
UPGRADES = PG_UPGRADES.resource
CLUSTERS = POSTGRES_CLUSTERS.resource
CLUSTER_SELECTOR = naming.LABEL_CLUSTER
IMAGE_KEY = "PGUPGRADE"  # RELATED_IMAGE_PGUPGRADE
# Patroni's Endpoints are deleted again until Patroni (shutting down) stops writing them.
REQUEUE_SECONDS = 5.0

PROGRESSING = "Progressing"
SUCCEEDED = "Succeeded"
REASON_PROGRESSING = "PGUpgradeProgressing"
REASON_INVALID = "PGUpgradeInvalid"
REASON_CLUSTER_NOT_FOUND = "PGClusterNotFound"
REASON_RESOLVED = "PGUpgradeResolved"
REASON_COMPLETED = "PGUpgradeCompleted"
REASON_SUCCEEDED = "PGUpgradeSucceeded"
REASON_NOT_SHUTDOWN = "PGClusterNotShutdown"
REASON_PRIMARY_NOT_IDENTIFIED = "PGClusterPrimaryNotIdentified"
REASON_INVALID_FOR_CLUSTER = "PGUpgradeInvalidForCluster"
REASON_MISSING_ANNOTATION = "PGClusterMissingRequiredAnnotation"
REASON_FAILED = "PGUpgradeFailed"

RULES = (
    Rule(
        "postgres-operator.crunchydata.com",
        ("pgupgrades",),
        READ,
        "PGUpgrades are watched.",
    ),
    Rule(
        "postgres-operator.crunchydata.com",
        ("pgupgrades/status",),
        ("patch",),
        "A PGUpgrade's conditions are written with a status patch.",
    ),
    Rule(
        "postgres-operator.crunchydata.com",
        ("pgupgrades/finalizers",),
        ("update",),
        "The upgrade Jobs' owner references block the PGUpgrade's deletion.",
    ),
    Rule(
        "batch",
        ("jobs",),
        (*READ, *APPLY, "delete"),
        "The pg_upgrade and remove-data Jobs; the replica-create backup Job goes after it.",
    ),
    Rule(
        "",
        ("endpoints",),
        (*READ, "delete"),
        "Patroni's DCS Endpoints are removed so that it starts the new major afresh.",
    ),
)


class Action(Enum):
    """What a reconcile does once the checks pass."""

    NONE = "none"
    RUN_UPGRADE = "run-upgrade"
    REMOVE_REPLICA_DATA = "remove-replica-data"
    RECORD_VERSION = "record-version"


@dataclass
class Decision:
    """The new conditions of an upgrade and what to do about its cluster."""

    conditions: list[JSON]
    action: Action = Action.NONE
    remove_patroni_endpoints: bool = False
    warnings: list[tuple[str, str]] = field(default_factory=list)


class _Conditions:
    """PGO's bookkeeping: a check that fails sets `Progressing=False` with its reason; once it
    passes, a `Progressing` it had set becomes `True` (`PGUpgradeProgressing`) again."""

    def __init__(self, upgrade: JSON) -> None:
        self.generation = int(upgrade["metadata"].get("generation") or 0)
        self.cluster = upgrade["spec"]["postgresClusterName"]
        self.items: list[JSON] = copy.deepcopy(
            (upgrade.get("status") or {}).get("conditions") or []
        )
        self.warnings: list[tuple[str, str]] = []

    def set(self, type_: str, status: str, reason: str, message: str) -> None:
        previous = conditions.find(self.items, type_)
        if status == "False" and (previous is None or previous.get("reason") != reason):
            self.warnings.append((reason, message))
        self.items = conditions.set_condition(
            self.items, type_, status, reason, message, observed_generation=self.generation
        )

    def passed(self, reason: str) -> None:
        progressing = conditions.find(self.items, PROGRESSING)
        if progressing is None or progressing.get("reason") == reason:
            self.set(
                PROGRESSING,
                "True",
                REASON_PROGRESSING,
                f"Upgrade progressing for cluster {self.cluster}",
            )

    def gates(self, *checks: tuple[str, str | None]) -> Decision | None:
        """Each check in turn, (reason, problem or None): the first problem stops the upgrade."""
        for reason, problem in checks:
            if problem is not None:
                self.set(PROGRESSING, "False", reason, problem)
                return self.decision()
            self.passed(reason)
        return None

    def decision(self, action: Action = Action.NONE, *, remove_endpoints: bool = False) -> Decision:
        return Decision(self.items, action, remove_endpoints, self.warnings)


@dataclass(frozen=True, slots=True)
class _Progress:
    """What the upgrade's Jobs have done."""

    upgrade_complete: bool
    removals_complete: bool
    failed: bool

    @classmethod
    def of(cls, world: World, upgrade: str) -> _Progress:
        job = world.jobs.get(jobs.upgrade_job_name(upgrade))
        outcome = job_progress.finished(job) if job else None
        removals = [
            job_progress.finished(j)
            for j in world.jobs.values()
            if (j["metadata"].get("labels") or {}).get(naming.LABEL_ROLE) == jobs.ROLE_REMOVE_DATA
            and (j["metadata"].get("labels") or {}).get(naming.LABEL_PGUPGRADE) == upgrade
        ]
        return cls(
            upgrade_complete=outcome == "Complete",
            removals_complete=removals.count("Complete") == world.replicas_expected,
            failed=outcome == "Failed" or "Failed" in removals,
        )


def decide(upgrade: JSON, world: World, image: str | None) -> Decision:
    """The conditions and the next action of `upgrade`, PGO's checks in PGO's order."""
    spec = upgrade["spec"]
    cluster_name = spec["postgresClusterName"]
    source, target = int(spec["fromPostgresVersion"]), int(spec["toPostgresVersion"])
    state = _Conditions(upgrade)
    succeeded = conditions.find(state.items, SUCCEEDED)
    if succeeded is not None and succeeded.get("reason") == REASON_SUCCEEDED:
        return state.decision()  # done: nothing is looked at again
    state.passed("")
    invalid = (
        f"Cannot upgrade from postgres version {source} to {target}"
        if source >= target
        else None
        if image
        else "Error: missing crunchy-upgrade image: set spec.image, or RELATED_IMAGE_PGUPGRADE "
        "in the operator's environment"
    )
    missing = f'postgresclusters.postgres-operator.crunchydata.com "{cluster_name}" not found'
    stopped = state.gates(
        (REASON_INVALID, invalid),
        (REASON_CLUSTER_NOT_FOUND, missing if world.cluster is None else None),
    )
    if stopped is not None or world.cluster is None:
        return stopped or state.decision()
    return _decide_for_cluster(state, upgrade, world, world.cluster)


def _decide_for_cluster(state: _Conditions, upgrade: JSON, world: World, cluster: JSON) -> Decision:
    """`decide`, once the upgrade is valid and its cluster exists."""
    spec = upgrade["spec"]
    name = upgrade["metadata"]["name"]
    cluster_name = spec["postgresClusterName"]
    source, target = int(spec["fromPostgresVersion"]), int(spec["toPostgresVersion"])
    version = int(cluster["spec"]["postgresVersion"])
    status_version = int((cluster.get("status") or {}).get("postgresVersion") or 0)
    progress = _Progress.of(world, name)
    resolved = f"PostgresCluster {cluster_name} is already running version {target}"
    stopped = state.gates(
        (REASON_RESOLVED, resolved if version == target and not progress.upgrade_complete else None)
    )
    if stopped is not None:
        return stopped
    if status_version == target:
        running = f"PostgresCluster {cluster_name} is running version {target}"
        state.set(PROGRESSING, "False", REASON_COMPLETED, running)
        if progress.upgrade_complete and progress.removals_complete:
            ready = (
                f"PostgresCluster {cluster_name} is ready to complete upgrade to version {target}"
            )
            state.set(SUCCEEDED, "True", REASON_SUCCEEDED, ready)
        return state.decision()
    annotated = (cluster["metadata"].get("annotations") or {}).get(
        naming.ANNOTATION_ALLOW_UPGRADE
    ) == name
    stopped = state.gates(
        (
            REASON_NOT_SHUTDOWN,
            None if world.shutdown else "PostgresCluster instances still running",
        ),
        (
            REASON_PRIMARY_NOT_IDENTIFIED,
            None if world.primary else "PostgresCluster primary instance not identified",
        ),
        (
            REASON_INVALID_FOR_CLUSTER,
            None
            if version == source
            else f"Current postgres version is {version}, but upgrade expected {source}",
        ),
        (
            REASON_MISSING_ANNOTATION,
            None
            if annotated
            else f"PostgresCluster {cluster_name} lacks annotation for upgrade {name}: annotate "
            f"it with {naming.ANNOTATION_ALLOW_UPGRADE}={name}",
        ),
    )
    if stopped is not None:
        return stopped
    if progress.failed:
        failed = "Upgrade jobs failed, please check individual pod logs"
        state.set(SUCCEEDED, "False", REASON_FAILED, failed)
        return state.decision()
    if progress.upgrade_complete and progress.removals_complete:
        return state.decision(Action.RECORD_VERSION)
    action = Action.REMOVE_REPLICA_DATA if progress.upgrade_complete else Action.RUN_UPGRADE
    return state.decision(action, remove_endpoints=bool(world.patroni_endpoints))


class PGUpgradeReconciler:
    """Reconciles one PGUpgrade per call."""

    def __init__(
        self, cache: Cache, client: Client, recorder: EventRecorder, settings: Settings
    ) -> None:
        self.cache = cache
        self.client = client
        self.recorder = recorder
        self.image = settings.images.get(IMAGE_KEY)
        self.cpu_concurrency = settings.feature_gates.get("PGUpgradeCPUConcurrency", True)

    def _list(self, resource: Resource, namespace: str, cluster: str) -> list[JSON]:
        return [
            o
            for o in self.cache.list(resource, namespace, label_selector=CLUSTER_SELECTOR)
            if (o["metadata"].get("labels") or {}).get(naming.LABEL_CLUSTER) == cluster
        ]

    async def __call__(self, request: Request) -> Result | None:
        """Move the upgrade named by `request` one step on."""
        cached = self.cache.get(UPGRADES, request.name, request.namespace)
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return None
        upgrade = copy.deepcopy(cached)
        spec = upgrade["spec"]
        image = spec.get("image") or self.image
        cluster = self.cache.get(CLUSTERS, spec["postgresClusterName"], request.namespace)
        world = observe(
            cluster, self._list, statefulsets=STATEFUL_SETS, jobs=JOBS, endpoints=ENDPOINTS
        )
        decision = decide(upgrade, world, image)
        result = None
        if decision.action is Action.RUN_UPGRADE and world.primary is not None:
            await self._apply(
                jobs.upgrade_job(
                    {**upgrade, "spec": {**spec, "image": image}},
                    world.primary,
                    cpu_concurrency=self.cpu_concurrency,
                )
            )
        elif decision.action is Action.REMOVE_REPLICA_DATA:
            for replica in world.replicas:
                await self._apply(
                    jobs.remove_data_job({**upgrade, "spec": {**spec, "image": image}}, replica)
                )
        elif decision.action is Action.RECORD_VERSION and world.cluster is not None:
            await self._record_version(world, int(spec["toPostgresVersion"]))
        if decision.remove_patroni_endpoints:
            for endpoint in world.patroni_endpoints:
                await self._delete(ENDPOINTS, endpoint)
            result = Result(requeue_after=REQUEUE_SECONDS)
        for reason, message in decision.warnings:
            await self.recorder.event(upgrade, "Warning", reason, message)
        if decision.conditions != ((cached.get("status") or {}).get("conditions") or []):
            try:
                await self.client.patch(
                    UPGRADES,
                    request.name,
                    {"status": {"conditions": decision.conditions}},
                    namespace=request.namespace,
                    subresource="status",
                )
            except NotFoundError:
                return None
        return result

    async def _apply(self, job: JSON) -> None:
        if (
            self.cache.get(
                JOBS,
                job["metadata"]["name"],
                job["metadata"]["namespace"],
                label_selector=CLUSTER_SELECTOR,
            )
            is not None
        ):
            return  # a Job's template cannot change: the one there is the one that runs
        await self.client.apply(JOBS, job, field_manager=NAME)

    async def _delete(self, resource: Resource, obj: JSON) -> None:
        meta = obj["metadata"]
        with contextlib.suppress(NotFoundError):
            await self.client.delete(
                resource,
                meta["name"],
                meta["namespace"],
                uid=meta["uid"],
                resource_version=meta.get("resourceVersion"),
                propagation="Background",
            )

    async def _record_version(self, world: World, version: int) -> None:
        """The cluster runs `version` now: its repositories need a new stanza, and the backup
        that made replicas of the old major is of no use any more."""
        assert world.cluster is not None
        for job in world.jobs.values():
            labels = job["metadata"].get("labels") or {}
            if labels.get(naming.LABEL_PGBACKREST_BACKUP) == naming.BACKUP_REPLICA_CREATE:
                await self._delete(JOBS, job)
        meta = world.cluster["metadata"]
        await self.client.patch(
            CLUSTERS,
            meta["name"],
            {"status": {"postgresVersion": version, "pgbackrest": {"repos": []}}},
            namespace=meta["namespace"],
            subresource="status",
            field_manager=NAME,
        )


def _upgrades_of(cache: Cache) -> Callable[[JSON], Iterable[Request]]:
    """A cluster, or an object labelled with one, maps to the upgrades that name that cluster."""

    def mapper(obj: JSON) -> Iterable[Request]:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or ""
        cluster = (
            meta["name"]
            if obj.get("kind") == "PostgresCluster"
            else ((meta.get("labels") or {}).get(naming.LABEL_CLUSTER))
        )
        for upgrade in cache.list(UPGRADES, namespace):
            if upgrade["spec"].get("postgresClusterName") == cluster:
                yield Request(namespace, upgrade["metadata"]["name"])

    return mapper


def controller(
    cache: Cache, client: Client, recorder: EventRecorder, settings: Settings
) -> Controller:
    """The PGUpgrade controller with its watches, ready for a manager to run."""
    built = Controller(NAME, PGUpgradeReconciler(cache, client, recorder, settings))
    built.for_(UPGRADES)
    built.owns(JOBS, label_selector=CLUSTER_SELECTOR)
    mapper = _upgrades_of(cache)
    built.watches(CLUSTERS, mapper)
    built.watches(STATEFUL_SETS, mapper, label_selector=CLUSTER_SELECTOR)
    # Read, not followed: Patroni rewrites its Endpoints every few seconds, and the controller
    # requeues itself while it removes them.
    built.watches(ENDPOINTS, lambda _: (), label_selector=CLUSTER_SELECTOR)
    return built


async def setup(manager: Manager, settings: Settings) -> None:
    """Register the PGUpgrade controller with the manager (`reconciler run`)."""
    recorder = EventRecorder(manager.client, NAME)
    await manager.add(controller(manager.cache, manager.client, recorder, settings))
