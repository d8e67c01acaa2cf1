"""Subreconciler: `spec.dataSource.volumes.pgDataVolume`, PGO's path for data from elsewhere
(a PGO v4 cluster, say): the existing claim becomes the first instance's data volume (PGO's
labels, the cluster as an owner beside any other, its name and spec kept), the Job
`<c>-move-pgdata-dir` moves its data directory (`directory`) to where the `existing`
bootstrap takes it, and Patroni bootstraps the cluster from it. Nothing is deleted: a claim
that is missing, or a move that fails, is a condition and a Warning, and no instance starts.
"""

from __future__ import annotations

from reconciler import naming
from reconciler.postgrescluster import data_source, job_logs
from reconciler.postgrescluster.context import Context
from reconciler.runtime import conditions, jobs
from reconciler.runtime.client import JSON, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.rbac import Rule
from reconciler.runtime.resources import JOBS, PERSISTENT_VOLUME_CLAIMS

RULES = (
    Rule(
        "",
        ("persistentvolumeclaims",),
        ("get",),
        "spec.dataSource.volumes names a claim that is not the cluster's yet (not cached).",
    ),
)
REASON_INVALID = "InvalidDataSource"


async def reconcile(ctx: Context) -> Result | None:
    """Adopt the claim, move its data directory, then let the first instance start."""
    volume = data_source.adopted_data_volume(ctx.spec)
    if volume is None:
        return None
    if not data_source.awaiting_data(ctx.spec, ctx.status):
        return None
    instance_set = ctx.spec["instances"][0]
    instance = str(ctx.status.get("startupInstance") or "")
    if not instance:
        instance = naming.generate_instance(ctx.name, instance_set["name"])
        ctx.status["startupInstance"] = instance
        ctx.status["startupInstanceSet"] = instance_set["name"]
    name = str(volume["pvcName"])
    try:
        claim = await ctx.client.get(PERSISTENT_VOLUME_CLAIMS, name, ctx.namespace)
    except NotFoundError:
        await _report(ctx, REASON_INVALID, f'PersistentVolumeClaim "{name}" does not exist')
        return None
    owner = _other_controller(claim, ctx.owner.uid)
    if owner is not None:
        await _report(
            ctx,
            REASON_INVALID,
            f'PersistentVolumeClaim "{name}" is controlled by {owner}: it cannot be adopted',
        )
        return None
    labels = claim["metadata"].get("labels") or {}
    if labels.get(naming.LABEL_INSTANCE) != instance:
        patch = data_source.adoption_patch(ctx.owner, instance_set["name"], instance, claim)
        await ctx.client.patch(PERSISTENT_VOLUME_CLAIMS, name, patch, namespace=ctx.namespace)
    return await _move(ctx, volume)


async def _move(ctx: Context, volume: JSON) -> Result | None:
    job = ctx.cached(JOBS, naming.move_data_directory_job(ctx.name))
    if job is None:
        image = ctx.postgres_image
        assert image is not None, "the controller checks images before its steps"
        await ctx.apply(JOBS, data_source.move_job(ctx.owner, ctx.spec, image, volume))
        ctx.set_condition(
            naming.CONDITION_POSTGRES_DATA_INITIALIZED,
            "False",
            "MovingDataDirectory",
            f'moving the data directory of PersistentVolumeClaim "{volume["pvcName"]}" into place',
        )
        return None
    outcome = jobs.finished(job)
    if outcome == "Failed":
        error = await job_logs.job_error(ctx, job, naming.CONTAINER_MOVE_PGDATA_DIR)
        await _report(
            ctx,
            "PGDataMoveFailed",
            f"{error}; correct spec.dataSource.volumes.pgDataVolume, then delete Job "
            f"{job['metadata']['name']} to try again",
        )
    elif outcome == "Complete":
        ctx.set_condition(
            naming.CONDITION_POSTGRES_DATA_INITIALIZED,
            "True",
            "PGDataVolumeAdopted",
            f'PersistentVolumeClaim "{volume["pvcName"]}" holds the data of instance '
            f"{ctx.status.get('startupInstance')}",
        )
    return None


def _other_controller(claim: JSON, uid: str) -> str | None:
    for reference in claim["metadata"].get("ownerReferences") or []:
        if reference.get("controller") and reference.get("uid") != uid:
            return f"{reference.get('kind')} {reference.get('name')}"
    return None


async def _report(ctx: Context, reason: str, message: str) -> None:
    previous = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_POSTGRES_DATA_INITIALIZED
    )
    ctx.set_condition(naming.CONDITION_POSTGRES_DATA_INITIALIZED, "False", reason, message)
    if previous is None or previous.get("message") != message:
        await ctx.warn(reason, f"spec.dataSource.volumes: {message}")
