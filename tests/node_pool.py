"""Three more nodes for tests of node loss, and hippo bound to them with node-local volumes.

`ControlPlane.add_node` registers them; their claims of the `local-node` StorageClass get
volumes bound to the node their first pod was scheduled on (as local-path-provisioner's).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.node import NODE_LOCAL_STORAGE_CLASS

from reconciler import naming
from reconciler.runtime.client import JSON

NODE_NAMES = ("node-a", "node-b", "node-c")
POOL_LABEL = "envtest.reconciler.dev/pool"
POOL = "node-loss"


@contextlib.asynccontextmanager
async def node_pool(control_plane: ControlPlane) -> AsyncIterator[tuple[str, ...]]:
    """The three nodes, labelled as a pool; lost and deleted afterwards."""
    try:
        for name in NODE_NAMES:
            await control_plane.add_node(name, {POOL_LABEL: POOL})
        yield NODE_NAMES
    finally:
        await control_plane.remove_nodes(list(NODE_NAMES))


def on_node_pool(cluster: JSON, *, recovery: bool, replicas: int = 2) -> JSON:
    """`cluster` with `replicas` instances on the pool's nodes and node-local data volumes;
    with `recovery`, the annotation asking for node-loss recovery."""
    if recovery:
        annotations = cluster["metadata"].setdefault("annotations", {})
        annotations[naming.ANNOTATION_NODE_LOSS_RECOVERY] = "enabled"
    instances = cluster["spec"]["instances"][0]
    instances["replicas"] = replicas
    instances["dataVolumeClaimSpec"]["storageClassName"] = NODE_LOCAL_STORAGE_CLASS
    term = {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": [POOL]}]}
    required = {"nodeSelectorTerms": [term]}
    instances["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
    }
    return cluster
