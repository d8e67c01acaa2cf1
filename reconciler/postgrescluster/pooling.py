"""Moving the primary behind pgBouncer without client errors (beyond PGO).

Every operator-driven move of the primary (a switchover by annotation, a rolling update's
switchover, a restart of the primary for a pending parameter) runs through `primary_moves`:
PAUSE every pgBouncer, let Patroni act, wait until `<c>-primary` takes writes again, RESUME.
A pause that does not complete or a primary that does not come back in time still ends in
RESUME, with a Warning Event: the pools never stay held by the operator.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable

import structlog

from reconciler import naming
from reconciler.pgbouncer import config
from reconciler.pgbouncer.admin import CONNECTION_FAILURES, Consoles, console_tls
from reconciler.postgres import connection
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import pod_ready
from reconciler.runtime.resources import PODS, SECRETS

log = structlog.get_logger(__name__)

# How long running transactions may hold PAUSE, and how long the new primary may take to
# take writes, before the pools are resumed anyway.
PAUSE_TIMEOUT = 10.0
WRITABLE_TIMEOUT = 60.0
REASON_RESUMED_ON_TIMEOUT = "PGBouncerResumedOnTimeout"


def consoles(ctx: Context) -> Consoles | None:
    """The admin consoles of the cluster's ready pgBouncer pods; None when there is nothing to
    pause (pooling off, no pod ready yet), when pausing would only delay the move (session
    pooling), or when they cannot be verified (a custom frontend certificate, whose CA the
    operator does not hold)."""
    bouncer = config.settings(ctx.spec)
    if bouncer is None or bouncer.get("customTLSSecret") or not config.pauses_cleanly(ctx.spec):
        return None
    secret = ctx.cached(SECRETS, naming.pgbouncer(ctx.name))
    stored = ((secret or {}).get("data") or {}).get(config.PASSWORD_KEY)
    pods = ctx.cluster_objects(PODS, {naming.LABEL_ROLE: naming.ROLE_PGBOUNCER})
    addresses = sorted(
        p["status"]["podIP"] for p in pods if pod_ready(p) and (p.get("status") or {}).get("podIP")
    )
    if not stored or not addresses:
        return None
    service = naming.service_dns(naming.pgbouncer(ctx.name), ctx.namespace)
    return Consoles(
        addresses=addresses,
        port=int(bouncer.get("port", 5432)),
        password=base64.b64decode(stored).decode(),
        tls=console_tls(ctx.root_ca.certificate_pem.decode(), service),
    )


async def _writable(ctx: Context) -> bool:
    """Whether a new connection to `<c>-primary` reaches a primary that takes writes."""
    host = naming.service_dns(naming.cluster_primary_service(ctx.name), ctx.namespace)
    try:
        async with connection.superuser(host, int(ctx.spec["port"]), ctx.root_ca) as db:
            return bool(await db.fetchval("SELECT NOT pg_catalog.pg_is_in_recovery()"))
    except CONNECTION_FAILURES:  # a server going away mid-handshake included
        return False


async def until_writable(ctx: Context, timeout: float) -> bool:
    """Poll `<c>-primary` (every 0.2 s) until it takes writes; False after `timeout`. Without
    a login (`customTLSSecret`), the move's own completion has to do."""
    if ctx.spec.get("customTLSSecret"):
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _writable(ctx):
            return True
        await asyncio.sleep(0.2)
    return False


async def primary_moves(ctx: Context, move: Callable[[], Awaitable[str]]) -> str:
    """Run `move` (a Patroni call that moves or restarts the primary; its message is returned)
    with pgBouncer's pools paused until the primary takes writes again."""
    held = consoles(ctx)
    if held is None:
        return await move()
    started = time.monotonic()
    paused = await held.pause(PAUSE_TIMEOUT)
    writable = False
    try:
        message = await move()
        writable = await until_writable(ctx, WRITABLE_TIMEOUT)
    finally:
        await held.resume()
        took = time.monotonic() - started
        log.info("pgBouncer pools resumed", paused=paused, writable=writable, seconds=took)
    if not (paused and writable):
        what = (
            "not every pgBouncer paused its pools in time"
            if not paused
            else f"the primary took no writes within {WRITABLE_TIMEOUT:.0f} s"
        )
        await ctx.warn(
            REASON_RESUMED_ON_TIMEOUT,
            f"pgBouncer's pools were resumed after {took:.1f} s, but {what}: clients may have "
            "seen errors during this move of the primary",
        )
    return message
