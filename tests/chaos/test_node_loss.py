"""A node lost for good, with node-local volumes: the operator's node-loss recovery
(InstanceNodeLossRecovery gate and the cluster's annotation) does PGO's manual runbook.

Three nodes are added to the process node for the test (`tests/node_pool.py`); hippo's two
instances run there. The primary's node is lost (its processes die, it reports nothing more)
and deleted, as `kubectl delete node` does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES, PODS
from tests.chaos.faults import PRIMARY_LOCK_RELEASED, events, started_writer, stop
from tests.e2e.cluster import CLUSTERS, e2e_hippo, primary_pod, psql
from tests.node_pool import node_pool, on_node_pool
from tests.operator import found, ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


@pytest_asyncio.fixture(loop_scope="session")
async def nodes(control_plane: ControlPlane) -> AsyncIterator[tuple[str, ...]]:
    """Three more nodes, a pool hippo's instances are bound to; gone afterwards."""
    async with node_pool(control_plane) as names:
        yield names


# "deleted": the administrator deletes the lost Node (`make test`). "not-ready": nobody does;
# kube-controller-manager marks it NotReady after its grace period (50 s), and the operator
# waits PGO_NODE_LOSS_AFTER_SECONDS more (20 s in the e2e operator) (`make chaos`).
@pytest.mark.parametrize("fate", ["deleted", pytest.param("not-ready", marks=pytest.mark.full)])
async def test_the_primary_s_node_lost_for_good_is_rebuilt_elsewhere(
    kube: Client, namespace: str, control_plane: ControlPlane, nodes: tuple[str, ...], fate: str
) -> None:
    await kube.create(CLUSTERS, on_node_pool(e2e_hippo(namespace), recovery=True))
    await ready_cluster(kube, namespace, timeout=240)
    lost = await primary_pod(kube, namespace)
    name, lost_node = lost["metadata"]["name"], lost["spec"]["nodeName"]
    assert lost_node in nodes
    claim_name = naming.instance_data_volume(lost["metadata"]["labels"][naming.LABEL_INSTANCE])
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
    volume = await kube.get(PERSISTENT_VOLUMES, claim["spec"]["volumeName"])
    assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][
        0
    ]["values"] == [lost_node]
    await psql(kube, lost, namespace, "create table keep as select generate_series(1, 1000) n")
    writer = await started_writer(kube, namespace)

    # The node is lost for good; the administrator (or the cloud's node controller) may delete
    # its Node: the first step of PGO's runbook, the only one left to people.
    lost_at = time.time()
    started = time.monotonic()
    await control_plane.lose_node(lost_node)
    if fate == "deleted":
        await kube.delete(NODES, lost_node)

    survivor = await primary_pod(kube, namespace, other_than=name)
    failover_in = time.monotonic() - started
    address = lost["status"]["podIP"]

    async def resumed_on_survivor() -> float | None:
        return writer.first_acknowledged_by_other(address, lost_at)

    resumed = await wait_for(resumed_on_survivor, timeout=120, interval=0.25)

    async def rebuilt() -> JSON | None:
        pod = await found(kube, PODS, name, namespace)
        if pod is None or pod["metadata"]["uid"] == lost["metadata"]["uid"]:
            return None
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        return pod if ready else None

    pod = await wait_for(rebuilt, timeout=300, interval=1.0)
    rebuilt_in = time.monotonic() - started
    assert pod["spec"]["nodeName"] not in (lost_node, "")
    fresh = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
    assert fresh["metadata"]["uid"] != claim["metadata"]["uid"]
    assert pod["metadata"]["labels"].get(naming.LABEL_ROLE) != naming.ROLE_PATRONI_LEADER

    async def recorded() -> bool:
        reasons = (
            naming.REASON_INSTANCE_NODE_LOST,
            naming.REASON_INSTANCE_VOLUME_RELEASED,
            naming.REASON_INSTANCE_RECREATED,
        )
        return all([await events(kube, namespace, reason) for reason in reasons])

    await wait_for(recorded, timeout=60, interval=0.5)
    if fate == "deleted":
        # The primary's lock was released by the operator once stale (20 s with PGO's
        # defaults), before Patroni's own expiry (30 s). A NotReady node counts as lost only
        # well after that expiry: Patroni has elected a new primary by then.
        released = await events(kube, namespace, PRIMARY_LOCK_RELEASED)
        assert any(lost_node in e["message"] for e in released), released
    await writer.wait_acknowledged(len(writer.acknowledged) + 20, timeout=60)
    await stop(writer)

    # Nothing left Released; the lost volume is gone.
    volumes = (await kube.list(PERSISTENT_VOLUMES)).items
    assert not [v["metadata"]["name"] for v in volumes if v["status"].get("phase") == "Released"]
    assert volume["metadata"]["name"] not in {v["metadata"]["name"] for v in volumes}
    # The rebuilt replica has the data, copied from the new primary.
    query = "select count(*), sum(n) from keep"
    assert await psql(kube, survivor, namespace, query) == "1000|500500"

    async def replicated() -> bool:
        return await psql(kube, pod, namespace, query) == "1000|500500"

    await wait_for(replicated, timeout=60, interval=1.0)
    print(
        f"\n[chaos] node lost ({fate}): new primary in {failover_in:.1f} s, first "
        f"acknowledged write after {resumed - lost_at:.1f} s, instance rebuilt on "
        f"{pod['spec']['nodeName']} and Ready in {rebuilt_in:.1f} s"
    )
