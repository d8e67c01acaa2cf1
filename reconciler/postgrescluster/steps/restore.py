"""Subreconciler: restores from pgBackRest repositories, with PGO's fields, names and status.

- In place (`spec.backups.pgbackrest.restore` with `enabled: true`, run when the annotation
  `postgres-operator.crunchydata.com/pgbackrest-restore` takes a new value): the request is
  checked first (options, repository, and, against `pgbackrest info`, the target), and a request
  that cannot succeed is refused before anything stops. Then the instances stop, primary last;
  the Job `<c>-pgbackrest-restore` restores into the volumes of a new instance; on success the
  old instances go (the old primary's volumes are kept, detached: the way back), Patroni's
  records go, and the new instance bootstraps the cluster on a new timeline while replicas are
  created anew from it. On failure the new volumes go and the old instances start again, on
  their data, with the error in a condition and an Event.
- Bootstrap of a new cluster (`spec.dataSource.postgresCluster`, `spec.dataSource.pgbackrest`):
  no instance starts until the Job has filled the first one's volumes
  (`PostgresDataInitialized`).

Beyond PGO, while a restore is enabled the condition `PGBackRestRestorePreview` tells which
backup and WAL the target resolves to, so a wrong target shows before the cluster stops.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from dataclasses import dataclass, field

import orjson
import structlog

from reconciler import naming
from reconciler.pgbackrest import config, restore
from reconciler.pgbackrest.postgres import backups_enabled
from reconciler.postgrescluster import data_source, instance_objects, job_logs
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import instance_of, is_primary, pod_ready
from reconciler.postgrescluster.watches import CLUSTERS
from reconciler.runtime import conditions, jobs, podexec
from reconciler.runtime.client import JSON, ApiError, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.rbac import Rule
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    ENDPOINTS,
    JOBS,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    SECRETS,
    STATEFUL_SETS,
)

log = structlog.get_logger(__name__)

RULES = (Rule("", ("pods/log",), ("get",), "A failed restore Job's log: pgBackRest's error."),)
RETRY = Result(requeue_after=2.0)
# How often the preview asks the repository again while nothing else changed.
PREVIEW_SECONDS = 60.0
REASON_INVALID = "InvalidDataSource"  # PGO's Event reason for a data source it refuses


@dataclass
class Plan:
    """A restore, resolved: what the Job runs and the objects it needs beside it."""

    source: JSON  # the section with the Job's settings (restore or data source)
    repo: str
    stanza: str
    request: restore.Request
    options: list[str]
    conf: str
    digest: str
    certificates: JSON | None = None  # the source's `<source>-pgbackrest` data
    copies: list[JSON] = field(default_factory=list)
    configuration: list[JSON] = field(default_factory=list)
    # Where `pgbackrest info` can run against the repository: (namespace, cluster).
    info_from: tuple[str, str] | None = None


async def reconcile(ctx: Context) -> Result | None:
    """Carry an in-place restore or a bootstrap restore one step further."""
    job = ctx.cached(JOBS, naming.restore_job(ctx.name))
    entry = (ctx.status.get("pgbackrest") or {}).get("restore")
    if job is not None and entry is not None and _job_id(job) == entry.get("id"):
        jobs.record(entry, job)
    done = ctx.bootstrapped and not restore.restoring_in_place(ctx.status)
    if job is not None and done and jobs.finished(job) == "Complete":
        # Its data became the cluster's (PGO removes it then too); a failed one stays, for
        # its log, until the next restore.
        await ctx.delete(JOBS, job)
        job = None
    section = _restore_spec(ctx)
    if section is None:
        ctx.clear_condition(naming.CONDITION_PGBACKREST_RESTORE_PREVIEW)
    elif not restore.restoring_in_place(ctx.status):
        await _preview(ctx, section)
    if _in_place_requested(ctx) or restore.restoring_in_place(ctx.status):
        return await _in_place(ctx, job)
    if data_source.initialized_by_bootstrap(ctx.spec, ctx.status):
        ctx.set_condition(
            naming.CONDITION_POSTGRES_DATA_INITIALIZED,
            "True",
            "ClusterAlreadyBootstrapped",
            "The cluster is already bootstrapped",
        )
    if data_source.restore_source(ctx.spec) is not None:
        return await _bootstrap(ctx, job)
    return None


def _job_id(job: JSON) -> str:
    return str((job["metadata"].get("annotations") or {}).get(naming.ANNOTATION_PGBACKREST_RESTORE))


def _restore_spec(ctx: Context) -> JSON | None:
    if not backups_enabled(ctx.spec):
        return None
    section = ctx.spec["backups"]["pgbackrest"].get("restore") or {}
    return section if section.get("enabled") else None


def _in_place_requested(ctx: Context) -> bool:
    wanted = (ctx.raw["metadata"].get("annotations") or {}).get(
        naming.ANNOTATION_PGBACKREST_RESTORE
    )
    return bool(wanted) and _restore_spec(ctx) is not None


async def _in_place(ctx: Context, job: JSON | None) -> Result | None:
    if not restore.restoring_in_place(ctx.status) and not await _accept_request(ctx):
        return None
    entry: JSON = ctx.status["pgbackrest"]["restore"]
    if job is not None and _job_id(job) != entry["id"]:
        await ctx.delete(JOBS, job)  # a former restore's
        return RETRY
    if job is None:
        return await _start_in_place(ctx, entry["id"])
    outcome = jobs.finished(job)
    if outcome == "Failed":
        return await _in_place_failed(ctx, job)
    if outcome == "Complete":
        return await _replace_instances(ctx, job)
    return None


async def _in_place_failed(ctx: Context, job: JSON) -> Result | None:
    """The restore failed: its volumes go first, and only once the cache shows them deleted
    does the restore end. The instances step, which runs again then, would otherwise count
    them as an instance of the set and, the set then one too many, remove an old instance
    with its volumes."""
    if await _remove_new_instance(ctx, job):
        return RETRY
    await _job_failed(ctx, job, in_place=True)
    return None


async def _accept_request(ctx: Context) -> bool:
    """Whether a new in-place restore starts: a new value of the annotation, and a request
    that can succeed. A refused request is settled (a new annotation value asks again), so
    that correcting the spec later never starts a restore by itself."""
    section = _restore_spec(ctx)
    assert section is not None
    wanted = str(ctx.raw["metadata"]["annotations"][naming.ANNOTATION_PGBACKREST_RESTORE])
    pgbackrest: JSON = ctx.status.setdefault("pgbackrest", {})
    if (pgbackrest.get("restore") or {}).get("id") == wanted:
        return False  # done, failed or refused
    try:
        plan = await _plan(ctx, section, in_place=True)
        await _check_repository(ctx, plan)
    except restore.InvalidRestore as error:
        pgbackrest["restore"] = {"id": wanted, "finished": True}
        message = f"restore {wanted!r} refused, nothing was stopped: {error}"
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING, "False", "RestoreRefused", message
        )
        await ctx.warn(
            REASON_INVALID,
            f"{message}; correct spec.backups.pgbackrest.restore and set a new value of "
            f"the {naming.ANNOTATION_PGBACKREST_RESTORE} annotation",
        )
        return False
    # PGO's reset: the repositories' state (stanza, replica-create backup) starts anew.
    ctx.status["pgbackrest"] = {"restore": {"id": wanted, "finished": False}}
    for stale in (
        naming.CONDITION_PGBACKREST_REPLICA_REPO_READY,
        naming.CONDITION_PGBACKREST_REPLICA_CREATE,
    ):
        ctx.clear_condition(stale)
    ctx.set_condition(
        naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING,
        "True",
        "RestoreInPlaceRequested",
        "Preparing cluster to restore in-place: stopping the instances",
    )
    await ctx.recorder.event(
        ctx.raw,
        "Normal",
        "RestoreInPlaceRequested",
        f"restore {wanted!r}: stopping the instances, then restoring {plan.repo} into a new "
        "instance",
    )
    return True


async def _start_in_place(ctx: Context, identifier: str) -> Result | None:
    """Once every instance stopped, start the Job into a new instance of the primary's set."""
    if ctx.instances.pods:
        return RETRY  # the instances step stops them, the primary last
    try:
        plan = await _plan(ctx, _restore_spec(ctx) or {}, in_place=True)
    except restore.InvalidRestore as error:
        await _failed(ctx, None, str(error), in_place=True)
        return None
    await _start(ctx, plan, identifier, str(ctx.status.get("startupInstanceSet") or ""))
    ctx.set_condition(
        naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING,
        "True",
        "ReadyForRestore",
        "Restoring cluster in-place",
    )
    return None


async def _bootstrap(ctx: Context, job: JSON | None) -> Result | None:
    """Fill the first instance's volumes of a new cluster from its data source."""
    if not data_source.awaiting_data(ctx.spec, ctx.status):
        return None  # restored: the instance bootstraps from it
    identifier = naming.bootstrap_restore_id(ctx.name)
    pgbackrest: JSON = ctx.status.setdefault("pgbackrest", {})
    if (pgbackrest.get("restore") or {}).get("id") != identifier:
        pgbackrest["restore"] = {"id": identifier, "finished": False}
    source = data_source.restore_source(ctx.spec) or {}
    try:
        plan = await _plan(ctx, next(iter(source.values())), in_place=False)
        if job is None:
            await _check_repository(ctx, plan)
    except restore.InvalidRestore as error:
        await _data_condition(ctx, "False", REASON_INVALID, str(error), warn=True)
        return None
    if (
        job is not None
        and (job["metadata"].get("annotations") or {}).get(naming.ANNOTATION_PGBACKREST_HASH)
        != plan.digest
    ):
        # The data source changed (after a failure, say): start over from an empty volume.
        await _remove_new_instance(ctx, job)
        await ctx.delete(JOBS, job)
        pgbackrest["restore"] = {"id": identifier, "finished": False}
        return RETRY
    if job is None:
        await _start(ctx, plan, identifier, "")
        await _data_condition(
            ctx, "False", "RestoreRunning", f"pgBackRest restores {plan.repo} of the data source"
        )
        return None
    outcome = jobs.finished(job)
    if outcome == "Failed":
        await _job_failed(ctx, job, in_place=False)
    elif outcome == "Complete":
        await _restored(ctx, job)
    return None


async def _data_condition(
    ctx: Context, status: str, reason: str, message: str, *, warn: bool = False
) -> None:
    previous = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_POSTGRES_DATA_INITIALIZED
    )
    ctx.set_condition(naming.CONDITION_POSTGRES_DATA_INITIALIZED, status, reason, message)
    if warn and (previous is None or previous.get("message") != message):
        await ctx.warn(reason, f"spec.dataSource: {message}")


async def _plan(ctx: Context, section: JSON, *, in_place: bool) -> Plan:
    """Resolve a restore section (in place, or a data source) to what the Job needs;
    `InvalidRestore` when it cannot succeed."""
    options = list(section.get("options") or [])
    request = restore.parse_options(options)
    if "stanza" in section and "repo" in section:
        return _cloud_plan(ctx, section, request, options)
    name = section.get("clusterName") or ctx.name
    namespace = section.get("clusterNamespace") or ctx.namespace
    repo = str(section["repoName"])
    if in_place or (name, namespace) == (ctx.name, ctx.namespace):
        source_cluster = ctx.raw
    else:
        found = ctx.reader.get(CLUSTERS, namespace, name)
        if found is None:
            raise restore.InvalidRestore(
                f'PostgresCluster "{name}" does not exist in namespace "{namespace}" '
                "(or the operator does not watch that namespace)"
            )
        source_cluster = found
    source_spec = source_cluster.get("spec") or {}
    repos = [
        r["name"]
        for r in ((source_spec.get("backups") or {}).get("pgbackrest") or {}).get("repos") or []
    ]
    if repo not in repos:
        raise restore.InvalidRestore(
            f'PostgresCluster "{name}" has no repository "{repo}" '
            f"(it has: {', '.join(repos) or 'none'}); set repoName to one of them"
        )
    if int(source_spec.get("postgresVersion", 0)) != int(ctx.spec["postgresVersion"]):
        raise restore.InvalidRestore(
            f'PostgresCluster "{name}" runs PostgreSQL {source_spec.get("postgresVersion")}; '
            f"a restore needs the same major version ({ctx.spec['postgresVersion']})"
        )
    conf = _source_conf(ctx, name, namespace)
    certificates = _source_secret(ctx, name, namespace)
    configuration = list(source_spec["backups"]["pgbackrest"].get("configuration") or [])
    copies = [
        restore.copied(ctx.owner, obj, index)
        for index, obj in await _projected_objects(ctx, configuration, namespace)
    ]
    return Plan(
        source=section,
        repo=repo,
        stanza=config.STANZA,
        request=request,
        options=options,
        conf=conf,
        digest=restore.source_hash([namespace, name, repo, *options]),
        certificates=certificates,
        copies=copies,
        configuration=restore.copied_projections(configuration),
        info_from=(namespace, name),
    )


def _cloud_plan(ctx: Context, section: JSON, request: restore.Request, options: list[str]) -> Plan:
    repo = section["repo"]
    return Plan(
        source=section,
        repo=str(repo["name"]),
        stanza=str(section.get("stanza") or config.STANZA),
        request=request,
        options=options,
        conf=restore.cloud_conf(section),
        digest=restore.source_hash(
            [
                orjson.dumps(repo, option=orjson.OPT_SORT_KEYS).decode(),
                str(section.get("stanza")),
                *options,
            ]
        ),
        configuration=list(section.get("configuration") or []),
    )


def _source_conf(ctx: Context, name: str, namespace: str) -> str:
    source = ctx.reader.get(CONFIG_MAPS, namespace, naming.pgbackrest_config(name)) or {}
    conf = (source.get("data") or {}).get(config.INSTANCE_CONF_KEY)
    if not conf:
        raise restore.InvalidRestore(
            f'PostgresCluster "{name}" has no pgBackRest configuration yet '
            f"(ConfigMap {naming.pgbackrest_config(name)}): wait until its backups are set up"
        )
    return str(conf)


def _source_secret(ctx: Context, name: str, namespace: str) -> JSON | None:
    secret = ctx.reader.get(SECRETS, namespace, naming.pgbackrest_secret(name))
    if secret is None:
        return None  # no repository host: cloud repositories only
    return dict(secret.get("data") or {})


async def _projected_objects(
    ctx: Context, configuration: list[JSON], namespace: str
) -> list[tuple[int, JSON]]:
    """The ConfigMaps and Secrets the source projects into its pgBackRest configuration."""
    found = []
    for index, projection in enumerate(configuration):
        for key, resource in (("secret", SECRETS), ("configMap", CONFIG_MAPS)):
            reference = projection.get(key)
            if not reference:
                continue
            try:
                obj = await ctx.client.get(resource, reference["name"], namespace)
            except NotFoundError:
                if reference.get("optional"):
                    continue
                raise restore.InvalidRestore(
                    f'{resource.kind} "{reference["name"]}" of the source\'s '
                    f"spec.backups.pgbackrest.configuration does not exist in {namespace}"
                ) from None
            found.append((index, {**obj, "kind": resource.kind}))
    return found


async def _check_repository(ctx: Context, plan: Plan) -> None:
    """What only the repository can tell (the target against its backups), asked where the
    source's primary runs; skipped when none is ready (the Job then tells)."""
    found = await _info(ctx, plan)
    if found is not None:
        restore.preview(found, plan.request, plan.repo, now=_now())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _info(ctx: Context, plan: Plan) -> object | None:
    if plan.info_from is None:
        return None
    namespace, cluster = plan.info_from
    selector: dict[str, str | None] = {naming.LABEL_CLUSTER: cluster, naming.LABEL_INSTANCE: None}
    pods = [p for p in ctx.reader.list(PODS, namespace, selector) if is_primary(p)]
    if not pods or not pod_ready(pods[0]):
        return None
    argv = restore.info_argv(plan.stanza, plan.repo)
    name = pods[0]["metadata"]["name"]
    try:
        done = await podexec.run(
            ctx.client, namespace, name, naming.CONTAINER_DATABASE, argv, timeout=60
        )
        if done.exit_code == 0:
            found: object = orjson.loads(done.stdout)
            return found
        error: object = done.stderr.decode(errors="replace").strip()
    except (
        ApiError,
        podexec.ExecError,
        ConnectionError,
        TimeoutError,
        orjson.JSONDecodeError,
    ) as failure:
        error = failure
    log.info("pgbackrest info unavailable", pod=name, error=str(error))
    return None


async def _preview(ctx: Context, section: JSON) -> None:
    """`PGBackRestRestorePreview`: what the enabled restore would restore, refreshed when its
    options change and every PREVIEW_SECONDS."""
    key = restore.source_hash([str(section.get("repoName")), *(section.get("options") or [])])
    last_key, last_time = ctx.memory.restore_previewed
    if key == last_key and time.monotonic() - last_time < PREVIEW_SECONDS:
        return
    try:
        plan = await _plan(ctx, section, in_place=True)
        found = await _info(ctx, plan)
        if found is None:
            return
        preview = restore.preview(found, plan.request, plan.repo, now=_now())
    except restore.InvalidRestore as error:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_RESTORE_PREVIEW, "False", "TargetUnreachable", str(error)
        )
    else:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_RESTORE_PREVIEW,
            "True",
            "TargetResolved",
            preview.message(plan.repo, plan.request),
        )
    ctx.memory.restore_previewed = (key, time.monotonic())


async def _start(ctx: Context, plan: Plan, identifier: str, set_name: str) -> None:
    """Create the restore Job, then the new instance's empty volumes it fills: the Job
    (found by its label) is the record of which instance the restore made."""
    sets = {s["name"]: s for s in ctx.spec["instances"]}
    instance_set = sets.get(set_name) or ctx.spec["instances"][0]
    instance = naming.generate_instance(ctx.name, instance_set["name"])
    wal_volume = bool(instance_set.get("walVolumeClaimSpec"))
    options = restore.restore_options(
        plan.options,
        stanza=plan.stanza,
        repo=plan.repo,
        postgres_version=int(ctx.spec["postgresVersion"]),
        wal_volume=wal_volume,
    )
    await ctx.apply(CONFIG_MAPS, restore.config_map(ctx.owner, plan.conf))
    if plan.certificates is not None:
        await ctx.apply(SECRETS, restore.secret(ctx.owner, plan.certificates))
    for copy in plan.copies:
        await ctx.apply(CONFIG_MAPS if copy["kind"] == "ConfigMap" else SECRETS, copy)
    job = restore.restore_job(
        ctx.owner,
        ctx.spec,
        str(ctx.postgres_image),
        instance_set=instance_set,
        instance=instance,
        source=plan.source,
        options=options,
        configuration=plan.configuration,
        certificates=plan.certificates is not None,
        source_digest=plan.digest,
        identifier=identifier,
    )
    await ctx.apply(JOBS, job)
    await ctx.apply(
        PERSISTENT_VOLUME_CLAIMS, instance_objects.data_volume(ctx.owner, instance_set, instance)
    )
    if wal_volume:
        await ctx.apply(
            PERSISTENT_VOLUME_CLAIMS,
            instance_objects.data_volume(ctx.owner, instance_set, instance, wal=True),
        )


async def _job_failed(ctx: Context, job: JSON, *, in_place: bool) -> None:
    error = await job_logs.job_error(ctx, job, naming.CONTAINER_PGBACKREST_RESTORE)
    await _failed(ctx, job, error, in_place=in_place)


async def _failed(ctx: Context, job: JSON | None, error: str, *, in_place: bool) -> None:
    """A restore that failed: its new volumes go, the Job stays (its log), and the cluster
    goes on with what it had."""
    entry = (ctx.status.get("pgbackrest") or {}).get("restore") or {}
    entry["finished"] = True
    if job is not None:
        await _remove_new_instance(ctx, job)
    await _remove_restore_config(ctx)
    identifier = entry.get("id", "")
    if in_place:
        message = (
            f"restore {identifier!r} failed: {error}; the cluster starts again on its data "
            f"from before the restore (kubectl logs job/{naming.restore_job(ctx.name)})"
        )
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING, "False", "RestoreFailed", message
        )
        await ctx.warn("RestoreFailed", message)
        return
    await _data_condition(
        ctx,
        "False",
        "PGBackRestRestoreFailed",
        f"pgBackRest restore failed: {error}; correct spec.dataSource to try again "
        f"(kubectl logs job/{naming.restore_job(ctx.name)})",
        warn=True,
    )


async def _remove_new_instance(ctx: Context, job: JSON) -> bool:
    """Delete the volumes the Job restored into; whether the cache still showed any of them
    not being deleted."""
    instance = (job["metadata"].get("labels") or {}).get(naming.LABEL_STARTUP_INSTANCE)
    if not instance:
        return False
    pending = False
    for claim in ctx.cluster_objects(PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_INSTANCE: instance}):
        if not claim["metadata"].get("deletionTimestamp"):
            pending = True
            await ctx.delete(PERSISTENT_VOLUME_CLAIMS, claim)
    return pending


async def _remove_restore_config(ctx: Context) -> None:
    selector: dict[str, str | None] = {naming.LABEL_PGBACKREST_RESTORE_CONFIG: None}
    for resource in (CONFIG_MAPS, SECRETS):
        for obj in ctx.cluster_objects(resource, selector):
            await ctx.delete(resource, obj)


async def _replace_instances(ctx: Context, job: JSON) -> Result | None:
    """After an in-place restore succeeded: the old instances and Patroni's records go, and
    the restored instance is recorded to start first and bootstrap the cluster."""
    new = str(job["metadata"]["labels"][naming.LABEL_STARTUP_INSTANCE])
    pending = await _remove_old_instances(ctx, new)
    for backup in ctx.cluster_objects(
        JOBS, {naming.LABEL_PGBACKREST_BACKUP: naming.BACKUP_REPLICA_CREATE}
    ):
        await ctx.delete(JOBS, backup)  # of the old timeline: replicas must not start from it
    records = ctx.reader.list(ENDPOINTS, ctx.namespace, naming.patroni_record_labels(ctx.name))
    for record in records:
        await ctx.delete(ENDPOINTS, record)
    if pending or records:
        return RETRY  # until the cache shows all of it gone
    ctx.memory.pending_instances.clear()
    await _restored(ctx, job)
    ctx.clear_condition(naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING)
    return None


async def _remove_old_instances(ctx: Context, new: str) -> bool:
    """Remove every instance but `new`, keeping the old primary's volumes, detached and
    labelled with the restore (one restore's worth: an earlier restore's go now); whether
    anything was still there."""
    identifier = ctx.status["pgbackrest"]["restore"]["id"]
    old_primary = str(ctx.status.get("startupInstance") or "")
    pending = bool(ctx.instances.statefulsets)
    for sts in ctx.instances.statefulsets:
        selector: dict[str, str | None] = {naming.LABEL_INSTANCE: sts["metadata"]["name"]}
        for resource in (STATEFUL_SETS, CONFIG_MAPS, SECRETS):
            for obj in ctx.cluster_objects(resource, selector):
                await ctx.delete(resource, obj)
    for claim in ctx.cluster_objects(PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_INSTANCE: None}):
        if instance_of(claim) == new:
            continue
        pending = True
        if claim["metadata"].get("deletionTimestamp"):
            continue
        if instance_of(claim) == old_primary:
            await _detach(ctx, claim, identifier)
        else:
            await ctx.delete(PERSISTENT_VOLUME_CLAIMS, claim)
    for role in (naming.ROLE_POSTGRES_DATA_BEFORE_RESTORE, naming.ROLE_POSTGRES_WAL_BEFORE_RESTORE):
        for claim in ctx.cluster_objects(PERSISTENT_VOLUME_CLAIMS, {naming.LABEL_ROLE: role}):
            annotations = claim["metadata"].get("annotations") or {}
            if annotations.get(naming.ANNOTATION_PGBACKREST_RESTORE) != identifier:
                await ctx.delete(PERSISTENT_VOLUME_CLAIMS, claim)
    return pending


async def _detach(ctx: Context, claim: JSON, identifier: str) -> None:
    """Keep a volume of the replaced primary out of every instance, named by the restore."""
    wal = (claim["metadata"].get("labels") or {}).get(naming.LABEL_ROLE) == naming.ROLE_POSTGRES_WAL
    role = (
        naming.ROLE_POSTGRES_WAL_BEFORE_RESTORE if wal else naming.ROLE_POSTGRES_DATA_BEFORE_RESTORE
    )
    patch = {
        "metadata": {
            "labels": {
                naming.LABEL_INSTANCE: None,
                naming.LABEL_INSTANCE_SET: None,
                naming.LABEL_ROLE: role,
            },
            "annotations": {naming.ANNOTATION_PGBACKREST_RESTORE: identifier},
        }
    }
    with contextlib.suppress(NotFoundError):
        await ctx.client.patch(
            PERSISTENT_VOLUME_CLAIMS, claim["metadata"]["name"], patch, namespace=ctx.namespace
        )


async def _restored(ctx: Context, job: JSON) -> None:
    """The Job filled the new instance's volumes: it starts first, and Patroni bootstraps
    the cluster from its data."""
    new = str(job["metadata"]["labels"][naming.LABEL_STARTUP_INSTANCE])
    claim = ctx.cached(PERSISTENT_VOLUME_CLAIMS, naming.instance_data_volume(new))
    set_name = (claim or {}).get("metadata", {}).get("labels", {}).get(naming.LABEL_INSTANCE_SET)
    ctx.status["startupInstance"] = new
    ctx.status["startupInstanceSet"] = set_name or ctx.spec["instances"][0]["name"]
    (ctx.status.get("patroni") or {}).pop("systemIdentifier", None)
    # The restored roles have the passwords of their time, and the data may predate pooling:
    # the users and pgBouncer steps run their SQL again (PGO clears the latter too).
    ctx.status.pop("usersRevision", None)
    ((ctx.status.get("proxy") or {}).get("pgBouncer") or {}).pop("postgresRevision", None)
    ctx.set_condition(
        naming.CONDITION_POSTGRES_DATA_INITIALIZED,
        "True",
        "PGBackRestRestoreComplete",
        "pgBackRest restore completed successfully",
    )
    await _remove_restore_config(ctx)
    identifier = ctx.status["pgbackrest"]["restore"].get("id", "")
    await ctx.recorder.event(
        ctx.raw,
        "Normal",
        "RestoreComplete",
        f"restore {identifier!r} complete: instance {new} starts first and bootstraps the "
        "cluster from the restored data; replicas are created from it",
    )
