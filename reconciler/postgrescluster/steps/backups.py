"""Subreconciler: pgBackRest's backup Jobs, as PGO runs them.

The replica-create backup comes first, once the stanza exists: a full backup in the first
repository, after which new replicas restore from it instead of copying the primary (see
`instances._replica_methods`). Manual backups follow, one per value of the
`pgbackrest-backup` annotation (with `spec.backups.pgbackrest.manual`). Each Job runs Crunchy's
pgBackRest image, which execs `pgbackrest backup` in the repository host. A Job that failed, or
that was made for another configuration, is replaced; finished ones stay until their TTL.
"""

from __future__ import annotations

import re
import secrets

from reconciler import naming
from reconciler.intent import Owner, batch_job, metadata
from reconciler.pgbackrest import config, pods, restore
from reconciler.pgbackrest.postgres import backups_enabled
from reconciler.postgrescluster.context import Context
from reconciler.runtime import conditions, jobs
from reconciler.runtime.client import JSON
from reconciler.runtime.controller import Result
from reconciler.runtime.resources import CRON_JOBS, JOBS


def job_name(cluster: str) -> str:
    """A new backup Job's name: `<c>-backup-` and four random characters (PGO's)."""
    suffix = "".join(secrets.choice(naming.SAFE_ALPHABET) for _ in range(4))
    return naming.backup_job_prefix(cluster) + suffix


def _labels(owner: Owner, repo: str, kind: str) -> dict[str, str]:
    return {
        **naming.pgbackrest_labels(owner.name),
        naming.LABEL_PGBACKREST_BACKUP: kind,
        naming.LABEL_PGBACKREST_REPO: repo,
    }


def _backup_job(
    owner: Owner,
    spec: JSON,
    image: str,
    *,
    repo: str,
    options: list[str],
    meta: JSON,
    log_claim: str | None,
) -> JSON:
    """A Job of `meta` that runs `pgbackrest backup` of `repo`: what every backup runs."""
    arguments = [f"--stanza={config.STANZA}", f"--repo={config.repo_number(repo)}", *options]
    repo_spec = next(r for r in spec["backups"]["pgbackrest"]["repos"] if r["name"] == repo)
    pod = pods.backup_job_pod(
        owner.name,
        owner.namespace,
        spec,
        image,
        repo=repo_spec,
        arguments=arguments,
        log_claim=log_claim,
    )
    ttl = (spec["backups"]["pgbackrest"].get("jobs") or {}).get("ttlSecondsAfterFinished")
    return batch_job(
        meta, pod, pod_annotations=meta.get("annotations") or {}, ttl_seconds_after_finished=ttl
    )


def backup_job(
    owner: Owner,
    spec: JSON,
    image: str,
    *,
    name: str,
    repo: str,
    kind: str,
    options: list[str],
    annotations: dict[str, str],
    log_claim: str | None = None,
) -> JSON:
    """A backup Job of `repo` (`kind`: replica-create or manual)."""
    annotations = {**annotations, naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_PGBACKREST}
    extra = spec["backups"]["pgbackrest"].get("metadata")
    meta = metadata(owner, name, _labels(owner, repo, kind), annotations, extra=extra)
    return _backup_job(
        owner, spec, image, repo=repo, options=options, meta=meta, log_claim=log_claim
    )


# spec.backups.pgbackrest.repos[].schedules: the field, and pgBackRest's name of the type.
BACKUP_TYPES = (("full", "full"), ("differential", "diff"), ("incremental", "incr"))
# Beyond PGO: after an outage of the operator or the control plane, a missed backup starts
# only within this long of its time, so no burst of overdue backups follows.
STARTING_DEADLINE_SECONDS = 300


def cron_job(
    owner: Owner,
    spec: JSON,
    image: str,
    *,
    repo: str,
    kind: str,
    schedule: str,
    log_claim: str | None = None,
) -> JSON:
    """The CronJob of `repo`'s scheduled backups of one type: one at a time (Forbid)."""
    labels = {
        **_labels(owner, repo, naming.BACKUP_SCHEDULED),
        naming.LABEL_PGBACKREST_CRONJOB: kind,
    }
    annotations = {naming.ANNOTATION_DEFAULT_CONTAINER: naming.CONTAINER_PGBACKREST}
    extra = spec["backups"]["pgbackrest"].get("metadata")
    name = naming.backup_cron_job(owner.name, repo, kind)
    meta = metadata(owner, name, labels, annotations, extra=extra)
    template = _backup_job(
        owner, spec, image, repo=repo, options=[f"--type={kind}"], meta=meta, log_claim=log_claim
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": meta,
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "suspend": bool(spec.get("shutdown") or (spec.get("standby") or {}).get("enabled")),
            "jobTemplate": {
                "metadata": {
                    "labels": meta["labels"],
                    "annotations": meta.get("annotations") or {},
                },
                "spec": template["spec"],
            },
        },
    }


def running(job: JSON) -> bool:
    """Whether a backup Job may be running a backup: neither finished nor suspended."""
    return jobs.finished(job) is None and not (job.get("spec") or {}).get("suspend")


async def reconcile(ctx: Context) -> Result | None:
    """Run the replica-create backup, then keep the schedules and run manual backups."""
    if not backups_enabled(ctx.spec) or ctx.pgbackrest_image is None:
        return None
    await _one_at_a_time(ctx)
    await _replica_create(ctx, ctx.pgbackrest_image)
    await _scheduled(ctx, ctx.pgbackrest_image)
    await _manual(ctx, ctx.pgbackrest_image)
    return None


async def _one_at_a_time(ctx: Context) -> None:
    """Beyond PGO (its issue #3439): one backup Job per cluster at a time. The operator starts
    its own Jobs only when no other runs; a scheduled Job that the CronJob controller started
    beside a running one is deleted, with an Event. CronJobs still start without the operator
    (backups do not depend on it), and pgBackRest's own lock refuses a second backup of a
    stanza in the moments before the operator sees the newcomer."""
    active = sorted(
        (
            j
            for j in ctx.cluster_objects(JOBS, {naming.LABEL_PGBACKREST_BACKUP: None})
            if running(j)
        ),
        key=lambda j: (j["metadata"].get("creationTimestamp", ""), j["metadata"]["name"]),
    )
    if len(active) < 2:
        return
    # A manual or replica-create Job is never the newcomer; keep the first such, else the oldest.
    kept = next((j for j in active if not _from_schedule(j)), active[0])
    for job in active:
        if job is kept or not _from_schedule(job) or not await ctx.delete(JOBS, job):
            continue
        await ctx.warn(
            "BackupSkipped",
            f"Scheduled backup Job {job['metadata']['name']} skipped: backup Job "
            f"{kept['metadata']['name']} is still running (one backup per cluster at a time)",
        )


def _from_schedule(job: JSON) -> bool:
    return naming.LABEL_PGBACKREST_CRONJOB in (job["metadata"].get("labels") or {})


def _another_running(ctx: Context) -> bool:
    """Whether a backup Job is running (see `_one_at_a_time`)."""
    return any(
        running(j) for j in ctx.cluster_objects(JOBS, {naming.LABEL_PGBACKREST_BACKUP: None})
    )


async def _scheduled(ctx: Context, image: str) -> None:
    """One CronJob per repository and backup type with a schedule, once the replica-create
    backup is done; those of removed schedules go. `status.pgbackrest.scheduledBackups`
    reports the Jobs they started."""
    wanted: dict[str, JSON] = {}
    for repo in ctx.spec["backups"]["pgbackrest"]["repos"]:
        for field, kind in BACKUP_TYPES:
            if schedule := (repo.get("schedules") or {}).get(field):
                name = naming.backup_cron_job(ctx.name, repo["name"], kind)
                wanted[name] = cron_job(
                    ctx.owner,
                    ctx.spec,
                    image,
                    repo=repo["name"],
                    kind=kind,
                    schedule=schedule,
                    log_claim=config.cloud_log_claim(ctx.raw),
                )
    for existing in ctx.cluster_objects(CRON_JOBS, {naming.LABEL_PGBACKREST_CRONJOB: None}):
        if existing["metadata"]["name"] not in wanted:
            await ctx.delete(CRON_JOBS, existing)
    ready = ctx.bootstrapped and conditions.is_true(
        ctx.status, naming.CONDITION_PGBACKREST_REPLICA_CREATE
    )
    restoring = restore.restoring_in_place(ctx.status)
    for intent in wanted.values():
        repo = intent["metadata"]["labels"][naming.LABEL_PGBACKREST_REPO]
        entry = _repo_status(ctx, repo)
        if restoring:
            # Beyond PGO: no scheduled backup starts while the instances are down for a
            # restore (it could only fail); the schedules resume with the restored cluster.
            if ctx.cached(CRON_JOBS, intent["metadata"]["name"]) is not None:
                intent["spec"]["suspend"] = True
                await ctx.apply(CRON_JOBS, intent)
            continue
        if not ready:
            continue
        if entry is None or not entry.get("stanzaCreated"):
            await ctx.warn(
                "StanzaNotCreated",
                f'Stanza not created for "{repo}" as specified for a scheduled backup',
            )
            continue
        await ctx.apply(CRON_JOBS, intent)
    scheduled = [
        _scheduled_status(job)
        for job in ctx.cluster_objects(JOBS, {naming.LABEL_PGBACKREST_CRONJOB: None})
    ]
    status: JSON = ctx.status.setdefault("pgbackrest", {})
    if scheduled:
        status["scheduledBackups"] = sorted(scheduled, key=lambda s: str(s.get("startTime", "")))
    else:
        status.pop("scheduledBackups", None)


def _scheduled_status(job: JSON) -> JSON:
    """One entry of `status.pgbackrest.scheduledBackups` (PGO's fields)."""
    labels = job["metadata"].get("labels") or {}
    owners = job["metadata"].get("ownerReferences") or []
    entry: JSON = {
        "cronJobName": owners[0]["name"] if owners else "",
        "repo": labels.get(naming.LABEL_PGBACKREST_REPO, ""),
        "type": labels.get(naming.LABEL_PGBACKREST_CRONJOB, ""),
    }
    jobs.record(entry, job)
    entry.pop("finished", None)
    return entry


def _repo_status(ctx: Context, repo: str) -> JSON | None:
    repos = (ctx.status.get("pgbackrest") or {}).get("repos") or []
    return next((r for r in repos if r["name"] == repo), None)


async def _replica_create(ctx: Context, image: str) -> None:
    repo = ctx.spec["backups"]["pgbackrest"]["repos"][0]["name"]
    entry = _repo_status(ctx, repo)
    try:
        if entry is None or entry.get("replicaCreateBackupComplete"):
            return
        if ctx.instances.writable_primary is None:
            return
        hash_ = config.config_hash(ctx.spec)
        config_container = (
            naming.CONTAINER_PGBACKREST if pods.volume_repos(ctx.spec) else "database"
        )
        existing = ctx.cluster_objects(
            JOBS, {naming.LABEL_PGBACKREST_BACKUP: naming.BACKUP_REPLICA_CREATE}
        )
        if existing:
            job = existing[0]
            labels = job["metadata"].get("labels") or {}
            annotations = job["metadata"].get("annotations") or {}
            if (
                jobs.finished(job) == "Failed"
                or labels.get(naming.LABEL_PGBACKREST_REPO) != repo
                or annotations.get(naming.ANNOTATION_PGBACKREST_CONFIG) != config_container
                or annotations.get(naming.ANNOTATION_PGBACKREST_HASH) != hash_
            ):
                await ctx.delete(JOBS, job)
                return
            if jobs.finished(job) == "Complete":
                entry["replicaCreateBackupComplete"] = True
                return
            name = job["metadata"]["name"]
        else:
            ready_host = not pods.volume_repos(ctx.spec) or conditions.is_true(
                ctx.status, naming.CONDITION_PGBACKREST_REPO_HOST_READY
            )
            if not (
                ready_host
                and conditions.is_true(ctx.status, naming.CONDITION_PGBACKREST_REPLICA_REPO_READY)
            ):
                return
            if _another_running(ctx):
                return
            name = job_name(ctx.name)
        annotations = {
            naming.ANNOTATION_PGBACKREST_CONFIG: config_container,
            naming.ANNOTATION_PGBACKREST_HASH: hash_,
        }
        await ctx.apply(
            JOBS,
            backup_job(
                ctx.owner,
                ctx.spec,
                image,
                name=name,
                repo=repo,
                kind=naming.BACKUP_REPLICA_CREATE,
                options=[],
                annotations=annotations,
                log_claim=config.cloud_log_claim(ctx.raw),
            ),
        )
    finally:
        _replica_create_condition(ctx, _repo_status(ctx, repo))


def _replica_create_condition(ctx: Context, entry: JSON | None) -> None:
    if entry is None:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_REPLICA_CREATE,
            "Unknown",
            "RepoStatusMissing",
            "Status is missing for the replica create repo",
        )
    elif entry.get("replicaCreateBackupComplete"):
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_REPLICA_CREATE,
            "True",
            "RepoBackupComplete",
            "pgBackRest replica creation is now possible",
        )
    else:
        ctx.set_condition(
            naming.CONDITION_PGBACKREST_REPLICA_CREATE,
            "False",
            "RepoBackupNotComplete",
            "pgBackRest replica creation is not currently possible",
        )


_REPO_OPTION = re.compile(r"--repo(=|\s|$)")


async def _manual(ctx: Context, image: str) -> None:
    """One manual backup per value of the `pgbackrest-backup` annotation."""
    status: JSON = ctx.status.setdefault("pgbackrest", {})
    requested = (ctx.raw["metadata"].get("annotations") or {}).get(
        naming.ANNOTATION_PGBACKREST_BACKUP, ""
    )
    manual = ctx.cluster_objects(JOBS, {naming.LABEL_PGBACKREST_BACKUP: naming.BACKUP_MANUAL})
    job = manual[0] if manual else None
    current = status.get("manualBackup")
    if job is not None:
        job_id = (job["metadata"].get("annotations") or {}).get(
            naming.ANNOTATION_PGBACKREST_BACKUP, ""
        )
        outcome = jobs.finished(job)
        if current is not None and current.get("id") == job_id:
            jobs.record(current, job)
            if outcome == "Complete":
                ctx.set_condition(
                    naming.CONDITION_PGBACKREST_MANUAL_BACKUP,
                    "True",
                    "ManualBackupComplete",
                    "Manual backup completed successfully",
                )
            elif outcome == "Failed":
                ctx.set_condition(
                    naming.CONDITION_PGBACKREST_MANUAL_BACKUP,
                    "False",
                    "ManualBackupFailed",
                    "Manual backup did not complete successfully",
                )
        if outcome is not None and requested and requested != job_id:
            await ctx.delete(JOBS, job)  # a new backup is asked for: it runs next time
            return
    manual = ctx.spec["backups"]["pgbackrest"].get("manual")
    if ctx.instances.writable_primary is None or not requested or not manual:
        return
    if current is None or current.get("id") != requested:
        current = status["manualBackup"] = {"id": requested, "finished": False}
        ctx.clear_condition(naming.CONDITION_PGBACKREST_MANUAL_BACKUP)
    # One backup at a time: the replica-create backup goes first.
    if current.get("finished") or not conditions.is_true(
        ctx.status, naming.CONDITION_PGBACKREST_REPLICA_CREATE
    ):
        return
    if problem := _manual_problem(ctx, manual):
        await ctx.warn(*problem)
        return
    repo = manual["repoName"]
    options = [str(o) for o in manual.get("options") or []]
    name = job["metadata"]["name"] if job is not None else job_name(ctx.name)
    if job is None and _another_running(ctx):
        return  # its end brings the next reconcile
    await ctx.apply(
        JOBS,
        backup_job(
            ctx.owner,
            ctx.spec,
            image,
            name=name,
            repo=repo,
            kind=naming.BACKUP_MANUAL,
            options=options,
            annotations={naming.ANNOTATION_PGBACKREST_BACKUP: requested},
            log_claim=config.cloud_log_claim(ctx.raw),
        ),
    )


def _manual_problem(ctx: Context, manual: JSON) -> tuple[str, str] | None:
    """Why the manual backup cannot run (an Event's reason and message), as PGO words it."""
    repo = manual["repoName"]
    entry = _repo_status(ctx, repo)
    if entry is None:
        return (
            "InvalidBackupRepo",
            f'Unable to find status for "{repo}" as configured for a manual backup.  '
            "Please ensure this repo is defined in the spec.",
        )
    if not entry.get("stanzaCreated"):
        return (
            "StanzaNotCreated",
            f'Stanza not created for "{repo}" as specified for a manual backup',
        )
    if any(_REPO_OPTION.search(str(o)) for o in manual.get("options") or []):
        return (
            "InvalidManualBackup",
            f"Option '--repo' is not allowed for repo \"{repo}\": please use the 'repoName' "
            "field instead.",
        )
    return None
