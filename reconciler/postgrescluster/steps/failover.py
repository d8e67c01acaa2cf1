"""Subreconciler: operator-assisted failover, when the primary is certainly down.

Patroni's replicas elect a new leader only once the dead leader's lock expires (`ttl`, 30 s by
default). When the kubelet reports the leader pod's `database` container stopped after the
lock's last renewal (`leader_lock.dead_leader`), the operator releases the lock, conditional on
the version it read, and the replicas elect at once. It never acts on a primary that is only
unreachable: that one keeps its lock until Patroni demotes it. The step runs first, so that a
reconcile brought by the kubelet's report releases the lock before anything else.
"""

from __future__ import annotations

import structlog

from reconciler import naming
from reconciler.patroni import leader_lock
from reconciler.postgrescluster.context import Context
from reconciler.runtime.client import ConflictError, NotFoundError
from reconciler.runtime.controller import Result
from reconciler.runtime.resources import ENDPOINTS

log = structlog.get_logger(__name__)

REASON = "PrimaryLockReleased"


async def reconcile(ctx: Context) -> Result | None:
    """Release the leader lock of a primary the kubelet reports down."""
    if ctx.spec.get("shutdown"):
        return None
    name = naming.patroni_scope(ctx.name)
    leader = ctx.cached(ENDPOINTS, name)
    dead = leader_lock.dead_leader(leader, ctx.instances.pods)
    if leader is None or dead is None:
        return None
    try:
        await ctx.client.patch(
            ENDPOINTS,
            name,
            leader_lock.release_patch(leader),
            namespace=ctx.namespace,
            field_manager=naming.FIELD_MANAGER,
        )
    except (ConflictError, NotFoundError):
        # Patroni wrote the lock since the cache saw it: its change brings another look.
        log.info("leader lock changed meanwhile; not released", member=dead.member)
        return None
    log.info("released the leader lock of a stopped primary", member=dead.member)
    await ctx.recorder.event(ctx.raw, "Normal", REASON, dead.message())
    return None
