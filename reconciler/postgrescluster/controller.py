"""The PostgresCluster controller: load, default, run the steps in order, report status.

Steps (`steps/`) are modules with one `reconcile(ctx)`; `STEPS` orders them. Each reads from
the cache (and the `Instances` observed once per reconcile) and writes only what differs, so a
converged cluster costs no write at all. A step that waits for something outside the cluster
returns a `Result` asking to be called again; the earliest one wins. What only the operator can
find wrong with a cluster becomes a condition and an Event, never a crash loop; a step that
fails still gets the status written, with the failure in it, before the error goes to back-off.
"""

from __future__ import annotations

import contextlib
import copy

import structlog

from reconciler import naming
from reconciler.api import (
    InvalidSpec,
    invalid_spec_condition,
    parse_postgres_cluster,
    with_defaults,
)
from reconciler.config import Settings
from reconciler.pgbackrest.postgres import backups_enabled
from reconciler.postgrescluster import delete, standby, status, watches
from reconciler.postgrescluster.context import (
    Context,
    Environment,
    Memory,
    Recorder,
    Step,
    image_key,
)
from reconciler.postgrescluster.observed import Reader, observe
from reconciler.postgrescluster.steps import (
    archiving,
    backups,
    cluster_config,
    database_init,
    disk_space,
    failover,
    instances,
    monitoring,
    node_loss,
    patroni,
    pgbackrest,
    pgbouncer,
    postgres_startup,
    postgres_users,
    rbac,
    restore,
    rollout,
    services,
    tls,
    users,
    volumes,
)
from reconciler.postgrescluster.watches import CLUSTERS
from reconciler.runtime import conditions
from reconciler.runtime.cache import Cache
from reconciler.runtime.client import JSON, ApiError, Client, NotFoundError
from reconciler.runtime.controller import Controller, Request, Result
from reconciler.runtime.events import EventRecorder
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import ENDPOINTS, STATEFUL_SETS

log = structlog.get_logger(__name__)

NAME = naming.FIELD_MANAGER
# The permissions of the controller's own calls, and those it grants to the instances.
RULES = (
    *watches.RULES,
    *pgbackrest.RULES,
    *restore.RULES,
    *volumes.RULES,
    *pgbouncer.RULES,
    *postgres_startup.RULES,
    *node_loss.RULES,
    *rbac.INSTANCE_RULES,
    rbac.OPENSHIFT_RULE,
)
STEPS: tuple[Step, ...] = (
    failover.reconcile,
    tls.reconcile,
    # Before `instances`, which recreates the claims node_loss deletes.
    node_loss.reconcile,
    services.reconcile,
    rbac.reconcile,
    restore.reconcile,
    volumes.reconcile,
    cluster_config.reconcile,
    monitoring.reconcile,
    instances.reconcile,
    disk_space.reconcile,
    postgres_startup.reconcile,
    rollout.reconcile,
    users.reconcile,
    postgres_users.reconcile,
    pgbouncer.reconcile,
    database_init.reconcile,
    pgbackrest.reconcile,
    backups.reconcile,
    archiving.reconcile,
    patroni.reconcile,
)


class PostgresClusterReconciler:
    """Reconciles one PostgresCluster per call; keeps a little memory per cluster."""

    def __init__(
        self, reader: Reader, client: Client, recorder: Recorder, environment: Environment
    ) -> None:
        self.reader = reader
        self.client = client
        self.recorder = recorder
        self.environment = environment
        self._memory: dict[str, Memory] = {}

    async def __call__(self, request: Request) -> Result | None:
        """Converge the cluster named by `request`."""
        cached = self.reader.get(CLUSTERS, request.namespace, request.name)
        if cached is None:
            return None
        raw = copy.deepcopy(cached)  # the cache is shared: never modify what it holds
        uid = raw["metadata"]["uid"]
        if raw["metadata"].get("deletionTimestamp"):
            result = await delete.teardown(self.reader, self.client, raw)
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
            instances=observe(self.reader, request.namespace, request.name),
            status=copy.deepcopy(raw.get("status") or {}),
            memory=self._memory.setdefault(uid, Memory()),
        )
        try:
            await self._ensure_finalizer(raw)
            result = await self._converge(ctx)
            await self._write_status(raw, ctx.status)
        except ApiError as error:
            if not namespace_terminating(error):
                raise
            # Nothing can be created there any more; the cluster's deletion follows.
            log.info("namespace is being deleted; waiting for the cluster's deletion")
            return None
        return result

    async def _converge(self, ctx: Context) -> Result | None:
        if _has_invalid_spec(ctx.status):
            ctx.clear_condition(naming.CONDITION_READY)  # the spec parses again
        await _report_unsupported(ctx)
        if ctx.spec.get("paused"):
            ctx.set_condition(
                naming.CONDITION_PROGRESSING,
                "False",
                naming.REASON_PAUSED,
                "No spec changes will be applied and no other statuses will be updated.",
            )
            return None
        annotations = ctx.raw["metadata"].get("annotations") or {}
        repo_host = ctx.cached(STATEFUL_SETS, naming.repo_host(ctx.name))
        if pgbackrest.removal_pending(ctx.spec, annotations, repo_host):
            paused = conditions.find(
                ctx.status.get("conditions") or [], naming.CONDITION_PROGRESSING
            )
            if paused is None or paused.get("reason") != naming.REASON_PAUSED:
                await ctx.warn("BackupRemovalNotAuthorized", pgbackrest.REMOVAL_MESSAGE)
            ctx.set_condition(
                naming.CONDITION_PROGRESSING,
                "False",
                naming.REASON_PAUSED,
                pgbackrest.REMOVAL_MESSAGE,
            )
            return None
        ctx.clear_condition(naming.CONDITION_PROGRESSING)
        if (
            backups_enabled(ctx.spec)
            and ctx.pgbackrest_image is None
            and not ctx.spec.get("shutdown")
        ):
            message = (
                "No image for pgBackRest: set spec.backups.pgbackrest.image, "
                "or set RELATED_IMAGE_PGBACKREST in the operator's environment"
            )
            await ctx.warn(naming.REASON_MISSING_IMAGE, message)
            ctx.set_condition(naming.CONDITION_READY, "False", naming.REASON_MISSING_IMAGE, message)
            return None
        if ctx.postgres_image is None and not ctx.spec.get("shutdown"):
            key = f"RELATED_IMAGE_{image_key(ctx.spec)}"
            message = (
                f"No image for PostgreSQL {ctx.spec['postgresVersion']}: set spec.image, "
                f"or set {key} in the operator's environment"
            )
            await ctx.warn(naming.REASON_MISSING_IMAGE, message)
            ctx.set_condition(naming.CONDITION_READY, "False", naming.REASON_MISSING_IMAGE, message)
            return None
        if problem := standby.problem(ctx.spec):
            # As PGO: nothing is reconciled, else the cluster would start as a primary.
            ready = conditions.find(ctx.status.get("conditions") or [], naming.CONDITION_READY)
            if ready is None or ready.get("message") != problem:
                await ctx.warn(naming.REASON_INVALID_STANDBY, problem)
            ctx.set_condition(
                naming.CONDITION_READY, "False", naming.REASON_INVALID_STANDBY, problem
            )
            return None
        self._observe_patroni(ctx)
        results: list[Result] = []
        for step in STEPS:
            if step is instances.reconcile and ctx.postgres_image is None:
                continue  # shut down with no image: nothing to run, nothing to roll
            try:
                result = await step(ctx)
            except Exception as error:
                await self._fail(ctx, step, error)
                raise
            if result is not None and result.requeue_after > 0:
                results.append(result)
        ctx.clear_condition(naming.CONDITION_RECONCILE_FAILED)
        ctx.set_condition(naming.CONDITION_READY, *status.ready(ctx.status, ctx.spec))
        ctx.status["observedGeneration"] = ctx.generation
        return min(results, key=lambda r: r.requeue_after, default=None)

    async def _fail(self, ctx: Context, step: Step, error: Exception) -> None:
        """Record a failed step in the status (and an Event when the failure is new), so that
        `kubectl describe` tells what the operator is stuck on while it retries."""
        if isinstance(error, ApiError) and namespace_terminating(error):
            return
        name = step.__module__.rsplit(".", 1)[-1]
        message = (
            f"step {name} failed: {str(error) or type(error).__name__}; the operator retries with "
            "back-off (its log has the details)"
        )
        previous = conditions.find(
            ctx.status.get("conditions") or [], naming.CONDITION_RECONCILE_FAILED
        )
        ctx.set_condition(
            naming.CONDITION_RECONCILE_FAILED, "True", naming.REASON_STEP_FAILED, message
        )
        with contextlib.suppress(ApiError):
            if previous is None or previous.get("message") != message:
                await ctx.warn(naming.REASON_RECONCILE_FAILED, message)
            await self._write_status(ctx.raw, ctx.status)

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
        current = copy.deepcopy(raw.get("status") or {})
        condition = invalid_spec_condition(error, generation)
        previous = conditions.find(current.get("conditions") or [], naming.CONDITION_READY)
        current["conditions"] = conditions.set_condition(
            current.get("conditions") or [],
            naming.CONDITION_READY,
            "False",
            naming.REASON_INVALID_SPEC,
            condition["message"],
            observed_generation=generation,
        )
        if previous is None or previous.get("message") != condition["message"]:
            message = f"{condition['message']}; correct the field and apply the manifest again"
            await self.recorder.event(raw, "Warning", naming.REASON_INVALID_SPEC, message)
        log.warning("invalid spec", field=error.field, error=error.message)
        await self._write_status(raw, current)

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

    async def _write_status(self, raw: JSON, new: JSON) -> None:
        patch = status.status_patch(raw.get("status") or {}, new)
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


async def _report_unsupported(ctx: Context) -> None:
    """A condition, and a Warning Event when it changes, naming the spec sections that are
    accepted but not acted on yet: never ignored silently."""
    fields = status.unsupported_fields(ctx.spec)
    if not fields:
        ctx.clear_condition(naming.CONDITION_UNSUPPORTED_SPEC)
        return
    message = status.unsupported_message(fields)
    previous = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_UNSUPPORTED_SPEC
    )
    ctx.set_condition(
        naming.CONDITION_UNSUPPORTED_SPEC, "True", naming.REASON_NOT_IMPLEMENTED, message
    )
    if previous is None or previous.get("message") != message:
        await ctx.warn(naming.REASON_UNSUPPORTED_SPEC, message)


def namespace_terminating(error: ApiError) -> bool:
    """Whether the API refused a write because the namespace is being deleted."""
    # Creates carry a NamespaceTerminating cause; server-side applies only the message.
    causes = (error.body.get("details") or {}).get("causes") or []
    return error.status == 403 and (
        any(c.get("type") == "NamespaceTerminating" for c in causes)
        or "because it is being terminated" in str(error.body.get("message", ""))
    )


def _has_invalid_spec(current: JSON) -> bool:
    ready = conditions.find(current.get("conditions") or [], naming.CONDITION_READY)
    return ready is not None and ready.get("reason") == naming.REASON_INVALID_SPEC


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
    reconciler = PostgresClusterReconciler(
        watches.ClusterReader(cache), client, recorder, environment
    )
    built = watches.watch(Controller(name, reconciler, workers=workers), cache)
    return watches.watch_nodes(built, cache) if environment.node_loss_recovery else built


async def setup(manager: Manager, settings: Settings) -> None:
    """Register the PostgresCluster controller with the manager (`reconciler run`)."""
    environment = Environment(
        images=settings.images,
        instance_sidecars=settings.feature_gates.get("InstanceSidecars", True),
        auto_create_user_schema=settings.feature_gates.get("AutoCreateUserSchema", True),
        pgbouncer_sidecars=settings.feature_gates.get("PGBouncerSidecars", False),
        auto_grow_volumes=settings.feature_gates.get("AutoGrowVolumes", False),
        append_custom_queries=settings.feature_gates.get("AppendCustomQueries", False),
        node_loss_recovery=settings.feature_gates.get("InstanceNodeLossRecovery", False),
        node_loss_after=settings.node_loss_after,
    )
    recorder = EventRecorder(manager.client, NAME)
    await manager.add(
        controller(manager.cache, manager.client, recorder, environment, workers=settings.workers)
    )
