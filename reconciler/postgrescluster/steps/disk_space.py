"""Subreconciler: condition `PersistentVolumeFull` (beyond PGO), an instance volume with no room.

Each instance pod names, in its `full-volumes` annotation, the volumes (data, WAL) with less than
one WAL segment free (scripts.REPLICATION_CERT_COPY): PostgreSQL can no longer write there, so
the cluster stops taking writes. The condition and a Warning Event name each such claim and the
field that grows it; once every volume has room again (a larger claim, data removed), the
condition goes and a Normal Event says so.
"""

from __future__ import annotations

from reconciler import naming
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import instance_of, instance_set_of
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON

# A pod volume's name -> the instance set's field that sizes its claim.
SPEC_FIELDS = {"postgres-data": "dataVolumeClaimSpec", "postgres-wal": "walVolumeClaimSpec"}


def full_volumes(pods: list[JSON]) -> list[str]:
    """One line per full volume, sorted: the claim, its instance, and the field to grow."""
    lines = []
    for pod in pods:
        annotation = (pod["metadata"].get("annotations") or {}).get(naming.ANNOTATION_FULL_VOLUMES)
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"].get("volumes") or []
            if "persistentVolumeClaim" in v
        }
        for volume in filter(None, (annotation or "").split(",")):
            if volume not in claims or volume not in SPEC_FIELDS:
                continue
            lines.append(
                f"PersistentVolumeClaim {claims[volume]} of instance {instance_of(pod)} has "
                f"less than 16Mi free; grow spec.instances[{instance_set_of(pod)}]."
                f"{SPEC_FIELDS[volume]}.resources.requests.storage"
            )
    return sorted(lines)


async def reconcile(ctx: Context) -> None:
    """Report full volumes as a condition and a Warning Event; clear both when none is."""
    full = full_volumes(ctx.instances.pods)
    previous = conditions.find(ctx.status.get("conditions") or [], naming.CONDITION_VOLUME_FULL)
    if full:
        message = "; ".join(full)
        ctx.set_condition(naming.CONDITION_VOLUME_FULL, "True", naming.REASON_VOLUME_FULL, message)
        if previous is None or previous.get("message") != message:
            await ctx.warn(naming.REASON_VOLUME_FULL, message)
        return
    if previous is not None:
        ctx.clear_condition(naming.CONDITION_VOLUME_FULL)
        await ctx.recorder.event(
            ctx.raw,
            "Normal",
            naming.REASON_VOLUME_SPACE_AVAILABLE,
            "Every instance volume has room for PostgreSQL again.",
        )
