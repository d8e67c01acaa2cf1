"""Subreconciler: `spec.databaseInitSQL`, run once on the primary after the cluster is writable.

The SQL comes from a key of a ConfigMap of the user's (not cached: read when needed, which is
only until it succeeded). It runs as the superuser in the `postgres` database, as one script
through the simple query protocol: psql meta-commands (`\\c`, `\\set`) are not available.
`status.databaseInitSQL` records the ConfigMap's name on success only, as PGO does; a failure
is a Warning Event with PostgreSQL's message, retried with exponential back-off.
"""

from __future__ import annotations

import time

import asyncpg
import structlog

from reconciler.postgres import connection
from reconciler.postgrescluster import instances, naming, tls
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import NotFoundError
from reconciler.runtime.resources import CONFIG_MAPS, PODS

log = structlog.get_logger(__name__)

REASON = "DatabaseInitSQLFailed"
FIRST_RETRY = 5.0
LAST_RETRY = 300.0
_RETRY = "database_init_retry"  # (next attempt, current delay) in the cluster's memory


async def reconcile(ctx: Context) -> None:
    """Run the init SQL once, when asked and not yet done."""
    wanted = ctx.spec.get("databaseInitSQL")
    if (
        not wanted
        or ctx.status.get("databaseInitSQL") == wanted["name"]
        or ctx.spec.get("shutdown")
    ):
        return
    if ctx.status.get("usersRevision") is None:
        return  # users first (the script may grant to them); never, with spec.customTLSSecret
    pods = ctx.cluster_objects(PODS, {naming.LABEL_INSTANCE: None})
    if not any(instances.is_primary(p) and instances.pod_ready(p) for p in pods):
        return
    next_attempt, delay = ctx.memory.get(_RETRY, (0.0, FIRST_RETRY / 2))
    if time.monotonic() < next_attempt:
        return
    try:
        script = await _script(ctx, wanted["name"], wanted["key"])
        host = f"{naming.cluster_primary_service(ctx.name)}.{ctx.namespace}.svc"
        async with connection.superuser(host, ctx.spec["port"], ctx.shared[tls.ROOT]) as db:
            await db.execute(script)
    except (OSError, TimeoutError, asyncpg.InterfaceError) as error:
        log.info("primary not reachable yet; running databaseInitSQL later", error=str(error))
        return
    except (asyncpg.PostgresError, LookupError) as error:
        delay = min(delay * 2, LAST_RETRY)
        ctx.memory[_RETRY] = (time.monotonic() + delay, delay)
        source = f"{wanted['name']}/{wanted['key']}"
        await ctx.warn(REASON, f"spec.databaseInitSQL ({source}): {error}; retry in {delay:.0f}s")
        return
    ctx.memory.pop(_RETRY, None)
    ctx.status["databaseInitSQL"] = wanted["name"]
    await ctx.recorder.event(
        ctx.raw, "Normal", "DatabaseInitSQLDone", f"ran {wanted['name']}/{wanted['key']}"
    )


async def _script(ctx: Context, name: str, key: str) -> str:
    try:
        config_map = await ctx.client.get(CONFIG_MAPS, name, ctx.namespace)
    except NotFoundError:
        raise LookupError(
            f'ConfigMap "{name}" does not exist in namespace {ctx.namespace}'
        ) from None
    script = (config_map.get("data") or {}).get(key)
    if script is None:
        raise LookupError(f'ConfigMap "{name}" has no key "{key}"')
    return str(script)
