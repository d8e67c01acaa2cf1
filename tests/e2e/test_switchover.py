"""Through Patroni's REST API: a switchover by annotation, and dynamic configuration changes."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import STATEFUL_SETS
from tests.e2e.cluster import (
    CLUSTERS,
    PREFIX,
    Writer,
    create_replicated,
    pods_by_role,
    primary_pod,
    psql,
    timeline,
    user_credentials,
)
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def test_switchover_by_annotation_under_writes(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await create_replicated(kube, namespace, patroni={"switchover": {"enabled": True}})
    primary = await primary_pod(kube, namespace)
    # A new cluster's primary is the one that bootstrapped it: no failover on the way.
    assert await timeline(kube, primary, namespace) == 1
    instances = (
        await kube.list(STATEFUL_SETS, namespace, label_selector=f"{PREFIX}instance")
    ).items
    current = primary["metadata"]["labels"][f"{PREFIX}instance"]
    target = next(s["metadata"]["name"] for s in instances if s["metadata"]["name"] != current)

    # An impossible target is refused with a condition and an Event, and nothing is recorded.
    await _patch(kube, namespace, {"spec": {"patroni": {"switchover": {"targetInstance": "nope"}}}})
    await _annotate(kube, namespace, "first")

    async def refused() -> bool:
        # The Event is posted during the reconcile, the condition with its status at the end.
        events = await kube.request("GET", f"/api/v1/namespaces/{namespace}/events")
        warned = any(e["reason"] == "SwitchoverInvalid" for e in events["items"])
        cluster = await kube.get(CLUSTERS, "hippo", namespace)
        return warned and "SwitchoverRefused" in _conditions(cluster)

    await wait_for(refused, timeout=60, interval=0.5)

    # Correcting the spec alone does not carry out the refused trigger: once the operator has
    # reconciled that generation, nothing has switched over.
    await _patch(kube, namespace, {"spec": {"patroni": {"switchover": {"targetInstance": target}}}})
    cluster = await ready_cluster(kube, namespace)
    assert "switchover" not in cluster["status"]["patroni"]
    assert "SwitchoverRefused" in _conditions(cluster)
    assert (await primary_pod(kube, namespace))["metadata"]["name"] == primary["metadata"]["name"]

    # The switchover itself, asked for again, under a continuous write loop through the primary
    # Service.
    uri, tls = await user_credentials(kube, namespace)

    async def writable() -> bool:
        try:
            connection = await asyncpg.connect(uri, ssl=tls, timeout=5)
        except asyncpg.InvalidAuthorizationSpecificationError:
            return False
        await connection.execute("create table if not exists writes (n int primary key)")
        await connection.close()
        return True

    await wait_for(writable, timeout=60, interval=0.5)
    writer = Writer(uri, tls)
    task = asyncio.create_task(writer.run())
    await writer.wait_acknowledged(20, timeout=30)
    started = time.monotonic()
    await _annotate(kube, namespace, "second")

    async def switched() -> JSON | None:
        cluster = await kube.get(CLUSTERS, "hippo", namespace)
        status = cluster.get("status") or {}
        return cluster if (status.get("patroni") or {}).get("switchover") == "second" else None

    cluster = await wait_for(switched, timeout=120, interval=0.5)
    # PGO's switchoverTimeline: the timeline the switchover started from.
    assert cluster["status"]["patroni"]["switchoverTimeline"] == 1
    assert "SwitchoverRefused" not in _conditions(cluster)
    promoted = await primary_pod(kube, namespace, other_than=primary["metadata"]["name"])
    assert promoted["metadata"]["labels"][f"{PREFIX}instance"] == target
    took = time.monotonic() - started
    done = len(writer.acknowledged)
    await writer.wait_acknowledged(done + 20)
    writer.stop()
    await task
    check = await asyncpg.connect(uri, ssl=tls, timeout=5)
    assert not await writer.missing(check)
    await check.close()
    assert await timeline(kube, promoted, namespace) == 2
    print(f"switchover: {took:.1f}s from the annotation to the new primary; {writer.summary()}")


async def test_dynamic_configuration_and_pending_restarts(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await create_replicated(kube, namespace)
    promoted = await primary_pod(kube, namespace)

    # A dynamic configuration change reaches PostgreSQL on every instance through the DCS.
    parameters = {"postgresql": {"parameters": {"work_mem": "7MB"}}}
    await _patch(kube, namespace, {"spec": {"patroni": {"dynamicConfiguration": parameters}}})

    async def applied() -> bool:
        return await psql(kube, promoted, namespace, "show work_mem") == "7MB"

    await wait_for(applied, timeout=60, interval=0.5)

    # One that needs a restart: replicas restart first, then the primary, and all run it.
    parameters = {"postgresql": {"parameters": {"work_mem": "7MB", "max_connections": "120"}}}
    await _patch(kube, namespace, {"spec": {"patroni": {"dynamicConfiguration": parameters}}})

    async def restarted() -> bool:
        roles = await pods_by_role(kube, namespace)
        pods = roles.get("master", []) + roles.get("replica", [])
        shown = {await psql(kube, p, namespace, "show max_connections") for p in pods}
        return len(pods) == 2 and shown == {"120"}

    await wait_for(restarted, timeout=180, interval=1)


async def _patch(kube: Client, namespace: str, patch: JSON) -> None:
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)


def _conditions(cluster: JSON) -> set[str]:
    return {c["type"] for c in (cluster.get("status") or {}).get("conditions") or []}


async def _annotate(kube: Client, namespace: str, value: str) -> None:
    patch = {"metadata": {"annotations": {f"{PREFIX}trigger-switchover": value}}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
