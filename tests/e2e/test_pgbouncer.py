"""pgBouncer in front of hippo, for real: clients through it with TLS verify-full, transaction
pooling, users added later, scaling and its disruption budget, pooling turned off and on."""

from __future__ import annotations

import asyncio
import base64
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.postgrescluster.observed import pod_ready
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    SECRETS,
    SERVICES,
    STATEFUL_SETS,
    Resource,
)
from tests.e2e.cluster import (
    CLUSTERS,
    PREFIX,
    Writer,
    create_replicated,
    e2e_hippo,
    primary_pod,
    psql,
    user_credentials,
)
from tests.operator import found, ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

INSTANCES = f"{PREFIX}cluster=hippo,{PREFIX}instance"
KINDS: tuple[Resource, ...] = (DEPLOYMENTS, SERVICES, CONFIG_MAPS, SECRETS)


async def pgbouncer_client(
    kube: Client, namespace: str, user: str = "hippo"
) -> tuple[str, ssl.SSLContext]:
    """What a client of the pooler has: `pgbouncer-uri` of the user's Secret and TLS
    verify-full against the CA of `<c>-pgbouncer` (PGO documents that key)."""
    data = (await kube.get(SECRETS, f"hippo-pguser-{user}", namespace))["data"]
    bouncer = (await kube.get(SECRETS, "hippo-pgbouncer", namespace))["data"]
    authority = base64.b64decode(bouncer["pgbouncer-frontend.ca-roots"]).decode()
    tls = ssl.create_default_context(cadata=authority)
    return base64.b64decode(data["pgbouncer-uri"]).decode(), tls


async def connect_through_pgbouncer(
    kube: Client, namespace: str, user: str = "hippo", **options: Any
) -> asyncpg.Connection | None:
    """A connection as `user` through pgBouncer, or None while it cannot log in yet."""
    try:
        uri, tls = await pgbouncer_client(kube, namespace, user)
    except (NotFoundError, KeyError):
        return None
    try:
        return await asyncpg.connect(uri, ssl=tls, timeout=5, **options)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        print(f"not through pgBouncer yet: {error!r}")
        return None


async def _proxy_available(kube: Client, namespace: str, replicas: int) -> JSON | None:
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    status = cluster.get("status") or {}
    available = [c for c in status.get("conditions") or [] if c["type"] == "ProxyAvailable"]
    bouncer = (status.get("proxy") or {}).get("pgBouncer") or {}
    if available and available[0]["status"] == "True" and bouncer.get("readyReplicas") == replicas:
        return cluster
    return None


async def _role_count(kube: Client, namespace: str) -> str:
    primary = await primary_pod(kube, namespace)
    query = "select count(*) from pg_roles where rolname = '_crunchypgbouncer'"
    return await psql(kube, primary, namespace, query)


async def _bouncer_pods(kube: Client, namespace: str) -> set[str]:
    selector = "postgres-operator.crunchydata.com/role=pgbouncer"
    return {
        p["metadata"]["uid"]
        for p in (await kube.list(PODS, namespace, label_selector=selector)).items
    }


async def _scale(kube: Client, namespace: str, replicas: int) -> None:
    patch = {"spec": {"proxy": {"pgBouncer": {"replicas": replicas}}}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
    await wait_for(lambda: _proxy_available(kube, namespace, replicas), timeout=120)


async def _budget(kube: Client, namespace: str, *, present: bool) -> None:
    async def probe() -> bool:
        budget = await found(kube, POD_DISRUPTION_BUDGETS, "hippo-pgbouncer", namespace)
        return (budget is not None) == present

    await wait_for(probe, timeout=60)


async def _transaction_pooling(kube: Client, namespace: str) -> None:
    """As the user, verify-full against pgBouncer's CA; transaction pooling: one server
    connection (default_pool_size 1) serves two clients, whose statement caches are off as
    transaction pooling asks."""
    first = await wait_for(
        lambda: connect_through_pgbouncer(kube, namespace, statement_cache_size=0),
        timeout=120,
        interval=1,
    )
    second = await connect_through_pgbouncer(kube, namespace, statement_cache_size=0)
    assert second is not None
    assert await first.fetchval("select current_user") == "hippo"
    await first.execute("create table pooled (n int)")
    await second.execute("insert into pooled values (1)")
    pids = {await c.fetchval("select pg_backend_pid()") for c in (first, second)}
    assert await first.fetchval("select count(*) from pooled") == 1
    await first.close()
    await second.close()
    assert len(pids) == 1, f"two server connections ({pids}) with default_pool_size 1"


async def _presented_certificate(kube: Client, namespace: str) -> bytes:
    """The certificate pgBouncer presents now to a new client (verified, as clients do)."""
    host = f"hippo-pgbouncer.{namespace}.svc"
    _, tls = await pgbouncer_client(kube, namespace)
    reader, writer = await asyncio.open_connection(host, 5432)
    try:
        writer.write(struct.pack("!ii", 8, 80877103))  # PostgreSQL's SSLRequest
        assert await reader.readexactly(1) == b"S"
        await writer.start_tls(tls, server_hostname=host)
        return bytes(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
    finally:
        writer.close()


async def _certificate_rotation(kube: Client, namespace: str) -> None:
    """A new frontend certificate reaches pgBouncer by a reload: new clients get it, a client
    connected before keeps its connection."""
    before = await _presented_certificate(kube, namespace)
    connected = await connect_through_pgbouncer(kube, namespace, statement_cache_size=0)
    assert connected is not None
    keys = {"pgbouncer-frontend.crt": None, "pgbouncer-frontend.key": None}
    await kube.patch(SECRETS, "hippo-pgbouncer", {"data": keys}, namespace=namespace)

    async def rotated() -> bool:
        return await _presented_certificate(kube, namespace) != before

    await wait_for(rotated, timeout=60, interval=1)
    assert await connected.fetchval("select count(*) from pooled") == 1
    await connected.close()


async def _user_added_later(kube: Client, namespace: str) -> None:
    """A user added to the spec logs in through pgBouncer; no pgBouncer pod restarted."""
    pods = await _bouncer_pods(kube, namespace)
    users = [{"name": "hippo", "databases": ["zoo"]}, {"name": "rhino", "databases": ["savanna"]}]
    await kube.patch(CLUSTERS, "hippo", {"spec": {"users": users}}, namespace=namespace)
    rhino = await wait_for(
        lambda: connect_through_pgbouncer(kube, namespace, "rhino", statement_cache_size=0),
        timeout=120,
        interval=1,
    )
    assert await rhino.fetchval("select current_database()") == "savanna"
    await rhino.close()
    assert await _bouncer_pods(kube, namespace) == pods


async def _turned_off(kube: Client, namespace: str) -> None:
    """Off: the objects, the role, the schemas and the user Secret keys go."""
    await kube.patch(CLUSTERS, "hippo", {"spec": {"proxy": None}}, namespace=namespace)

    async def removed() -> bool:
        for resource in (*KINDS, POD_DISRUPTION_BUDGETS):
            if await found(kube, resource, "hippo-pgbouncer", namespace) is not None:
                return False
        data = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]
        if any(key.startswith("pgbouncer-") for key in data):
            return False
        return await _role_count(kube, namespace) == "0"

    await wait_for(removed, timeout=120, interval=1)
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    assert "ProxyAvailable" not in {c["type"] for c in cluster["status"]["conditions"]}
    primary = await primary_pod(kube, namespace)
    schema = "select count(*) from pg_namespace where nspname = 'pgbouncer'"
    assert await psql(kube, primary, namespace, schema, database="zoo") == "0"


async def test_pooling_through_pgbouncer(kube: Client, namespace: str) -> None:
    proxy = {
        "pgBouncer": {
            "replicas": 1,
            "config": {"global": {"pool_mode": "transaction", "default_pool_size": "1"}},
        }
    }
    cluster = e2e_hippo(namespace, users=[{"name": "hippo", "databases": ["zoo"]}], proxy=proxy)
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=180)
    cluster = await wait_for(lambda: _proxy_available(kube, namespace, 1), timeout=120)
    print(f"status.proxy.pgBouncer: {cluster['status']['proxy']['pgBouncer']}")
    await _budget(kube, namespace, present=False)
    await _transaction_pooling(kube, namespace)
    await _certificate_rotation(kube, namespace)
    # What the operator set up in PostgreSQL: the schema in every database, templates too.
    primary = await primary_pod(kube, namespace)
    for database in ("postgres", "zoo", "template1"):
        schema = "select count(*) from pg_namespace where nspname = 'pgbouncer'"
        assert await psql(kube, primary, namespace, schema, database=database) == "1"
    await _user_added_later(kube, namespace)

    # Two replicas: a budget keeps one; one replica: no budget; two again: it returns.
    await _scale(kube, namespace, 2)
    await _budget(kube, namespace, present=True)
    pdb = await kube.get(POD_DISRUPTION_BUDGETS, "hippo-pgbouncer", namespace)
    assert pdb["spec"]["minAvailable"] == 1
    await _scale(kube, namespace, 1)
    await _budget(kube, namespace, present=False)
    await _scale(kube, namespace, 2)
    await _budget(kube, namespace, present=True)

    await _turned_off(kube, namespace)
    # On again: everything is back, and the user logs in through it.
    await kube.patch(CLUSTERS, "hippo", {"spec": {"proxy": proxy}}, namespace=namespace)
    await wait_for(lambda: _proxy_available(kube, namespace, 1), timeout=120)
    again = await wait_for(
        lambda: connect_through_pgbouncer(kube, namespace, statement_cache_size=0),
        timeout=120,
        interval=1,
    )
    assert await again.fetchval("select count(*) from pooled") == 1
    await again.close()
    assert await _role_count(kube, namespace) == "1"


async def _writes_during(
    kube: Client, namespace: str, change: Callable[[], Awaitable[None]]
) -> tuple[Writer, Writer]:
    """The same write loop through pgBouncer and straight to `<c>-primary` while `change`
    runs; both stopped after 20 more writes each once it is done."""
    # Each phase's writers count from 1 again: rows of an earlier phase would turn their first
    # writes into duplicate keys, hundreds of them to wade through before the change starts.
    setup = await wait_for(
        lambda: connect_through_pgbouncer(kube, namespace, statement_cache_size=0), timeout=60
    )
    await setup.execute("truncate pooled_writes, direct_writes")
    await setup.close()
    direct, direct_tls = await user_credentials(kube, namespace)
    pooled, pooled_tls = await pgbouncer_client(kube, namespace)
    # The same patience for both: a write is failed after 10 s.
    writers = (
        Writer(pooled, pooled_tls, timeout=10, table="pooled_writes"),
        Writer(direct, direct_tls, timeout=10, table="direct_writes"),
    )
    tasks = [asyncio.create_task(w.run()) for w in writers]
    for writer in writers:
        await writer.wait_acknowledged(20, timeout=60)
        writer.measure_from_now()
    await change()
    for writer in writers:
        await writer.wait_acknowledged(len(writer.acknowledged) + 20, timeout=60)
        writer.stop()
    await asyncio.gather(*tasks)
    check = await wait_for(
        lambda: connect_through_pgbouncer(kube, namespace, statement_cache_size=0), timeout=60
    )
    for writer in writers:
        assert not await writer.missing(check)
    await check.close()
    return writers


async def test_primary_moves_without_errors_through_pgbouncer(kube: Client, namespace: str) -> None:
    """A switchover by annotation and a rolling update, each under the same write loop through
    pgBouncer (transaction pooling: the pools are paused while the primary moves) and straight
    to the primary Service: pgBouncer's loop has no failed write."""
    proxy = {"pgBouncer": {"replicas": 2, "config": {"global": {"pool_mode": "transaction"}}}}
    await create_replicated(
        kube,
        namespace,
        users=[{"name": "hippo", "databases": ["zoo"]}],
        proxy=proxy,
        patroni={"switchover": {"enabled": True}},
    )
    await wait_for(lambda: _proxy_available(kube, namespace, 2), timeout=120)
    setup = await wait_for(
        lambda: connect_through_pgbouncer(kube, namespace, statement_cache_size=0),
        timeout=120,
        interval=1,
    )
    await setup.execute("create table pooled_writes (n int primary key)")
    await setup.execute("create table direct_writes (n int primary key)")
    await setup.close()
    primary = await primary_pod(kube, namespace)

    async def switchover() -> None:
        patch = {"metadata": {"annotations": {f"{PREFIX}trigger-switchover": "one"}}}
        await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
        await primary_pod(kube, namespace, other_than=primary["metadata"]["name"])

    pooled, direct = await _writes_during(kube, namespace, switchover)
    print(f"switchover, through pgBouncer: {pooled.summary()} {pooled.errors}")
    print(f"switchover, straight to the primary: {direct.summary()}")
    assert pooled.failures == 0

    async def rolling_update() -> None:
        before = set((await _revisions(kube, namespace)).values())
        resources = {"requests": {"cpu": "100m"}}  # a template change that restarts each pod
        patch = [{"op": "add", "path": "/spec/instances/0/resources", "value": resources}]
        await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace, patch_type="json")
        await wait_for(lambda: _rolled(kube, namespace, before), timeout=300, interval=1)

    pooled, direct = await _writes_during(kube, namespace, rolling_update)
    print(f"rolling update, through pgBouncer: {pooled.summary()} {pooled.errors}")
    print(f"rolling update, straight to the primary: {direct.summary()}")
    assert pooled.failures == 0


async def _revisions(kube: Client, namespace: str) -> dict[str, str | None]:
    """Each instance's current template revision."""
    statefulsets = (await kube.list(STATEFUL_SETS, namespace, label_selector=INSTANCES)).items
    return {
        s["metadata"]["name"]: (s.get("status") or {}).get("updateRevision") for s in statefulsets
    }


async def _rolled(kube: Client, namespace: str, before: set[str | None]) -> bool:
    """Every instance has a new template revision, and its pod runs it and is ready."""
    current = await _revisions(kube, namespace)
    if before & set(current.values()):
        return False
    pods = (await kube.list(PODS, namespace, label_selector=INSTANCES)).items
    return len(pods) == len(current) and all(
        pod_ready(p)
        and p["metadata"]["labels"].get("controller-revision-hash")
        == current.get(p["metadata"]["labels"][f"{PREFIX}instance"])
        for p in pods
    )
