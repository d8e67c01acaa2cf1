"""Subreconciler: why an instance's PostgreSQL does not start, in the cluster's status (beyond
PGO, where the pod just never becomes ready).

The case it is for: an image of `spec.postgresVersion` without a library that
`shared_preload_libraries` names. PGO preloads pgAudit into every cluster, so an image built
without it (a PostgreSQL that is not Crunchy Data's) cannot run any cluster: the server stops
at once with `FATAL: could not access file "pgaudit"`, and Patroni tries again every loop.
PostgreSQL writes that before its log collector could start, so it is in the database
container's log (`pods/log`, Patroni passes the server's output through). While an instance
pod runs unready, the operator reads the last lines of that log, at most every
`POLL_SECONDS` per cluster, and keeps the condition `PostgresStartupFailed`: True, reason
`PostgresLibraryMissing`, naming the instance and the library, with a Warning Event when it
changes; removed once no instance pod is left unready. Other FATAL lines are not reported:
a starting server writes some that mean nothing (`the database system is starting up`).
The operator itself never fails or retries faster because of it.
"""

from __future__ import annotations

import re
import time

from reconciler import naming
from reconciler.postgrescluster.context import Context
from reconciler.postgrescluster.observed import pod_ready
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON, ApiError
from reconciler.runtime.controller import Result
from reconciler.runtime.rbac import Rule
from reconciler.runtime.resources import PODS

RULES = (Rule("", ("pods/log",), ("get",), "An unready instance's log: why PostgreSQL stops."),)
POLL_SECONDS = 30.0
TAIL_LINES = "200"
_MISSING = re.compile(r'FATAL:\s+could not access file "([^"]+)": No such file or directory')


def missing_library(log: str) -> str | None:
    """The library the server could not load, from the last such line of a database
    container's log; None when there is none."""
    found = _MISSING.findall(log)
    return str(found[-1]) if found else None


def _unready(pods: list[JSON]) -> list[JSON]:
    return [
        p
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running"
        and not pod_ready(p)
        and not p["metadata"].get("deletionTimestamp")
    ]


def _restarted(pod: JSON) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(
        s.get("name") == naming.CONTAINER_DATABASE and int(s.get("restartCount") or 0) > 0
        for s in statuses
    )


async def _log(ctx: Context, pod: JSON) -> str:
    """The database container's last lines: of its previous run too once it restarted
    (Patroni exits after a failed bootstrap; its next run may not have got as far)."""
    path = PODS.path(ctx.namespace, pod["metadata"]["name"], "log")
    runs = ("true", "false") if _restarted(pod) else ("false",)
    text = b""
    for previous in runs:
        params = {
            "container": naming.CONTAINER_DATABASE,
            "tailLines": TAIL_LINES,
            "previous": previous,
        }
        try:
            text += await ctx.client.request_bytes("GET", path, params=params, resource="pods/log")
        except (ApiError, ConnectionError):
            continue  # no log yet, or the pod went: the next look tells
    return text.decode(errors="replace")


async def reconcile(ctx: Context) -> Result | None:
    """Look at the unready instance pods' logs; keep `PostgresStartupFailed`."""
    unready = [] if ctx.spec.get("shutdown") else _unready(ctx.instances.pods)
    if not unready:
        ctx.clear_condition(naming.CONDITION_POSTGRES_STARTUP_FAILED)
        return None
    now = time.monotonic()
    wait = ctx.memory.startup_observed + POLL_SECONDS - now
    if wait > 0:
        return Result(requeue_after=wait)
    ctx.memory.startup_observed = now
    for pod in sorted(unready, key=lambda p: str(p["metadata"]["name"])):
        library = missing_library(await _log(ctx, pod))
        if library is not None:
            await _report(ctx, pod["metadata"]["name"], library)
            break
    return Result(requeue_after=POLL_SECONDS)


async def _report(ctx: Context, pod: str, library: str) -> None:
    message = (
        f"PostgreSQL {ctx.spec['postgresVersion']} of instance pod {pod} stops at once: its "
        f'image has no library "{library}", which shared_preload_libraries names (PGO '
        "preloads pgaudit into every cluster); use an image of spec.postgresVersion that has it"
    )
    reason = naming.REASON_POSTGRES_LIBRARY_MISSING
    previous = conditions.find(
        ctx.status.get("conditions") or [], naming.CONDITION_POSTGRES_STARTUP_FAILED
    )
    ctx.set_condition(naming.CONDITION_POSTGRES_STARTUP_FAILED, "True", reason, message)
    if previous is None or previous.get("message") != message:
        await ctx.warn(reason, message)
