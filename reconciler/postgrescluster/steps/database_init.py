"""Subreconciler: `spec.databaseInitSQL`, run once on the primary after the cluster is writable.

The SQL comes from a key of a ConfigMap of the user's (not cached: read when needed, which is
only until it succeeded). psql runs it as the superuser in the `postgres` database, as PGO
does (`reconciler.postgres.psql`): meta-commands such as `\\c` and `\\set ON_ERROR_STOP` work,
and psql's exit code decides. `status.databaseInitSQL` records the ConfigMap's name on success
only; a failure is a Warning Event with psql's error lines, retried with exponential back-off.
"""

from __future__ import annotations

import time

import structlog

from reconciler import naming
from reconciler.postgres import psql
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import JSON, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.resources import CONFIG_MAPS

log = structlog.get_logger(__name__)

FIRST_RETRY = 5.0
LAST_RETRY = 300.0


async def reconcile(ctx: Context) -> Result | None:
    """Run the init SQL once, when asked and not yet done; after a failure, ask to be called
    again when its back-off ends."""
    wanted = ctx.spec.get("databaseInitSQL")
    ready = ctx.instances.writable_primary is not None
    if not wanted or not due(ctx.status, ctx.spec, wanted["name"], primary_ready=ready):
        return None
    next_attempt, delay = ctx.memory.database_init_retry or (0.0, FIRST_RETRY / 2)
    if (wait := next_attempt - time.monotonic()) > 0:
        return Result(requeue_after=wait)
    source = f"{wanted['name']}/{wanted['key']}"
    try:
        script = await _script(ctx, wanted["name"], wanted["key"])
        host = naming.service_dns(naming.cluster_primary_service(ctx.name), ctx.namespace)
        outcome = await psql.run_script(host, ctx.spec["port"], ctx.root_ca, script)
        problem = None if outcome.returncode == 0 else outcome.errors()
    except LookupError as error:
        problem = str(error)
    except FileNotFoundError:
        problem = "psql is not installed where the operator runs (install postgresql-client)"
    except TimeoutError:
        problem = f"psql did not finish within {psql.TIMEOUT:.0f}s"
    else:
        if outcome.returncode == psql.EXIT_CONNECTION:
            # The primary's address follows its leader record within a Patroni loop.
            log.info("primary not reachable yet; running databaseInitSQL later", error=problem)
            return Result(requeue_after=FIRST_RETRY)
    if problem is not None:
        delay = min(delay * 2, LAST_RETRY)
        ctx.memory.database_init_retry = (time.monotonic() + delay, delay)
        await ctx.warn(
            naming.REASON_INIT_SQL_FAILED,
            f"spec.databaseInitSQL ({source}): {problem}; retry in {delay:.0f}s",
        )
        return Result(requeue_after=delay)
    ctx.memory.database_init_retry = None
    ctx.status["databaseInitSQL"] = wanted["name"]
    await ctx.recorder.event(ctx.raw, "Normal", naming.REASON_INIT_SQL_DONE, f"ran {source}")
    return None


def due(status: JSON, spec: JSON, name: str, *, primary_ready: bool) -> bool:
    """Not run yet, and runnable now: users first (the script may grant to them; never, with
    `spec.customTLSSecret`), on a ready primary."""
    return (
        status.get("databaseInitSQL") != name
        and not spec.get("shutdown")
        and status.get("usersRevision") is not None
        and primary_ready
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
