"""hippo on real processes: Patroni bootstraps PostgreSQL, the operator provisions the user, and
a client connects with the user Secret alone, TLS verify-full."""

from __future__ import annotations

import base64
import ssl

import asyncpg
import pytest

from reconciler.envtest.controlplane import ControlPlane
from reconciler.envtest.pytest_plugin import wait_for
from reconciler.runtime.client import Client
from reconciler.runtime.resources import SECRETS
from tests.e2e.cluster import CLUSTERS, e2e_hippo, primary_pod, psql, ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def test_hippo_runs_postgres_and_serves_its_user(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace)
    pod = await primary_pod(kube, namespace)
    assert await psql(control_plane, pod, namespace, "select pg_is_in_recovery()") == "f"

    user = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]
    server = (await kube.get(SECRETS, "hippo-cluster-cert", namespace))["data"]
    uri = base64.b64decode(user["uri"]).decode()
    assert uri.startswith("postgresql://hippo:")
    assert uri.endswith(f"@hippo-primary.{namespace}.svc:5432/zoo")
    tls = ssl.create_default_context(cadata=base64.b64decode(server["ca.crt"]).decode())

    async def connect() -> asyncpg.Connection | None:
        try:
            return await asyncpg.connect(uri, ssl=tls, timeout=5)
        except asyncpg.InvalidAuthorizationSpecificationError:
            return None  # the role comes right after the cluster is writable

    connection = await wait_for(connect, timeout=60, interval=0.5)
    try:
        assert await connection.fetchval("select current_schema()") == "hippo"  # its own schema
        await connection.execute("create table animals (name text)")
        await connection.execute("insert into animals values ('hippo')")
        assert await connection.fetchval("select name from animals") == "hippo"
        assert await connection.fetchval("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
    finally:
        await connection.close()
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    assert cluster["status"]["usersRevision"]

    # A password is no way in for the superuser over the network.
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(
            host=f"hippo-primary.{namespace}.svc", user="postgres", password="x", ssl=tls, timeout=5
        )
