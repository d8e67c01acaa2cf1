"""pgBouncer in front of hippo, for real: clients through it with TLS verify-full, transaction
pooling, users added later, scaling and its disruption budget, pooling turned off and on."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import asyncpg
import pytest
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    SECRETS,
    SERVICES,
    Resource,
)
from tests.e2e.cluster import CLUSTERS, e2e_hippo, primary_pod, psql
from tests.operator import found, ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

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
