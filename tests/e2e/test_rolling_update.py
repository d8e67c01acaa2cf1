"""A pod-template change rolls through the instances while a client keeps writing."""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import pytest
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS, STATEFUL_SETS
from tests.e2e.cluster import (
    CLUSTERS,
    PREFIX,
    Writer,
    create_replicated,
    user_credentials,
)

INSTANCES = f"{PREFIX}cluster=hippo,{PREFIX}instance"

pytestmark = pytest.mark.usefixtures("operator")


async def test_rolling_update_keeps_every_acknowledged_write(kube: Client, namespace: str) -> None:
    await create_replicated(kube, namespace)
    uri, tls = await user_credentials(kube, namespace)

    async def ready_connection() -> asyncpg.Connection | None:
        with contextlib.suppress(asyncpg.InvalidAuthorizationSpecificationError):
            return await asyncpg.connect(uri, ssl=tls, timeout=5)
        return None

    setup = await wait_for(ready_connection, timeout=60, interval=0.5)
    await setup.execute("create table writes (n int primary key)")
    await setup.close()

    writer = Writer(uri, tls)
    task = asyncio.create_task(writer.run())
    await writer.wait_acknowledged(20, timeout=30)
    statefulsets = (await kube.list(STATEFUL_SETS, namespace, label_selector=INSTANCES)).items
    before = {s["status"]["updateRevision"] for s in statefulsets}
    started = time.monotonic()
    resources = {"requests": {"cpu": "100m"}}  # a template change that restarts each pod
    patch = [{"op": "add", "path": "/spec/instances/0/resources", "value": resources}]
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace, patch_type="json")

    async def rolled() -> bool:
        statefulsets = (await kube.list(STATEFUL_SETS, namespace, label_selector=INSTANCES)).items
        revisions = {(s.get("status") or {}).get("updateRevision") for s in statefulsets}
        if revisions & before:
            return False  # not every StatefulSet has taken in the new template yet
        pods = (await kube.list(PODS, namespace, label_selector=INSTANCES)).items
        return len(pods) == 2 and all(
            p["metadata"]["labels"].get("controller-revision-hash") in revisions
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
            for p in pods
        )

    await wait_for(rolled, timeout=300, interval=1)

    took = time.monotonic() - started
    writer.stop()
    await task

    check = await wait_for(ready_connection, timeout=60, interval=0.5)
    assert not await writer.missing(check)
    await check.close()
    print(f"rolling update of 2 instances: {took:.1f}s; {writer.summary()}")
