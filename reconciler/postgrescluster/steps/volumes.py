"""Subreconciler: `spec.dataSource.volumes`, PGO's path for data from elsewhere (a PGO v4
cluster, say; see `postgrescluster/adoption.py`). The claims become the cluster's, their move
Jobs run one after the other, then the first instance starts on the data (Patroni bootstraps
from it) and the repository host on the repository. Nothing is deleted: a claim that is
missing or controlled by something else, or a move that fails, is a condition and a Warning,
and nothing starts on it.
"""

from __future__ import annotations

from typing import Literal

from reconciler import naming
from reconciler.postgrescluster import adoption, data_source, job_logs
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
# The Warning of a repository claim that cannot be adopted; the repository host waits
# (`PGBackRestRepoHostReady` says so).
REASON_REPO_INVALID = "InvalidRepoVolume"
# A claim the spec names that does not exist yet is looked for again this often: it carries
# none of the cluster's labels, so no watch event tells of its creation.
CLAIM_POLL_SECONDS = 10.0


async def reconcile(ctx: Context) -> Result | None:
    """Adopt the claims, move their directories, then let the instance and repository start."""
    volumes = adoption.requested(ctx.spec)
    postgres = bool({adoption.DATA, adoption.WAL} & volumes.keys()) and data_source.awaiting_data(
        ctx.spec, ctx.status
    )
    repo = adoption.REPO in volumes and not adoption.repo_claim_in_place(
        ctx.spec,
        ctx.cached(PERSISTENT_VOLUME_CLAIMS, str(volumes[adoption.REPO]["pvcName"])),
        ctx.cached(JOBS, naming.move_repo_directory_job(ctx.name)),
    )
    if not postgres and not repo:
        return None
    problem = adoption.problem(ctx.spec)
    if problem is not None:
        await _report(ctx, repo and not postgres, REASON_INVALID, problem)
        return None
    instance_set = ctx.spec["instances"][0]
    instance = str(ctx.status.get("startupInstance") or "")
    if postgres and not instance:
        instance = naming.generate_instance(ctx.name, instance_set["name"])
        ctx.status["startupInstance"] = instance
        ctx.status["startupInstanceSet"] = instance_set["name"]
    for field, volume in volumes.items():
        if not (repo if field == adoption.REPO else postgres):
            continue
        labels = adoption.claim_labels(ctx.owner, ctx.spec, field, instance_set["name"], instance)
        adopted = await _adopt(ctx, field, str(volume["pvcName"]), labels)
        if adopted is not True:
            return adopted
    images = (ctx.postgres_image, ctx.pgbackrest_image or "")
    assert images[0] is not None, "the controller checks images before its steps"
    for job in adoption.move_jobs(ctx.owner, ctx.spec, images[0], images[1]):
        is_repo = job["metadata"]["name"] == naming.move_repo_directory_job(ctx.name)
        if (repo if is_repo else postgres) and not await _move(ctx, job, is_repo=is_repo):
            return None
    if postgres and adoption.DATA in volumes:
        ctx.set_condition(
            naming.CONDITION_POSTGRES_DATA_INITIALIZED,
            "True",
            "PGDataVolumeAdopted",
            f'PersistentVolumeClaim "{volumes[adoption.DATA]["pvcName"]}" holds the data of '
            f"instance {instance}",
        )
    return None


async def _adopt(
    ctx: Context, field: str, name: str, labels: dict[str, str]
) -> Literal[True] | Result | None:
    """Make claim `name` the cluster's: True once it is; else why not is reported, and the
    claim looked for again later if it is missing."""
    is_repo = field == adoption.REPO
    try:
        claim = await ctx.client.get(PERSISTENT_VOLUME_CLAIMS, name, ctx.namespace)
    except NotFoundError:
        await _report(ctx, is_repo, REASON_INVALID, f'{field}: claim "{name}" does not exist')
        return Result(requeue_after=CLAIM_POLL_SECONDS)
    owner = _other_controller(claim, ctx.owner.uid)
    if owner is not None:
        message = f'{field}: claim "{name}" is controlled by {owner}: it cannot be adopted'
        await _report(ctx, is_repo, REASON_INVALID, message)
        return None
    current = claim["metadata"].get("labels") or {}
    if any(current.get(key) != value for key, value in labels.items()):
        patch = adoption.adoption_patch(ctx.owner, labels, claim)
        await ctx.client.patch(PERSISTENT_VOLUME_CLAIMS, name, patch, namespace=ctx.namespace)
    return True


async def _move(ctx: Context, job: JSON, *, is_repo: bool) -> bool:
    """Run one move Job; True once it completed."""
    name = job["metadata"]["name"]
    live = ctx.cached(JOBS, name)
    if live is None:
        await ctx.apply(JOBS, job)
        if not is_repo:
            ctx.set_condition(
                naming.CONDITION_POSTGRES_DATA_INITIALIZED,
                "False",
                "MovingDataDirectory",
                f"Job {name} moves the adopted directories into place",
            )
        return False
    outcome = jobs.finished(live)
    if outcome == "Failed":
        container = job["spec"]["template"]["spec"]["containers"][0]["name"]
        error = await job_logs.job_error(ctx, live, container)
        message = f"{error}; correct spec.dataSource.volumes, then delete Job {name} to try again"
        await _report(ctx, is_repo, "DirectoryMoveFailed", message)
    return outcome == "Complete"


def _other_controller(claim: JSON, uid: str) -> str | None:
    for reference in claim["metadata"].get("ownerReferences") or []:
        if reference.get("controller") and reference.get("uid") != uid:
            return f"{reference.get('kind')} {reference.get('name')}"
    return None


async def _report(ctx: Context, is_repo: bool, reason: str, message: str) -> None:
    """A condition (`PostgresDataInitialized` for the instance's claims; the repository's is
    reported by `PGBackRestRepoHostReady`, which the pgBackRest step owns) and a Warning,
    once per message."""
    if is_repo:
        previous = ctx.memory.adoption_warnings.get(reason)
        ctx.memory.adoption_warnings[reason] = message
        if previous != message:
            await ctx.warn(REASON_REPO_INVALID, f"spec.dataSource.volumes: {message}")
        return
    previous_condition = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_POSTGRES_DATA_INITIALIZED
    )
    ctx.set_condition(naming.CONDITION_POSTGRES_DATA_INITIALIZED, "False", reason, message)
    if previous_condition is None or previous_condition.get("message") != message:
        await ctx.warn(reason, f"spec.dataSource.volumes: {message}")
