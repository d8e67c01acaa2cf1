"""Node-loss recovery's decisions against the real API server (no processes): a lost node's
instance is left alone without the cluster's consent, and rebuilt elsewhere with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import features, naming
from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.config import Settings
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import (
    EVENTS,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
)
from tests.api_examples import hippo
from tests.node_pool import node_pool, on_node_pool
from tests.operator import EXAMPLE_IMAGES, found, ready_cluster, running_operator

CLUSTERS = POSTGRES_CLUSTERS.resource


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operator(operator_kubeconfig: Path, crds: None) -> AsyncIterator[Manager]:
    """The operator with the InstanceNodeLossRecovery gate on."""
    gates = features.parse("InstanceNodeLossRecovery=true")
    settings = Settings(images=EXAMPLE_IMAGES, workers=2, feature_gates=gates)
    async with running_operator(operator_kubeconfig, settings) as manager:
        yield manager


@pytest_asyncio.fixture(loop_scope="session")
async def nodes(control_plane: ControlPlane) -> AsyncIterator[tuple[str, ...]]:
    async with node_pool(control_plane) as names:
        yield names


async def _condition(kube: Client, namespace: str) -> JSON | None:
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    conditions = (cluster.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == naming.CONDITION_INSTANCE_NODE_LOST), None)


async def _reasons(kube: Client, namespace: str) -> set[str]:
    return {e["reason"] for e in (await kube.list(EVENTS, namespace)).items}


@pytest.mark.usefixtures("crds", "operator")
async def test_a_lost_node_s_instance_is_rebuilt_only_once_the_cluster_asks(
    kube: Client, namespace: str, control_plane: ControlPlane, nodes: tuple[str, ...]
) -> None:
    cluster = on_node_pool(hippo(), recovery=False)
    cluster["metadata"]["namespace"] = namespace
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=120)
    pods = (await kube.list(PODS, namespace, label_selector=naming.LABEL_INSTANCE)).items
    assert len(pods) == 2
    lost = pods[0]
    lost_node = lost["spec"]["nodeName"]
    assert lost_node in nodes
    instance = lost["metadata"]["labels"][naming.LABEL_INSTANCE]
    claim_name = naming.instance_data_volume(instance)
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
    volume_name = claim["spec"]["volumeName"]

    await control_plane.lose_node(lost_node)
    await kube.delete(NODES, lost_node)

    # Without the annotation: a condition and a Warning naming both ways out; nothing deleted.
    async def disabled() -> JSON | None:
        condition = await _condition(kube, namespace)
        reason = naming.REASON_NODE_LOSS_RECOVERY_DISABLED
        return condition if condition and condition["reason"] == reason else None

    condition = await wait_for(disabled, timeout=60, interval=0.5)
    assert instance in condition["message"]
    assert lost_node in condition["message"]
    assert naming.ANNOTATION_NODE_LOSS_RECOVERY in condition["message"]
    assert naming.REASON_INSTANCE_NODE_LOST in await _reasons(kube, namespace)
    same = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
    assert same["metadata"]["uid"] == claim["metadata"]["uid"]
    assert same["metadata"].get("deletionTimestamp") is None

    # The cluster's owner consents: the instance is rebuilt on another node of the pool.
    annotation = {naming.ANNOTATION_NODE_LOSS_RECOVERY: "enabled"}
    patch = {"metadata": {"annotations": annotation}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)

    async def rebuilt() -> JSON | None:
        pod = await found(kube, PODS, lost["metadata"]["name"], namespace)
        fresh = await found(kube, PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
        if pod is None or fresh is None or fresh["metadata"]["uid"] == claim["metadata"]["uid"]:
            return None
        if pod["spec"].get("nodeName") in (None, lost_node) or not fresh["spec"].get("volumeName"):
            return None
        return pod

    pod = await wait_for(rebuilt, timeout=120, interval=0.5)
    assert pod["spec"]["nodeName"] in nodes

    async def recovered() -> bool:
        wanted = {
            naming.REASON_INSTANCE_VOLUME_RELEASED,
            naming.REASON_INSTANCE_RECREATED,
        }
        return (
            wanted <= await _reasons(kube, namespace) and await _condition(kube, namespace) is None
        )

    await wait_for(recovered, timeout=60, interval=0.5)
    volumes = (await kube.list(PERSISTENT_VOLUMES)).items
    assert volume_name not in {v["metadata"]["name"] for v in volumes}
    assert not [v for v in volumes if (v.get("status") or {}).get("phase") == "Released"]
    await ready_cluster(kube, namespace, timeout=60)


@pytest.mark.usefixtures("crds", "operator")
async def test_the_last_instance_is_never_rebuilt(
    kube: Client, namespace: str, control_plane: ControlPlane, nodes: tuple[str, ...]
) -> None:
    """Its lost volume may hold the only copy of the data: a condition, nothing deleted."""
    cluster = on_node_pool(hippo(), recovery=True, replicas=1)
    cluster["metadata"]["namespace"] = namespace
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=120)
    (lost,) = (await kube.list(PODS, namespace, label_selector=naming.LABEL_INSTANCE)).items
    claim_name = naming.instance_data_volume(lost["metadata"]["labels"][naming.LABEL_INSTANCE])
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)

    await control_plane.lose_node(lost["spec"]["nodeName"])
    await kube.delete(NODES, lost["spec"]["nodeName"])

    async def unsafe() -> JSON | None:
        condition = await _condition(kube, namespace)
        reason = naming.REASON_NODE_LOSS_RECOVERY_UNSAFE
        return condition if condition and condition["reason"] == reason else None

    condition = await wait_for(unsafe, timeout=60, interval=0.5)
    assert "only copy" in condition["message"]
    same = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
    assert same["metadata"]["uid"] == claim["metadata"]["uid"]
    assert same["metadata"].get("deletionTimestamp") is None
    await kube.get(PERSISTENT_VOLUMES, claim["spec"]["volumeName"])  # still there
    assert naming.REASON_INSTANCE_VOLUME_RELEASED not in await _reasons(kube, namespace)
