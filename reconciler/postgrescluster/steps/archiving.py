"""Subreconciler: whether WAL reaches the repositories (beyond PGO: its issue #2531).

When `archive_command` keeps failing (a repository down, wrong credentials), PostgreSQL keeps
every segment it could not archive, and `pg_wal` grows until the volume is full and the
primary stops. PGO says nothing about it. Here the operator looks at the primary every
`POLL_SECONDS` while backups are on (over its usual superuser connection: `pg_stat_archiver`,
the `.ready` files, `pg_ls_waldir()`, and the error pgBackRest's asynchronous push left in its
spool) and keeps the condition `PGBackRestArchiving`: False with pgBackRest's error and the size
of `pg_wal` while segments wait behind a failure, True once they are all archived. A Warning
Event marks the start of a failure, a Normal one the recovery.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg
import structlog

from reconciler import naming
from reconciler.pgbackrest import config
from reconciler.pgbackrest.postgres import STANZA, backups_enabled
from reconciler.postgres import connection
from reconciler.postgrescluster import standby
from reconciler.postgrescluster.context import Context
from reconciler.runtime import conditions
from reconciler.runtime.controller import Result

log = structlog.get_logger(__name__)

# Within a minute of the first failure, the condition says so. Reconciles come more often
# (every Patroni loop touches the pods): the primary is asked at most every MIN_INTERVAL.
POLL_SECONDS = 30.0
MIN_INTERVAL = 15.0
# A push that hangs (a repository that drops packets, pgBackRest waiting out its 60-s timeouts)
# records no failure for minutes: a segment that has waited this long while nothing was
# archived counts as a failure too. A healthy push takes seconds; a burst of WAL keeps the
# archiver busy, but then segments keep being archived.
STALL_SECONDS = 30.0

# One row: the archiver's counters, the segments waiting, the size of pg_wal, and the newest
# error file of pgBackRest's asynchronous push (superuser functions: the operator's role).
_QUERY = f"""
select a.last_archived_wal, a.last_archived_time, a.last_failed_wal, a.last_failed_time,
       (select count(*) from pg_ls_dir('pg_wal/archive_status') f where f like '%.ready')
         as waiting,
       (select coalesce(sum(size), 0) from pg_ls_waldir()) as wal_bytes,
       (select extract(epoch from now() - min(s.modification)) from
          pg_ls_dir('pg_wal/archive_status') f,
          lateral pg_stat_file('pg_wal/archive_status/' || f, true) s
        where f like '%.ready') as oldest_waiting_seconds,
       extract(epoch from now() - a.last_archived_time) as since_archived_seconds,
       (select pg_read_file(d || '/' || f, 0, 4096, true) from
          (select '{config.SPOOL_PATH}/archive/{STANZA}/out' as d) p,
          lateral pg_ls_dir(d, true, false) f
        where f like '%.error' order by f desc limit 1) as error
from pg_stat_archiver a
"""


@dataclass(frozen=True, slots=True)
class Archiver:
    """What the primary says about its archiving."""

    last_archived_wal: str | None
    last_failed_wal: str | None
    failing: bool  # the newest attempt failed, or pushes stall (see STALL_SECONDS)
    waiting: int  # segments not archived yet
    wal_bytes: int
    error: str | None  # pgBackRest's: its code on the first line, the message after


def condition(archiver: Archiver) -> tuple[str, str, str]:
    """`PGBackRestArchiving`'s status, reason and message."""
    if not (archiver.failing and archiver.waiting):
        return "True", "WALArchived", "WAL segments reach the repositories"
    mib = archiver.wal_bytes / (1024 * 1024)
    cause = _error_message(archiver.error) or (
        f"archive_command failed for {archiver.last_failed_wal}; the database container's "
        "log has pgBackRest's error"
        if archiver.last_failed_wal
        else "pushes to the repository make no progress (no error yet); the database "
        "container's log has pgBackRest's"
    )
    since = (
        f"the last archived segment is {archiver.last_archived_wal}"
        if archiver.last_archived_wal
        else "no segment was archived yet"
    )
    return (
        "False",
        "ArchiveCommandFailed",
        f"WAL archiving is failing: {cause}. {archiver.waiting} segment(s) wait in pg_wal, "
        f"which holds {mib:.0f} MiB and grows until archiving works again ({since}); check "
        "the repository (reachable, credentials) and `pgbackrest check` in the database "
        "container",
    )


def _error_message(error: str | None) -> str:
    """pgBackRest's error file: the code on the first line, the message after it."""
    if not error:
        return ""
    lines = error.strip().splitlines()
    code, message = (lines[0], " ".join(lines[1:])) if len(lines) > 1 else ("", lines[0])
    return f"[{code}] {message}" if code.isdigit() else message


async def reconcile(ctx: Context) -> Result | None:
    """Keep `PGBackRestArchiving` (with its Events) while backups are on and the cluster is
    no standby (a standby archives nothing: its primary cluster does)."""
    if not backups_enabled(ctx.spec) or standby.enabled(ctx.spec):
        ctx.clear_condition(naming.CONDITION_PGBACKREST_ARCHIVING)
        return None
    repos = (ctx.status.get("pgbackrest") or {}).get("repos") or []
    if (
        ctx.spec.get("shutdown")
        or ctx.spec.get("customTLSSecret")  # the operator cannot log in (see postgres_users)
        or ctx.instances.writable_primary is None
        or not any(r.get("stanzaCreated") for r in repos)  # pushes fail until it exists
    ):
        return None
    now = time.monotonic()
    if now - ctx.memory.archiving_observed < MIN_INTERVAL:
        return Result(requeue_after=POLL_SECONDS)
    ctx.memory.archiving_observed = now
    host = naming.service_dns(naming.cluster_primary_service(ctx.name), ctx.namespace)
    try:
        async with connection.superuser(host, ctx.spec["port"], ctx.root_ca) as db:
            row = await db.fetchrow(_QUERY)
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError) as error:
        log.info("archiving not observed this time", error=str(error))
        return Result(requeue_after=POLL_SECONDS)
    assert row is not None
    failed, archived = row["last_failed_time"], row["last_archived_time"]
    oldest, since = row["oldest_waiting_seconds"], row["since_archived_seconds"]
    stalled = (
        oldest is not None
        and float(oldest) >= STALL_SECONDS
        and (since is None or float(since) >= STALL_SECONDS)
    )
    archiver = Archiver(
        last_archived_wal=row["last_archived_wal"],
        last_failed_wal=row["last_failed_wal"],
        failing=stalled or (failed is not None and (archived is None or failed > archived)),
        waiting=int(row["waiting"]),
        wal_bytes=int(row["wal_bytes"]),
        error=row["error"],
    )
    log.debug(
        "archiving observed",
        failing=archiver.failing,
        stalled=stalled,
        waiting=archiver.waiting,
        last_failed=str(failed),
        last_archived=str(archived),
    )
    await _report(ctx, *condition(archiver))
    return Result(requeue_after=POLL_SECONDS)


async def _report(ctx: Context, status: str, reason: str, message: str) -> None:
    previous = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_PGBACKREST_ARCHIVING
    )
    was = previous.get("status") if previous else None
    ctx.set_condition(naming.CONDITION_PGBACKREST_ARCHIVING, status, reason, message)
    if status == "False" and was != "False":
        await ctx.warn(reason, message)
    elif status == "True" and was == "False":
        await ctx.recorder.event(ctx.raw, "Normal", "ArchivingResumed", message)
