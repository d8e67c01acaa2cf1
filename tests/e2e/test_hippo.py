"""hippo on real processes: Patroni bootstraps PostgreSQL, the operator provisions the user, and
a client connects with the user Secret alone, TLS verify-full."""

from __future__ import annotations

import base64
import ssl
import urllib.parse

import asyncpg
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.pki import x509
from reconciler.postgres.connection import superuser
from reconciler.runtime import podexec
from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS, SECRETS
from tests.e2e.cluster import (
    CLUSTERS,
    e2e_hippo,
    primary_pod,
    psql,
    user_credentials,
    writable_primary,
)
from tests.e2e.kubectl import kubectl, kubectl_on_terminal, port_forward
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def test_hippo_runs_postgres_and_serves_its_user(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace)
    pod = await primary_pod(kube, namespace)
    assert await psql(kube, pod, namespace, "select pg_is_in_recovery()") == "f"

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
        done = await podexec.run(kube, namespace, name, "database", argv)
        return done.exit_code == 0 and b'e2e.reconciler.dev/seen="yes"' in done.stdout

    await wait_for(propagated, timeout=30, interval=0.5)

    # The operator's statements never reach the server's log, a failed one neither (its error
    # does): they carry password verifiers.
    secret = await kube.get(SECRETS, naming.ROOT_CA_SECRET, namespace)
    root = x509.Certificate.from_pem(
        *(base64.b64decode(secret["data"][key]) for key in ("root.crt", "root.key"))
    )
    marker = "SCRAM-SHA-256$e2e-marker"
    async with superuser(f"hippo-primary.{namespace}.svc", 5432, root) as db:
        with pytest.raises(asyncpg.UndefinedObjectError):
            await db.execute(f"ALTER ROLE e2e_nobody PASSWORD '{marker}'")

    async def logged() -> str | None:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        data = await kube.request_bytes("GET", path, params={"container": "database"})
        text = data.decode("utf-8", "replace")
        return text if 'role "e2e_nobody" does not exist' in text else None

    assert marker not in await wait_for(logged, timeout=30, interval=0.5)

    # A password is no way in for the superuser over the network.
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await asyncpg.connect(
            host=f"hippo-primary.{namespace}.svc", user="postgres", password="x", ssl=tls, timeout=5
        )


class _Named(ssl.SSLContext):
    """TLS that checks the server's certificate for `name`, whatever address was dialled: a
    port-forward's 127.0.0.1 stands for the primary Service."""

    name = ""

    def wrap_bio(self, *args: object, **kwargs: object) -> ssl.SSLObject:
        kwargs["server_hostname"] = self.name
        return super().wrap_bio(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_user_reaches_hippo_with_kubectl(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    """What PGO's documentation has its users type: psql in the database container, a
    port-forward to the primary pod, the database container's log."""
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace)
    pod = (await writable_primary(kube, namespace))["metadata"]["name"]

    shown = await kubectl_on_terminal(
        control_plane, "-n", namespace, "exec", "-it", pod, "-c", "database", "--",
        "psql", "-Atc", "select 1",
    )  # fmt: skip
    assert (shown.code, shown.stdout.strip()) == (0, "1"), shown

    async def heartbeat() -> bool:  # Patroni's, once per loop (10 s) after the bootstrap
        logs = await kubectl(control_plane, "-n", namespace, "logs", pod, "-c", "database")
        return "INFO: no action. I am (" in logs.stdout

    await wait_for(heartbeat, timeout=60, interval=1)

    # hippo-primary has no selector (Patroni keeps its Endpoints), so kubectl cannot forward
    # to the Service itself: PGO's documentation forwards to the pod with the master role.
    uri, tls = await user_credentials(kube, namespace)
    parts = urllib.parse.urlsplit(uri)
    named = _Named(ssl.PROTOCOL_TLS_CLIENT)
    named.name = parts.hostname or ""
    named.load_verify_locations(cadata=tls.get_ca_certs(binary_form=True)[0])
    async with port_forward(control_plane, namespace, f"pod/{pod}", 5432) as local:
        connection = await asyncpg.connect(
            host="127.0.0.1",
            port=local,
            user=parts.username,
            password=urllib.parse.unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
            ssl=named,
            timeout=10,
        )
        try:
            assert await connection.fetchval("select current_user") == "hippo"
        finally:
            await connection.close()
