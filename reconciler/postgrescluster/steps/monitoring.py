"""Subreconciler: pgMonitor's exporter (`spec.monitoring.pgmonitor.exporter`), as PGO runs it.

Objects: the Secret `<c>-monitoring` (the `ccp_monitoring` password and verifier, kept once
made), the ConfigMap `<c>-exporter-queries-config` (the default queries for the PostgreSQL
major), and with `customTLSSecret` the ConfigMap `<c>-exporter-web-config`. The `exporter`
container itself is the instance pod's (`steps/instances`), and the role's pg_hba lines and
`pg_stat_statements` are PostgreSQL's configuration (`configuration`). In PostgreSQL, once
the primary is ready: `pg_stat_statements` in every database, and the role, its `monitor`
schema and its login in `postgres` (`reconciler.pgmonitor.postgres`), recorded in
`status.monitoring.exporterConfiguration`. Monitoring off: the objects go, and the role can no
longer log in (PGO keeps the role and its schema).
"""

from __future__ import annotations

import base64

import asyncpg
import structlog

from reconciler import naming
from reconciler.pgmonitor import exporter, queries
from reconciler.pgmonitor import postgres as pgmonitor_sql
from reconciler.postgres import connection, password
from reconciler.postgres.sql import DATABASES_QUERY, statements_revision
from reconciler.postgrescluster.context import Context
from reconciler.runtime.resources import CONFIG_MAPS, SECRETS, Resource

log = structlog.get_logger(__name__)

REASON_NOT_SUPPORTED = "ExporterNotSupportedForPostgresVersion"


async def reconcile(ctx: Context) -> None:
    """Converge the exporter's Secret and ConfigMaps, and its part of PostgreSQL."""
    settings = exporter.exporter_settings(ctx.spec)
    if settings is None:
        await _remove(ctx)
        return
    if ctx.exporter_image is None:
        await ctx.warn(
            naming.REASON_MISSING_IMAGE,
            "No image for the exporter: set spec.monitoring.pgmonitor.exporter.image, "
            "or set RELATED_IMAGE_PGEXPORTER in the operator's environment",
        )
    owner, version = ctx.owner, int(ctx.spec["postgresVersion"])
    secret = await ctx.apply(SECRETS, exporter.secret(owner, *_credentials(ctx)))
    await ctx.apply(CONFIG_MAPS, exporter.queries_config_map(owner, version))
    if settings.get("customTLSSecret"):
        await ctx.apply(CONFIG_MAPS, exporter.web_config_map(owner))
    else:
        await _delete_cached(ctx, CONFIG_MAPS, naming.exporter_web_config(ctx.name))
    verifier = base64.b64decode(secret["data"][exporter.VERIFIER_KEY]).decode()
    every = pgmonitor_sql.every_database_statements()
    setup = pgmonitor_sql.setup_statements(verifier)
    revision = statements_revision([*every, *setup, ctx.postgres_image or ""])
    if _revision(ctx) == revision or not await _primary_reachable(ctx):
        return
    if not queries.supported(version):
        # As PGO: the exporter runs without pgMonitor's queries.
        await ctx.warn(
            REASON_NOT_SUPPORTED,
            f"postgres_exporter is not supported for PostgreSQL {version}: pgMonitor's queries "
            f"stop at {queries.LAST_SUPPORTED_MAJOR}; only the exporter's own metrics are served",
        )
    if await _run(ctx, every, all_databases=True) and await _run(ctx, setup):
        ctx.status["monitoring"] = {"exporterConfiguration": revision}


def _credentials(ctx: Context) -> tuple[str, str]:
    """The role's password and verifier: kept when stored, made when missing."""
    live = ctx.cached(SECRETS, naming.monitoring_secret(ctx.name))
    stored = {
        key: base64.b64decode(value).decode()
        for key, value in ((live or {}).get("data") or {}).items()
        if key in (exporter.PASSWORD_KEY, exporter.VERIFIER_KEY)
    }
    secret = stored.get(exporter.PASSWORD_KEY)
    if not secret:
        secret = password.generate("ASCII")
        return secret, password.scram_verifier(secret)
    return secret, stored.get(exporter.VERIFIER_KEY) or password.scram_verifier(secret)


def _revision(ctx: Context) -> str:
    return str((ctx.status.get("monitoring") or {}).get("exporterConfiguration") or "")


async def _delete_cached(ctx: Context, resource: Resource, name: str) -> None:
    live = ctx.cached(resource, name)
    if live is not None:
        await ctx.delete(resource, live)


async def _remove(ctx: Context) -> None:
    """Monitoring is off: its objects go, and, if it ever ran here, the role's login."""
    await _delete_cached(ctx, SECRETS, naming.monitoring_secret(ctx.name))
    await _delete_cached(ctx, CONFIG_MAPS, naming.exporter_queries_config(ctx.name))
    await _delete_cached(ctx, CONFIG_MAPS, naming.exporter_web_config(ctx.name))
    if not _revision(ctx) or not await _primary_reachable(ctx):
        return
    if await _run(ctx, pgmonitor_sql.disable_statements()):
        ctx.status.pop("monitoring", None)


async def _primary_reachable(ctx: Context) -> bool:
    """Whether the operator can run SQL now: a ready primary it can log in to."""
    if ctx.spec.get("shutdown") or ctx.instances.ready_primary is None:
        return False
    return not ctx.spec.get("customTLSSecret")  # `postgres_users` says why, once


async def _run(ctx: Context, statements: list[str], *, all_databases: bool = False) -> bool:
    """Run `statements` in one transaction in `postgres` (or in every database); whether they
    ran. An unreachable primary is tried again later; a PostgreSQL error becomes a Warning."""
    host = naming.service_dns(naming.cluster_primary_service(ctx.name), ctx.namespace)
    port = int(ctx.spec["port"])
    script = ";\n".join(["BEGIN", *statements, "COMMIT"])
    try:
        databases = [exporter.DATABASE]
        if all_databases:
            async with connection.superuser(host, port, ctx.root_ca) as db:
                databases = [row["datname"] for row in await db.fetch(DATABASES_QUERY)]
        for database in databases:
            async with connection.superuser(host, port, ctx.root_ca, database) as db:
                await db.execute(script)
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
        log.info("primary not reachable yet; monitoring's SQL later", error=repr(error))
        return False
    except asyncpg.PostgresError as error:
        log.warning("monitoring SQL failed", error=str(error))
        await ctx.warn(
            "MonitoringSQLFailed",
            f"Could not set up or remove the {naming.MONITORING_USER} role in PostgreSQL: "
            f"{error}; the operator tries again on its next reconcile",
        )
        return False
    return True
