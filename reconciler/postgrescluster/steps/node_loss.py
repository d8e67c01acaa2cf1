"""Subreconciler: node-loss recovery (ours; off unless the InstanceNodeLossRecovery gate is on).

An instance whose data volume is bound to a lost node (`node_loss`: deleted, or NotReady for
longer than `PGO_NODE_LOSS_AFTER_SECONDS`) is rebuilt on another node, as PGO's manual runbook
does, when the cluster carries `postgres-operator.crunchydata.com/node-loss-recovery: enabled`:

1. If its pod holds Patroni's leader lock and has not renewed it for `loop_wait` +
   `retry_timeout` (so it has demoted itself or is dead), the lock is released as
   `steps/failover.py` does, and a replica is elected; nothing else happens until it is.
2. Its volumes on that node (reclaim policy Delete) and claims are deleted, and its pod is
   deleted at once (the lost kubelet never confirms a graceful deletion): the volumes go as
   soon as their claims do, never left Released.
3. The `instances` step recreates the claims; the StatefulSet recreates the pod, which the
   scheduler binds to a healthy node with its new volume; Patroni copies the data from the
   primary (or pgBackRest, as the cluster's replica-create method says).

Each step leaves an Event (`InstanceNodeLost`, `PrimaryLockReleased`, `InstanceVolumeReleased`,
`InstanceRecreated`). Without the annotation, or while no other instance is Ready on a Ready
node (the lost volume may hold the only copy of the data), nothing is deleted: the condition
`InstanceNodeLost` and a Warning Event say what was found and what to do.

Reads: Nodes from the cache (watched only with the gate on); an instance's PersistentVolume
with a GET, only for an instance that is not Ready on a Ready node.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import structlog

from reconciler import naming
from reconciler.patroni import leader_lock
from reconciler.postgrescluster import configuration, node_loss
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import pod_ready
from reconciler.postgrescluster.steps import failover
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON, ConflictError, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.rbac import READ, Rule
from reconciler.runtime.resources import (
    ENDPOINTS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
)

log = structlog.get_logger(__name__)

RULES = (
    Rule(
        "",
        ("nodes",),
        READ,
        "Node-loss recovery (InstanceNodeLossRecovery gate): instances' nodes are watched.",
    ),
    Rule(
        "",
        ("persistentvolumes",),
        ("get", "delete"),
        "Node-loss recovery: an instance's volume tells its node; on a lost node it is deleted.",
    ),
)

# Patroni's default when `dynamicConfiguration` sets no retry_timeout.
PATRONI_RETRY_TIMEOUT = 10.0
# How soon to look again while a replica takes over the released lock.
ELECTION_POLL = 2.0


async def reconcile(ctx: Context) -> Result | None:
    """Rebuild on another node the instances whose volumes are on a lost node, if asked."""
    if not ctx.environment.node_loss_recovery or ctx.spec.get("shutdown"):
        return None
    now = datetime.datetime.now(datetime.UTC)
    pods = {
        (p["metadata"].get("labels") or {}).get(naming.LABEL_INSTANCE, ""): p
        for p in ctx.instances.pods
    }
    nodes = {
        name: ctx.cached(NODES, name)
        for name in {(p.get("spec") or {}).get("nodeName") or "" for p in ctx.instances.pods}
        if name
    }
    waits: list[float] = []
    found: list[tuple[str, str]] = []  # (reason, message) for the condition
    for instance in ctx.instances.names:
        pod = pods.get(instance)
        await _announce_recreated(ctx, instance, pod, nodes)
        if pod is not None and pod_ready(pod):
            node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
            if node is not None and node_loss.ready_since(node)[0]:
                continue
        claim = ctx.cached(PERSISTENT_VOLUME_CLAIMS, naming.instance_data_volume(instance))
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            continue
        volume = await _volume(ctx, claim)
        node_name = node_loss.volume_node(volume)
        if volume is None or node_name is None:
            continue  # not bound yet, or reachable from any node: nothing is lost with a node
        verdict = node_loss.judge_node(
            node_name, ctx.cached(NODES, node_name), now, ctx.environment.node_loss_after
        )
        if verdict.lost is None:
            if verdict.wait > 0:
                waits.append(verdict.wait)
            continue
        lost = _LostInstance(instance, pod, claim, volume, verdict.lost)
        outcome = await _recover(ctx, lost, nodes=nodes, now=now)
        if isinstance(outcome, float):
            waits.append(outcome)
        else:
            found.append(outcome)
    await _report(ctx, found)
    return Result(requeue_after=min(waits)) if waits else None


@dataclass(frozen=True, slots=True)
class _LostInstance:
    """An instance whose data volume is on a lost node, as cached."""

    name: str
    pod: JSON | None
    claim: JSON
    volume: JSON
    node: node_loss.LostNode


async def _recover(
    ctx: Context,
    found: _LostInstance,
    *,
    nodes: dict[str, JSON | None],
    now: datetime.datetime,
) -> tuple[str, str] | float:
    """One step of an instance's recovery: the condition's (reason, message), or the seconds
    to wait before the next step."""
    instance, lost, claim, volume = found.name, found.node, found.claim, found.volume
    annotations = ctx.raw["metadata"].get("annotations") or {}
    if annotations.get(naming.ANNOTATION_NODE_LOSS_RECOVERY) != node_loss.ENABLED:
        return naming.REASON_NODE_LOSS_RECOVERY_DISABLED, node_loss.disabled_message(instance, lost)
    peer = node_loss.healthy_peer(instance, ctx.instances.pods, nodes)
    if peer is None:
        return naming.REASON_NODE_LOSS_RECOVERY_UNSAFE, node_loss.unsafe_message(instance, lost)
    pod_name = naming.instance_pod(instance)
    leader = ctx.cached(ENDPOINTS, naming.patroni_scope(ctx.name))
    if node_loss.lock_held_by(leader, pod_name):
        return await _release_lock(ctx, pod_name, lost, leader, now)
    claims = [claim]
    wal = ctx.cached(PERSISTENT_VOLUME_CLAIMS, naming.instance_wal_volume(instance))
    if wal is not None and not wal["metadata"].get("deletionTimestamp"):
        claims.append(wal)
    volumes = [volume] + [v for c in claims[1:] if (v := await _volume(ctx, c)) is not None]
    await ctx.warn(
        naming.REASON_INSTANCE_NODE_LOST,
        f"Node {lost.name} {lost.why}; instance {instance}'s data volume "
        f"{volume['metadata']['name']} (claim {claim['metadata']['name']}) is bound to it. "
        f"Its pod and claims are deleted so that it is rebuilt on another node from {peer}",
    )
    released = [v for v in volumes if node_loss.deletable(v, lost.name)]
    deleted = [v["metadata"]["name"] for v in released]
    kept = [v["metadata"]["name"] for v in volumes if not node_loss.deletable(v, lost.name)]
    # The volumes first: marked for deletion, they go the moment their claims are gone
    # (pv-protection), so that none is ever left Released by a provisioner that is lost too.
    for each in released:
        await ctx.delete(PERSISTENT_VOLUMES, each)
    for each in claims:
        await ctx.delete(PERSISTENT_VOLUME_CLAIMS, each)
    if found.pod is not None:
        await ctx.delete(PODS, found.pod, grace_period_seconds=0)
    message = (
        f"Deleted instance {instance}'s pod, claims "
        f"{', '.join(c['metadata']['name'] for c in claims)} and volumes "
        f"{', '.join(deleted) or '(none)'} of lost node {lost.name}"
    )
    if kept:
        message += f"; left for the administrator (reclaim policy not Delete): {', '.join(kept)}"
    await ctx.recorder.event(ctx.raw, "Normal", naming.REASON_INSTANCE_VOLUME_RELEASED, message)
    log.info("rebuilding an instance of a lost node", instance=instance, node=lost.name)
    ctx.memory.node_loss_rebuilt[instance] = lost.name
    return naming.REASON_NODE_LOSS_RECOVERING, (
        f"Instance {instance} is rebuilt on another node: node {lost.name} {lost.why}"
    )


async def _release_lock(
    ctx: Context,
    pod_name: str,
    lost: node_loss.LostNode,
    leader: JSON | None,
    now: datetime.datetime,
) -> float:
    """Release the leader lock of a primary on a lost node once it is stale; the seconds to
    wait for the election (or for the lock to go stale)."""
    patroni = ctx.spec["patroni"]
    dynamic = configuration.dynamic_configuration(ctx.spec)
    loop_wait = float(patroni["syncPeriodSeconds"])
    retry = float(dynamic.get("retry_timeout", PATRONI_RETRY_TIMEOUT))
    if leader is None or not node_loss.stale_lock(leader, now, loop_wait, retry):
        return ELECTION_POLL
    try:
        await ctx.client.patch(
            ENDPOINTS,
            naming.patroni_scope(ctx.name),
            leader_lock.release_patch(leader),
            namespace=ctx.namespace,
            field_manager=naming.FIELD_MANAGER,
        )
    except (ConflictError, NotFoundError):
        return ELECTION_POLL  # Patroni wrote the lock meanwhile: look again
    await ctx.recorder.event(
        ctx.raw,
        "Normal",
        failover.REASON,
        f"The primary {pod_name} is on node {lost.name}, which {lost.why}, and has not "
        f"renewed Patroni's leader lock for {loop_wait + retry:.0f} s (loop_wait + "
        "retry_timeout): the lock was released so that a replica is promoted now",
    )
    return ELECTION_POLL


async def _announce_recreated(
    ctx: Context, instance: str, pod: JSON | None, nodes: dict[str, JSON | None]
) -> None:
    """The InstanceRecreated Event, once a rebuilt instance is Ready on another node."""
    lost = ctx.memory.node_loss_rebuilt.get(instance)
    if lost is None or pod is None or not pod_ready(pod):
        return
    node = (pod.get("spec") or {}).get("nodeName") or ""
    if node == lost or nodes.get(node) is None:
        return
    del ctx.memory.node_loss_rebuilt[instance]
    await ctx.recorder.event(
        ctx.raw,
        "Normal",
        naming.REASON_INSTANCE_RECREATED,
        f"Instance {instance} runs again, on node {node} (its node {lost} was lost), with its "
        "data copied from the cluster's primary",
    )


async def _report(ctx: Context, found: list[tuple[str, str]]) -> None:
    """The InstanceNodeLost condition, with a Warning Event when its message changes."""
    if not found:
        if not ctx.memory.node_loss_rebuilt:
            ctx.clear_condition(naming.CONDITION_INSTANCE_NODE_LOST)
        return
    reason = found[0][0]
    message = "; ".join(m for _, m in found)
    previous = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_INSTANCE_NODE_LOST
    )
    ctx.set_condition(naming.CONDITION_INSTANCE_NODE_LOST, "True", reason, message)
    if reason != naming.REASON_NODE_LOSS_RECOVERING and (
        previous is None or previous.get("message") != message
    ):
        await ctx.warn(naming.REASON_INSTANCE_NODE_LOST, message)


async def _volume(ctx: Context, claim: JSON) -> JSON | None:
    """The PersistentVolume bound to `claim`, None when it has none (or it is gone)."""
    name = (claim.get("spec") or {}).get("volumeName")
    if not name or (claim.get("status") or {}).get("phase") != "Bound":
        return None
    try:
        return await ctx.client.get(PERSISTENT_VOLUMES, name)
    except NotFoundError:
        return None
