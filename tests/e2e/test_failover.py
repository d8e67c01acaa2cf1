"""Two instances: replication, and the failover when the primary's processes are killed."""

from __future__ import annotations

import time

import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import ENDPOINTS
from tests.e2e.cluster import (
    create_replicated,
    pods_by_role,
    primary_pod,
    psql,
)
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def test_replication_and_failover(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await create_replicated(kube, namespace)
    primary = await primary_pod(kube, namespace)
    replica = (await wait_for(lambda: _replicas(kube, namespace), timeout=60))[0]

    await psql(kube, primary, namespace, "create table t (n int); insert into t values (1)")

    async def replicated() -> bool:
        return await psql(kube, replica, namespace, "select count(*) from t") == "1"

    await wait_for(replicated, timeout=30, interval=0.2)
    assert await psql(kube, replica, namespace, "select pg_is_in_recovery()") == "t"

    # The primary's node is lost: every process of its containers killed, none restarted.
    old = primary["metadata"]["name"]
    killed_at = time.monotonic()
    assert control_plane.kubelet.kill(old, namespace, hold_restarts=True)
    promoted = await primary_pod(kube, namespace, other_than=old)
    assert promoted["metadata"]["name"] == replica["metadata"]["name"]

    async def write() -> bool:
        try:
            await psql(kube, promoted, namespace, "insert into t values (2)")
        except RuntimeError:
            return False
        return True

    await wait_for(write, timeout=60, interval=0.1)
    print(
        f"kill -9 of the primary to the first successful write: {time.monotonic() - killed_at:.1f}s"
    )

    async def primary_endpoints_follow() -> bool:
        leader = await kube.get(ENDPOINTS, "hippo-ha", namespace)
        ips = [a["ip"] for s in leader.get("subsets") or [] for a in s.get("addresses") or []]
        return ips == [promoted["status"]["podIP"]]

    await wait_for(primary_endpoints_follow, timeout=30, interval=0.2)

    # The old primary comes back and rejoins as a replica of the new one, with its data.
    control_plane.kubelet.release(old, namespace)

    async def rejoined() -> bool:
        roles = await pods_by_role(kube, namespace)
        return [p["metadata"]["name"] for p in roles.get("replica", [])] == [old]

    await wait_for(rejoined, timeout=180, interval=0.5)
    rejoined_pod = (await pods_by_role(kube, namespace))["replica"][0]

    async def caught_up() -> bool:
        return await psql(kube, rejoined_pod, namespace, "select count(*) from t") == "2"

    await wait_for(caught_up, timeout=60, interval=0.5)
    await ready_cluster(kube, namespace, timeout=120)


async def _replicas(kube: Client, namespace: str) -> list[JSON] | None:
    replicas = (await pods_by_role(kube, namespace)).get("replica", [])
    return replicas or None
