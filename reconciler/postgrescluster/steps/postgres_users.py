"""Subreconciler: the roles, databases and schemas of `spec.users`, in PostgreSQL itself.

Runs only once the primary is ready (in the integration tier, where pods run no process, it
never connects), and only when what the SQL depends on changed: `status.usersRevision` records
the digest of the users, their SCRAM verifiers and the schema setting, as PGO does. Roles of
users removed from the spec stay, as with PGO: dropping a role would drop or orphan what it owns.
A failure becomes a Warning Event with PostgreSQL's message; the next reconcile retries it
(Patroni renews its leader record every loop, so that comes within seconds).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import asyncpg
import structlog

from reconciler import naming
from reconciler.pki import x509
from reconciler.postgres import connection, sql
from reconciler.postgrescluster import user_secrets
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON
from reconciler.runtime.controller import Result
from reconciler.runtime.resources import SECRETS

log = structlog.get_logger(__name__)
# When to try again after the primary could not be reached.
RETRY = Result(requeue_after=5.0)


def wants_schemas(annotations: Mapping[str, str], *, gate: bool) -> bool:
    """AutoCreateUserSchema: the feature gate and the cluster's annotation, both."""
    return gate and annotations.get(naming.ANNOTATION_AUTO_CREATE_USER_SCHEMA) == "true"


async def reconcile(ctx: Context) -> Result | None:
    """Create and alter roles, create databases and grant them, create user schemas."""
    wanted = user_secrets.effective_users(ctx.name, ctx.spec.get("users"))
    if not wanted or ctx.spec.get("shutdown") or ctx.instances.writable_primary is None:
        return None
    if ctx.spec.get("customTLSSecret"):
        await _cannot_authenticate(ctx)
        return None
    verifiers = _verifiers(ctx, wanted)
    if verifiers is None:
        return None  # a Secret was just written; its event brings us back
    schemas = wants_schemas(
        ctx.raw["metadata"].get("annotations") or {},
        gate=ctx.environment.auto_create_user_schema,
    )
    revision = sql.users_revision(wanted, verifiers, schemas=schemas)
    if ctx.status.get("usersRevision") == revision:
        return None
    return await _apply(ctx, wanted, verifiers, schemas=schemas, revision=revision)


async def _apply(
    ctx: Context, wanted: list[JSON], verifiers: dict[str, str], *, schemas: bool, revision: str
) -> Result | None:
    """Provision the users on the primary and record `revision`; a Warning when PostgreSQL
    refuses, another try soon when the primary cannot be reached."""
    host = naming.service_dns(naming.cluster_primary_service(ctx.name), ctx.namespace)
    try:
        await _provision(
            host,
            ctx.spec["port"],
            ctx.root_ca,
            wanted=wanted,
            verifiers=verifiers,
            schemas=schemas,
        )
    except (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.ReadOnlySQLTransactionError,
    ) as error:
        # The primary's address follows its leader record within a Patroni loop, and a
        # promoted standby leader is labelled primary a moment before PostgreSQL leaves
        # recovery (seen: one second): not news. Nothing else may change on an idle primary
        # to bring another reconcile: ask for one.
        log.info("primary not reachable yet; provisioning users later", error=str(error))
        return RETRY
    except asyncpg.PostgresError as error:
        message = f"Could not provision spec.users in PostgreSQL: {error}"
        log.warning("provisioning users failed", error=str(error))
        await ctx.warn(naming.REASON_USERS_FAILED, message)
        return None
    ctx.status["usersRevision"] = revision
    return None


def _verifiers(ctx: Context, wanted: list[JSON]) -> dict[str, str] | None:
    """Each user's SCRAM verifier, from its Secret; None while one is not cached yet."""
    verifiers: dict[str, str] = {}
    for user in wanted:
        secret = ctx.cached(SECRETS, naming.postgres_user_secret(ctx.name, user["name"]))
        verifier = ((secret or {}).get("data") or {}).get("verifier")
        if not verifier:
            return None
        verifiers[user["name"]] = base64.b64decode(verifier).decode()
    return verifiers


async def _cannot_authenticate(ctx: Context) -> None:
    """With a custom server certificate, PostgreSQL trusts the user's CA for client
    certificates, and the operator holds no key of that CA: it cannot log in. Say so once."""
    if ctx.memory.custom_tls_warned:
        return
    ctx.memory.custom_tls_warned = True
    await ctx.warn(
        naming.REASON_USERS_NOT_PROVISIONED,
        "spec.customTLSSecret is set: PostgreSQL accepts client certificates of that CA only, "
        "so the operator cannot log in to create roles and databases of spec.users; create them "
        "yourself, or remove spec.customTLSSecret to let the operator manage them",
    )


async def _provision(
    host: str,
    port: int,
    root: x509.Certificate,
    *,
    wanted: list[JSON],
    verifiers: dict[str, str],
    schemas: bool,
) -> None:
    async with connection.superuser(host, port, root) as db:
        for user in wanted:
            name = str(user["name"])
            for statement in sql.role_statements(
                name, str(user.get("options") or ""), verifiers[name]
            ):
                await db.execute(statement)
        for database in sql.databases_of(wanted):
            if not await db.fetchval(sql.database_exists(database)):
                await db.execute(sql.create_database(database))
        for user in wanted:
            for database in user.get("databases") or []:
                await db.execute(sql.grant_database(str(database), str(user["name"])))
    if not schemas:
        return
    for database in sql.databases_of(wanted):
        async with connection.superuser(host, port, root, database) as db:
            for user in wanted:
                if database in (user.get("databases") or []):
                    await db.execute(sql.schema_statement(str(user["name"])))
