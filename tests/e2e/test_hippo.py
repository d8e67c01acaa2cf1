"""hippo on real processes: Patroni bootstraps PostgreSQL, the operator provisions the user, and
a client connects with the user Secret alone, TLS verify-full."""

from __future__ import annotations

import asyncpg
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS
from tests.e2e.cluster import (
    CLUSTERS,
    e2e_hippo,
    primary_pod,
    psql,
    user_credentials,
)
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def test_hippo_runs_postgres_and_serves_its_user(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace)
    pod = await primary_pod(kube, namespace)
    assert await psql(control_plane, pod, namespace, "select pg_is_in_recovery()") == "f"

    uri, tls = await user_credentials(kube, namespace)
    assert uri.startswith("postgresql://hippo:")
    assert uri.endswith(f"@hippo-primary.{namespace}.svc:5432/zoo")

    # The role can log in as soon as it exists, its schema comes after (as with PGO): the
    # provisioning is complete once status.usersRevision records it.
    async def provisioned() -> bool:
        status = (await kube.get(CLUSTERS, "hippo", namespace)).get("status") or {}
        return bool(status.get("usersRevision"))

    await wait_for(provisioned, timeout=60, interval=0.5)
    connection = await asyncpg.connect(uri, ssl=tls, timeout=5)
    try:
        assert await connection.fetchval("select current_schema()") == "hippo"  # its own schema
        await connection.execute("create table animals (name text)")
        await connection.execute("insert into animals values ('hippo')")
        assert await connection.fetchval("select name from animals") == "hippo"
        assert await connection.fetchval("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
    finally:
        await connection.close()

    # Mounted volumes follow their sources, as with a kubelet: here the downward API's.
    name = pod["metadata"]["name"]
    annotation = {"metadata": {"annotations": {"e2e.reconciler.dev/seen": "yes"}}}
    await kube.patch(PODS, name, annotation, namespace=namespace)

    async def propagated() -> bool:
        argv = ["cat", "/etc/database-containerinfo/annotations"]
        code, text = await control_plane.kubelet.exec(name, namespace, "database", argv)
        return code == 0 and b'e2e.reconciler.dev/seen="yes"' in text

    await wait_for(propagated, timeout=30, interval=0.5)

    # A password is no way in for the superuser over the network.
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(
            host=f"hippo-primary.{namespace}.svc", user="postgres", password="x", ssl=tls, timeout=5
        )
