"""Subreconciler: pods that run an outdated template are replaced, one at a time, primary last.

Instance StatefulSets update `OnDelete`, so a template change (image, resources, parameters
that need a restart) reaches a pod only when the operator deletes it. The order keeps the
cluster available: nothing happens unless every instance pod is ready (so at most one is ever
down); outdated replicas go first, one per step; then Patroni switches the primary over to an
up-to-date replica (with pgBouncer's pools paused meanwhile, `pooling`), and the old primary,
now a replica, is replaced like the others. A cluster of one instance can only restart its
primary in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from reconciler import naming
from reconciler.patroni.client import PatroniClient, PatroniError
from reconciler.postgres.connection import client_tls
from reconciler.postgrescluster import pooling
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import is_primary, outdated, pod_ready
from reconciler.runtime.client import JSON
from reconciler.runtime.resources import PODS

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a rollout: delete `pod`, or switch over from `pod` to `candidate`."""

    kind: str  # "delete" or "switchover"
    pod: str
    candidate: str | None = None


def next_action(pods: Sequence[JSON], statefulsets: dict[str, JSON]) -> Action | None:
    """The rollout's next action, or None (nothing outdated, or not safe to act now)."""
    if len(pods) < len(statefulsets) or not all(_available(p) for p in pods):
        return None
    states = {p["metadata"]["name"]: outdated(p, statefulsets) for p in pods}
    if any(state is None for state in states.values()) or not any(states.values()):
        return None
    replicas = sorted(n for n, old in states.items() if old and not _primary(pods, n))
    if replicas:
        return Action("delete", replicas[0])
    primary = next(n for n, old in states.items() if old)
    current = sorted(n for n, old in states.items() if not old)
    if current:
        return Action("switchover", primary, current[0])
    return Action("delete", primary)


def _available(pod: JSON) -> bool:
    return pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")


def _primary(pods: Sequence[JSON], name: str) -> bool:
    return any(p["metadata"]["name"] == name and is_primary(p) for p in pods)


async def reconcile(ctx: Context) -> None:
    """Take the next action of a rollout, if one is due."""
    if ctx.spec.get("shutdown"):
        return
    pods = ctx.instances.pods
    action = next_action(pods, ctx.instances.statefulsets_by_name())
    if action is None:
        return
    if action.kind == "delete":
        pod = next(p for p in pods if p["metadata"]["name"] == action.pod)
        log.info("rolling out the pod template", pod=action.pod)
        await ctx.delete(PODS, pod)
        return
    host = naming.instance_pod_dns(action.pod, ctx.name, ctx.namespace)
    client = PatroniClient(host, ctx.spec["patroni"]["port"], client_tls(ctx.root_ca))
    try:
        message = await pooling.primary_moves(
            ctx, lambda: client.switchover(action.pod, action.candidate)
        )
    except PatroniError as error:
        log.info("switchover for the rollout failed; retrying", error=str(error))
        return
    await ctx.recorder.event(
        ctx.raw,
        "Normal",
        naming.REASON_ROLLING_UPDATE,
        f"primary moved for the new pod template: {message}",
    )
