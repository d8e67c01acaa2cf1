"""A pod-template change rolls through the instances while a client keeps writing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time

import asyncpg
import pytest

from reconciler.envtest.pytest_plugin import wait_for
from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS, SECRETS, STATEFUL_SETS
from tests.e2e.cluster import CLUSTERS, PREFIX, e2e_hippo, ready_cluster

INSTANCES = f"{PREFIX}cluster=hippo,{PREFIX}instance"

pytestmark = pytest.mark.usefixtures("operator")


class Writer:
    """Inserts 1, 2, 3, ... through the primary Service, reconnecting after every failure."""

    def __init__(self, uri: str, tls: ssl.SSLContext) -> None:
        self.uri, self.tls = uri, tls
        self.acknowledged: list[int] = []
        self.failures = 0
        self.longest_gap = 0.0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        n, last = 0, time.monotonic()
        connection: asyncpg.Connection | None = None
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = await asyncpg.connect(self.uri, ssl=self.tls, timeout=2)
                await connection.execute("insert into writes values ($1)", n + 1, timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.failures += 1
                if connection is not None:
                    connection.terminate()
                connection = None
                await asyncio.sleep(0.05)  # pacing of the retries, not synchronisation
                continue
            n += 1
            self.acknowledged.append(n)
            now = time.monotonic()
            self.longest_gap, last = max(self.longest_gap, now - last), now
        if connection is not None:
            await connection.close()

    def stop(self) -> None:
        """End the loop after the current attempt."""
        self._stop.set()


async def test_rolling_update_keeps_every_acknowledged_write(kube: Client, namespace: str) -> None:
    cluster = e2e_hippo(namespace)
    cluster["spec"]["instances"][0]["replicas"] = 2
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=180)
    data = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]
    server = (await kube.get(SECRETS, "hippo-cluster-cert", namespace))["data"]
    uri = base64.b64decode(data["uri"]).decode()
    tls = ssl.create_default_context(cadata=base64.b64decode(server["ca.crt"]).decode())

    async def ready_connection() -> asyncpg.Connection | None:
        with contextlib.suppress(asyncpg.InvalidAuthorizationSpecificationError):
            return await asyncpg.connect(uri, ssl=tls, timeout=5)
        return None

    setup = await wait_for(ready_connection, timeout=60, interval=0.5)
    await setup.execute("create table writes (n int primary key)")
    await setup.close()

    writer = Writer(uri, tls)
    task = asyncio.create_task(writer.run())
    await wait_for(lambda: _true(len(writer.acknowledged) > 20), timeout=30)
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
    await wait_for(lambda: _true(len(writer.acknowledged) > 0), timeout=5)
    took = time.monotonic() - started
    writer.stop()
    await task

    check = await wait_for(ready_connection, timeout=60, interval=0.5)
    stored = {row["n"] for row in await check.fetch("select n from writes")}
    await check.close()
    assert set(writer.acknowledged) <= stored
    print(
        f"rolling update of 2 instances: {took:.1f}s; {len(writer.acknowledged)} writes "
        f"acknowledged, {writer.failures} failed attempts, longest gap {writer.longest_gap:.1f}s"
    )


async def _true(value: bool) -> bool:
    return value
