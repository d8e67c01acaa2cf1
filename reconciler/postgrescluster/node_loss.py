"""Node-loss recovery, as pure decisions: when an instance's node is lost for good, and when
rebuilding the instance elsewhere is safe.

With node-local storage (local-path-provisioner, local PersistentVolumes) an instance's data
volume carries `spec.nodeAffinity` naming one node. When that node is gone, the StatefulSet's
pod can never be scheduled again: PGO's runbook has the user delete the Node, scale the set down
and up, and delete the Released volume by hand. `steps/node_loss.py` does the same once a node
is *lost*: deleted, or NotReady for longer than the operator's threshold (the
InstanceNodeLossRecovery gate and the cluster's annotation both asking for it). It rebuilds an
instance only while another instance runs on a healthy node: never the last copy of the data.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import naming
from reconciler.patroni import leader_lock
from reconciler.postgrescluster.observed import pod_ready
from reconciler.runtime.client import JSON

HOSTNAME_LABEL = "kubernetes.io/hostname"
ENABLED = "enabled"


@dataclass(frozen=True, slots=True)
class LostNode:
    """A node whose volumes count as gone, and why."""

    name: str
    why: str  # "was deleted", "is NotReady since ..."


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a node's state means for the instances whose volumes it holds: `lost`, or the
    seconds to wait before looking again (`wait` > 0: NotReady, not long enough yet)."""

    lost: LostNode | None = None
    wait: float = 0.0


def volume_node(volume: Mapping[str, Any] | None) -> str | None:
    """The one node a PersistentVolume's `nodeAffinity` binds it to (by hostname, as local
    volumes and local-path-provisioner write it); None for a volume reachable from anywhere."""
    spec = (volume or {}).get("spec") or {}
    terms = ((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    nodes = {
        value
        for term in terms or []
        for expression in term.get("matchExpressions") or []
        if expression.get("key") == HOSTNAME_LABEL and expression.get("operator") == "In"
        for value in expression.get("values") or []
    }
    return nodes.pop() if len(nodes) == 1 else None


def ready_since(node: Mapping[str, Any]) -> tuple[bool, datetime.datetime | None]:
    """Whether the Node is Ready, and since when its Ready condition has that value."""
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None:
        return False, None
    return ready.get("status") == "True", leader_lock.timestamp(ready.get("lastTransitionTime"))


def judge_node(
    name: str, node: Mapping[str, Any] | None, now: datetime.datetime, after: float
) -> Verdict:
    """A node is lost when it is deleted, or NotReady (False or Unknown) for `after` seconds.
    A node NotReady for less is waited for: it may come back with its volumes."""
    if node is None:
        return Verdict(LostNode(name, "was deleted"))
    ready, since = ready_since(node)
    if ready:
        return Verdict()
    if since is None:
        return Verdict(wait=after)
    waited = (now - since).total_seconds()
    if waited < after:
        return Verdict(wait=after - waited)
    # Only stable facts in the text: it goes into a condition and an Event, rewritten when it
    # changes (a count of seconds would change at every reconcile).
    return Verdict(LostNode(name, f"is NotReady since {since.isoformat()}"))


def healthy_peer(
    instance: str, pods: list[JSON], nodes: Mapping[str, Mapping[str, Any] | None]
) -> str | None:
    """Another instance's pod that is Ready on a Ready node (`nodes` by name, None when
    deleted): the copy of the data the rebuilt instance is seeded from. None: there is none,
    and the lost instance may hold the only copy, so it must be left alone."""
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if labels.get(naming.LABEL_INSTANCE) == instance or not pod_ready(pod):
            continue
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        if node is not None and ready_since(node)[0]:
            return str(pod["metadata"]["name"])
    return None


def stale_lock(
    leader: Mapping[str, Any] | None,
    now: datetime.datetime,
    loop_wait: float,
    retry_timeout: float,
) -> bool:
    """Whether Patroni's leader lock has not been renewed for `loop_wait` + `retry_timeout`:
    a leader that cannot renew for that long has demoted itself (Patroni gives up the primary
    role when an update of the lock fails for `retry_timeout`), or is dead. Only then may the
    operator release the lock of a member on a lost node."""
    annotations = ((leader or {}).get("metadata") or {}).get("annotations") or {}
    renewed = leader_lock.timestamp(annotations.get("renewTime"))
    if renewed is None:
        return False
    return (now - renewed).total_seconds() >= loop_wait + retry_timeout


def lock_held_by(leader: Mapping[str, Any] | None, pod_name: str) -> bool:
    """Whether `pod_name` holds Patroni's leader lock."""
    return leader_lock.holder(leader) == pod_name


def deletable(volume: Mapping[str, Any], node: str) -> bool:
    """Whether the operator deletes this volume of a lost instance: it is on the lost node and
    its reclaim policy is Delete. A Retain volume is the administrator's to remove (they chose
    to keep its data); it is named in the Event instead."""
    policy = (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy")
    return volume_node(volume) == node and policy == "Delete"


def disabled_message(instance: str, lost: LostNode) -> str:
    """The condition's message when the cluster has not asked for recovery."""
    return (
        f"Instance {instance} has its data volume on node {lost.name}, which {lost.why}. "
        f"Set the annotation {naming.ANNOTATION_NODE_LOSS_RECOVERY}={ENABLED} on the cluster "
        "to have it rebuilt on another node from a healthy instance, or follow the manual "
        "procedure: delete the Node, the instance's pod and claims, and the Released volume"
    )


def unsafe_message(instance: str, lost: LostNode) -> str:
    """The condition's message when no other instance could seed a rebuilt one."""
    return (
        f"Instance {instance} has its data volume on node {lost.name}, which {lost.why}; it "
        "is not rebuilt because no other instance is Ready on a Ready node: its volume may "
        "hold the only copy of the data. Bring the node back, or restore from a backup"
    )
