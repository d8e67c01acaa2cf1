"""Helpers of the e2e tests: hippo on the process node, its pods and SQL run inside them."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from typing import Any

import asyncpg
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import ENDPOINTS, PODS, SECRETS
from tests.api_examples import hippo
from tests.operator import ready_cluster

CLUSTERS = POSTGRES_CLUSTERS.resource
PREFIX = "postgres-operator.crunchydata.com/"


# Every pod the operator makes must pass the API server's Pod Security admission at its
# strictest level: the e2e tests' namespaces enforce `restricted`.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def e2e_hippo(namespace: str, **spec: Any) -> JSON:
    """hippo on PostgreSQL 15 (the machine's), without backups (no pgBackRest yet)."""
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"]["postgresVersion"] = 15
    del cluster["spec"]["backups"]
    cluster["spec"].update(spec)
    return cluster


async def create_replicated(kube: Client, namespace: str, **spec: Any) -> None:
    """Create hippo with a primary and a replica, and wait until it is Ready."""
    cluster = e2e_hippo(namespace, **spec)
    cluster["spec"]["instances"][0]["replicas"] = 2
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=180)


async def pods_by_role(kube: Client, namespace: str) -> dict[str, list[JSON]]:
    """hippo's instance pods by Patroni's role label (`master`, `replica`, "" when none)."""
    selector = f"{PREFIX}cluster=hippo,{PREFIX}instance"
    roles: dict[str, list[JSON]] = {}
    for pod in (await kube.list(PODS, namespace, label_selector=selector)).items:
        role = pod["metadata"]["labels"].get(f"{PREFIX}role", "")
        roles.setdefault(role, []).append(pod)
    return roles


async def primary_pod(kube: Client, namespace: str, *, other_than: str = "") -> JSON:
    """The one pod Patroni labelled master, other than `other_than` (a lost primary keeps its
    label until its Patroni runs again: nobody else changes it)."""

    async def probe() -> JSON | None:
        masters = (await pods_by_role(kube, namespace)).get("master", [])
        masters = [p for p in masters if p["metadata"]["name"] != other_than]
        return masters[0] if len(masters) == 1 else None

    try:
        return await wait_for(probe, timeout=120, interval=0.25)
    except AssertionError as error:
        raise AssertionError(f"{error}; {await ha_report(kube, namespace)}") from None


async def writable_primary(kube: Client, namespace: str, *, timeout: float = 120) -> JSON:
    """The pod Patroni labelled master, once its PostgreSQL accepts writes. Patroni labels the
    lock holder master, and its readiness answers 200, before a restarted PostgreSQL listens:
    a cluster Ready after its instances restarted may not answer SQL for a few seconds."""

    async def probe() -> JSON | None:
        pod = await primary_pod(kube, namespace)
        answer = await psql(kube, pod, namespace, "select pg_is_in_recovery()")
        return pod if answer == "f" else None

    return await wait_for(probe, timeout=timeout, interval=0.5)


async def ha_report(kube: Client, namespace: str) -> str:
    """What a failover test's time-out should show: hippo's leader lock and the address its
    Services route to, and each instance pod's role, readiness and container restarts."""
    try:
        leader = await kube.get(ENDPOINTS, "hippo-ha", namespace)
    except NotFoundError:
        leader = {"metadata": {}}
    addresses = [a["ip"] for s in leader.get("subsets") or [] for a in s.get("addresses") or []]
    annotations = leader["metadata"].get("annotations") or {}
    lock = {k: annotations.get(k) for k in ("leader", "renewTime")}
    pods = []
    for role, listed in (await pods_by_role(kube, namespace)).items():
        for pod in listed:
            status = pod.get("status") or {}
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in status.get("conditions") or []
            )
            restarts = {
                s["name"]: s.get("restartCount") for s in status.get("containerStatuses") or []
            }
            pods.append(
                f"{pod['metadata']['name']} ({status.get('podIP')}) role={role or '-'} "
                f"ready={ready} restarts={restarts}"
            )
    return f"hippo-ha lock {lock} routes to {addresses}; pods: {'; '.join(pods)}"


# psql's words for a server that is not accepting connections at that moment: Patroni
# restarts PostgreSQL for a pending restart while the pod stays Ready, and reports the lock
# holder Ready before a restarted PostgreSQL listens.
NOT_LISTENING = (
    "No such file or directory",
    "Connection refused",
    "the database system is starting up",
    "the database system is shutting down",
)


async def psql(
    kube: Client,
    pod: JSON,
    namespace: str,
    query: str,
    database: str = "postgres",
    *,
    connect_timeout: float = 30,
) -> str:
    """Run `query` in the pod's database container as `postgres` (local peer), through the
    API's `pods/exec` as `kubectl exec` does; its output. A server not listening yet is asked
    again for up to `connect_timeout` seconds; any other failure raises at once."""
    argv = ["psql", "-v", "ON_ERROR_STOP=1", "-d", database, "-Atqc", query]
    deadline = time.monotonic() + connect_timeout
    while True:
        done = await podexec.run(kube, namespace, pod["metadata"]["name"], "database", argv)
        if done.exit_code == 0:
            return done.stdout.decode().strip()
        error = done.stderr.decode().strip()
        if not any(w in error for w in NOT_LISTENING) or time.monotonic() > deadline:
            raise RuntimeError(f"psql in {pod['metadata']['name']}: {error}")
        await asyncio.sleep(0.5)


async def timeline(kube: Client, pod: JSON, namespace: str) -> int:
    """The timeline the primary in `pod` writes WAL on (the first 8 hex digits of its WAL file
    name), exact at once, unlike the last checkpoint's."""
    query = "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
    return int(await psql(kube, pod, namespace, query), 16)


class Writer:
    """Inserts increasing numbers through the primary Service (or pgBouncer), reconnecting
    after failures; an attempt fails after `timeout` seconds. Into the table `table` (a
    column `n`), which the test creates."""

    def __init__(
        self, uri: str, tls: ssl.SSLContext, timeout: float = 2, table: str = "writes"
    ) -> None:
        self.uri, self.tls, self.timeout, self.table = uri, tls, timeout, table
        self.acknowledged: list[int] = []
        self.acknowledged_at: list[float] = []  # the wall clock of each acknowledgement
        self.failures = 0
        self.errors: list[str] = []  # when (since the start) and what, per failed attempt
        self.started = time.monotonic()
        self.longest_gap = 0.0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        n, last = 0, time.monotonic()
        connection: asyncpg.Connection | None = None
        while not self._stop.is_set():
            # Every attempt writes a new number: one that timed out may still have committed.
            n += 1
            try:
                if connection is None:
                    connection = await asyncpg.connect(self.uri, ssl=self.tls, timeout=self.timeout)
                await self.write(connection, n)
            # Any failure of the attempt, the client's own included (a connection whose
            # previous statement timed out is unusable): count it, start a new connection.
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
            ) as error:
                self.failures += 1
                self.errors.append(f"{time.monotonic() - self.started:.1f}s {error!r}")
                if connection is not None:
                    connection.terminate()
                connection = None
                await asyncio.sleep(0.05)  # pacing of the retries, not synchronisation
                continue
            self.acknowledged.append(n)
            self.acknowledged_at.append(time.time())
            now = time.monotonic()
            self.longest_gap, last = max(self.longest_gap, now - last), now
        if connection is not None:
            await connection.close()

    async def write(self, connection: asyncpg.Connection, n: int) -> None:
        """One attempt: insert `n`."""
        # A literal: the simple protocol, which transaction pooling serves as is.
        await connection.execute(f"insert into {self.table} values ({n})", timeout=self.timeout)

    async def wait_acknowledged(self, count: int, timeout: float = 60) -> None:
        """Until at least `count` writes in all were acknowledged."""

        async def enough() -> bool:
            return len(self.acknowledged) >= count

        await wait_for(enough, timeout=timeout, interval=0.05)

    def measure_from_now(self) -> None:
        """Count failures and gaps from now on: what a warm-up saw (a pooler still refusing
        after the primary's start) is not what the test measures."""
        self.failures, self.errors, self.longest_gap = 0, [], 0.0

    def stop(self) -> None:
        """End the loop after the current attempt."""
        self._stop.set()

    async def missing(self, connection: asyncpg.Connection) -> set[int]:
        """The acknowledged writes that the table does not hold."""
        stored = {row["n"] for row in await connection.fetch(f"select n from {self.table}")}
        return set(self.acknowledged) - stored

    def summary(self) -> str:
        """The write loop's numbers, for the test's report."""
        return (
            f"{len(self.acknowledged)} writes acknowledged, {self.failures} failed attempts, "
            f"longest gap {self.longest_gap:.1f}s"
        )


async def user_credentials(
    kube: Client, namespace: str, user: str = "hippo"
) -> tuple[str, ssl.SSLContext]:
    """What a client of the cluster has: the `uri` of the user's Secret, and TLS verify-full
    against the CA of the cluster certificate."""
    data = (await kube.get(SECRETS, f"hippo-pguser-{user}", namespace))["data"]
    server = (await kube.get(SECRETS, "hippo-cluster-cert", namespace))["data"]
    tls = ssl.create_default_context(cadata=base64.b64decode(server["ca.crt"]).decode())
    return base64.b64decode(data["uri"]).decode(), tls
