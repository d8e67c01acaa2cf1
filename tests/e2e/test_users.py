"""spec.users and spec.databaseInitSQL against real PostgreSQL: changes, rotation, failures."""

from __future__ import annotations

import asyncpg
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import CONFIG_MAPS, EVENTS, SECRETS
from tests.e2e.cluster import (
    CLUSTERS,
    e2e_hippo,
    primary_pod,
    psql,
    user_credentials,
)
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def _connect(kube: Client, namespace: str, user: str) -> asyncpg.Connection:
    uri, tls = await user_credentials(kube, namespace, user)
    return await asyncpg.connect(uri, ssl=tls, timeout=5)


async def _events(kube: Client, namespace: str, reason: str) -> list[JSON]:
    items = (await kube.list(EVENTS, namespace)).items
    return [e for e in items if e["reason"] == reason]


async def test_users_change_rotate_and_init_sql(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    init = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "init", "namespace": namespace},
    }
    # psql's semantics, as with PGO: without ON_ERROR_STOP an error would not fail the script.
    failing = "\\set ON_ERROR_STOP true\ncreate table nope (;\n"
    await kube.create(CONFIG_MAPS, {**init, "data": {"init.sql": failing}})
    cluster = e2e_hippo(
        namespace,
        users=[
            {"name": "hippo", "databases": ["zoo"]},
            {"name": "rhino", "databases": ["zoo", "savanna"]},
        ],
        databaseInitSQL={"name": "init", "key": "init.sql"},
    )
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace)
    primary = await primary_pod(kube, namespace)

    # Failing init SQL: a Warning with psql's error, no status; fixed, it runs once.
    failed = await wait_for(
        lambda: _events(kube, namespace, "DatabaseInitSQLFailed"), timeout=90, interval=0.5
    )
    assert "syntax error" in failed[0]["message"]
    assert "databaseInitSQL" not in (await kube.get(CLUSTERS, "hippo", namespace))["status"]
    # A file as PGO's users write them: meta-commands switch databases.
    fixed = (
        "\\set ON_ERROR_STOP true\n"
        "\\c zoo\n"
        "create table zoo_init (n int); insert into zoo_init values (42);\n"
    )
    await kube.patch(CONFIG_MAPS, "init", {"data": {"init.sql": fixed}}, namespace=namespace)

    async def ran() -> bool:
        status = (await kube.get(CLUSTERS, "hippo", namespace))["status"]
        return bool(status.get("databaseInitSQL") == "init")

    await wait_for(ran, timeout=240, interval=1)
    answer = await psql(kube, primary, namespace, "select n from zoo_init", database="zoo")
    assert answer == "42"

    # Two users: both log in; rhino has both of its databases.
    async def rhino_in() -> asyncpg.Connection | None:
        try:
            return await _connect(kube, namespace, "rhino")
        except asyncpg.InvalidAuthorizationSpecificationError:
            return None

    connection = await wait_for(rhino_in, timeout=60, interval=0.5)
    await connection.close()
    granted = "select has_database_privilege('rhino', 'savanna', 'CREATE')"
    assert await psql(kube, primary, namespace, granted) == "t"

    # Options change; removing a user keeps its role (as PGO) but removes its Secret.
    users = [{"name": "hippo", "databases": ["zoo"], "options": "CREATEDB"}]
    await kube.patch(CLUSTERS, "hippo", {"spec": {"users": users}}, namespace=namespace)

    async def createdb() -> bool:
        return (
            await psql(
                kube,
                primary,
                namespace,
                "select rolcreatedb from pg_roles where rolname = 'hippo'",
            )
            == "t"
        )

    await wait_for(createdb, timeout=60, interval=0.5)

    async def secret_gone() -> bool:
        names = [s["metadata"]["name"] for s in (await kube.list(SECRETS, namespace)).items]
        return "hippo-pguser-rhino" not in names

    await wait_for(secret_gone, timeout=30, interval=0.5)
    assert (
        await psql(
            kube,
            primary,
            namespace,
            "select count(*) from pg_roles where rolname = 'rhino'",
        )
        == "1"
    )

    # Rotation: deleting the password makes a new one, which PostgreSQL then accepts.
    old = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]["password"]
    await kube.patch(
        SECRETS,
        "hippo-pguser-hippo",
        {"data": {"password": None, "verifier": None}},
        namespace=namespace,
    )

    async def rotated() -> asyncpg.Connection | None:
        secret = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]
        if secret.get("password") in (None, old):
            return None
        try:
            return await _connect(kube, namespace, "hippo")
        except asyncpg.InvalidPasswordError:
            return None

    connection = await wait_for(rotated, timeout=60, interval=0.5)
    assert await connection.fetchval("select current_user") == "hippo"
    await connection.close()
