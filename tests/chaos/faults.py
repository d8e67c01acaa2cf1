"""What the chaos scenarios do to the process node, and how they watch the writes."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

import asyncpg
from reconciler_envtest import network
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client
from tests.e2e.cluster import Writer, user_credentials

PRIMARY_LOCK_RELEASED = "PrimaryLockReleased"

# PGO's Patroni defaults, and the fast-failover settings the README documents: a lock of 10 s
# renewed every 2 s, DCS and replication calls given up after 3 s (loop_wait + 2 retry_timeout
# must fit in ttl, else a primary cut off from the DCS demotes after a replica took over).
DEFAULTS: JSON = {}
FAST: JSON = {
    "leaderLeaseDurationSeconds": 10,
    "syncPeriodSeconds": 2,
    "dynamicConfiguration": {"retry_timeout": 3},
}


class MemberWriter(Writer):
    """A `Writer` that also records which server (its address) acknowledged each write."""

    def __init__(self, uri: str, tls: ssl.SSLContext) -> None:
        super().__init__(uri, tls)
        self.servers: list[str] = []
        self.task: asyncio.Task[None] | None = None
        # Where `writes` is: the user's database and schema (its own, named after it).
        self.database = self.schema = ""

    async def write(self, connection: asyncpg.Connection, n: int) -> None:
        query = f"insert into {self.table} values ({n}) returning inet_server_addr()::text"
        server = await connection.fetchval(query, timeout=self.timeout)
        self.servers.append(str(server).split("/")[0])

    def acknowledged_by(self, address: str) -> list[float]:
        """When the server at `address` acknowledged writes (wall clock)."""
        return [t for t, s in zip(self.acknowledged_at, self.servers, strict=True) if s == address]

    def first_acknowledged_by_other(self, address: str, after: float) -> float | None:
        """The first acknowledgement after `after` by a server other than `address`."""
        times = zip(self.acknowledged_at, self.servers, strict=True)
        return next((t for t, s in times if s != address and t > after), None)


async def started_writer(kube: Client, namespace: str) -> MemberWriter:
    """A `MemberWriter` through the primary Service into `writes`, started and warm."""
    uri, tls = await user_credentials(kube, namespace)

    writer = MemberWriter(uri, tls)

    async def writable() -> bool:
        try:
            connection = await asyncpg.connect(uri, ssl=tls, timeout=5)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.execute("create table if not exists writes (n int primary key)")
        where = await connection.fetchrow("select current_database(), current_schema()")
        writer.database, writer.schema = where[0], where[1]
        await connection.close()
        return True

    await wait_for(writable, timeout=90, interval=0.5)
    writer.task = asyncio.create_task(writer.run())
    await writer.wait_acknowledged(20, timeout=60)
    return writer


async def stop(writer: MemberWriter) -> None:
    """Stop the writer's loop and wait for its last attempt."""
    writer.stop()
    if writer.task is not None:
        await writer.task


@dataclass
class LocalWrites:
    """Writes into `writes` from inside a pod (its local socket): the side of a partition
    that clients outside cannot reach. Acknowledged and refused attempts, by wall clock."""

    acknowledged: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)


async def write_locally(
    kube: Client, pod: JSON, namespace: str, writer: MemberWriter, *, seconds: float, first: int
) -> LocalWrites:
    """Insert `first`, `first`+1, ... into the `writer`'s table through the pod's local socket
    for `seconds`."""
    script = (
        f"end=$(( $(date +%s) + {int(seconds)} )); i={first}; "
        'while [ "$(date +%s)" -lt "$end" ]; do i=$((i+1)); '
        f'if psql -d {writer.database} -Atqc "insert into {writer.schema}.writes values ($i)" '
        ">/dev/null 2>&1; "
        'then echo "ok $(date +%s.%N)"; else echo "no $(date +%s.%N)"; fi; sleep 0.05; done'
    )
    done = await podexec.run(
        kube,
        namespace,
        pod["metadata"]["name"],
        "database",
        ["bash", "-c", script],
        timeout=seconds + 30,
    )
    writes = LocalWrites()
    for line in done.stdout.decode().splitlines():
        outcome, at = line.split()
        (writes.acknowledged if outcome == "ok" else writes.refused).append(float(at))
    return writes


async def cut_network(control_plane: ControlPlane, pod: JSON, namespace: str) -> float:
    """Take the pod's only link down inside its network namespace: nothing reaches it and it
    reaches nothing, while its processes run on. The wall clock of the cut."""
    pid = control_plane.kubelet.sandbox_pid(namespace, pod["metadata"]["name"])
    await network.run("nsenter", f"--net=/proc/{pid}/ns/net", "ip", "link", "set", "eth0", "down")
    return time.time()


async def events(kube: Client, namespace: str, reason: str) -> list[JSON]:
    """The namespace's Events with `reason`."""
    found = await kube.request("GET", f"/api/v1/namespaces/{namespace}/events")
    return [e for e in found["items"] if e["reason"] == reason]


# Patroni's synchronous replication as README's "Nothing acknowledged is lost" asks for it: a
# commit returns once a replica has it, and never without one.
SYNCHRONOUS: JSON = {
    "dynamicConfiguration": {"synchronous_mode": True, "synchronous_mode_strict": True}
}


@dataclass(frozen=True)
class Audit:
    """The writer's record against what the new primary holds."""

    lost: set[int]  # acknowledged, not there
    unacknowledged: int  # attempts that failed or timed out
    unacknowledged_stored: int  # of those, committed after all

    def summary(self) -> str:
        """The figures for the report."""
        return (
            f"{len(self.lost)} acknowledged writes lost; {self.unacknowledged} attempts not "
            f"acknowledged, {self.unacknowledged_stored} of them committed all the same"
        )


async def audit(writer: MemberWriter) -> Audit:
    """Read `writes` through the primary Service and compare with what was acknowledged."""
    connection = await asyncpg.connect(writer.uri, ssl=writer.tls, timeout=10)
    try:
        stored = {row["n"] for row in await connection.fetch("select n from writes")}
    finally:
        await connection.close()
    acknowledged = set(writer.acknowledged)
    # Every attempt wrote the next number: those not acknowledged are the failed attempts.
    attempted = set(range(1, len(acknowledged) + writer.failures + 1))
    unacknowledged = attempted - acknowledged
    return Audit(acknowledged - stored, len(unacknowledged), len(unacknowledged & stored))
