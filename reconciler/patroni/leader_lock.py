"""Patroni's leader lock on Kubernetes, and when the operator may release it for a dead leader.

Patroni keeps its leader lock as annotations of the Endpoints named after its scope
(`<cluster>-ha`): `leader` (the member, i.e. the pod name), `renewTime`, `ttl`. A leader whose
processes are gone stops renewing, yet its replicas wait for the whole `ttl` (PGO's default
30 s) before they elect a new one, because they cannot tell a dead leader from a slow one.

The operator sometimes can: the kubelet reports that the leader pod's `database` container
(Patroni and PostgreSQL, one process tree) is not running and that its last run ended after
the lock was last renewed. Then no process can be writing as the primary, and removing the
`leader` annotation lets the replicas elect at once (they watch that object). Anything less
certain (a pod that does not answer, a node that is only unreachable, a pod that is gone from
the API, which a forced deletion does without stopping anything) leaves the lock alone:
Patroni's own expiry, with its demotion of a primary cut off from the DCS, decides then.

The removal is conditional on the Endpoints' `resourceVersion` the decision was made on: a
Patroni that renewed the lock in between makes the write fail instead of being overruled.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import naming
from reconciler.runtime.client import JSON

# Container timestamps carry whole seconds: a run that ended at 10.7 s reads "10 s".
TIMESTAMP_RESOLUTION = datetime.timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class DeadLeader:
    """A leader the kubelet reports stopped, with what proves it."""

    member: str
    renewed: datetime.datetime
    finished: datetime.datetime

    def message(self) -> str:
        """What the Event on the cluster says."""
        return (
            f"The primary {self.member} is down: its {naming.CONTAINER_DATABASE} container "
            f"stopped at {self.finished.isoformat()}, after Patroni's leader lock was last "
            f"renewed ({self.renewed.isoformat()}); the lock was released so that a replica "
            "is promoted now instead of when the lock expires"
        )


def holder(leader: Mapping[str, Any] | None) -> str | None:
    """The member holding the lock in Patroni's leader Endpoints, None when unlocked."""
    annotations = ((leader or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations["leader"]) if annotations.get("leader") else None


def dead_leader(leader: Mapping[str, Any] | None, pods: list[JSON]) -> DeadLeader | None:
    """The lock holder when it is certainly down, else None.

    `leader` is Patroni's leader Endpoints; `pods` the cluster's instance pods. Certainly
    down: its pod's `database` container is not running (waiting to restart or terminated),
    its last run ended no earlier than the lock's last renewal, and that renewal happened
    during that run (so the run that stopped is the one that held the lock), and another
    instance runs its `database` container to take over."""
    member = holder(leader)
    if member is None or leader is None:
        return None
    pod = next((p for p in pods if p["metadata"]["name"] == member), None)
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return None  # gone or going: Patroni releases the lock itself on a graceful stop
    run = _stopped_run(pod)
    renewed = timestamp(leader["metadata"]["annotations"].get("renewTime"))
    if run is None or renewed is None:
        return None
    started, finished = run
    if not started <= renewed <= finished + TIMESTAMP_RESOLUTION:
        return None
    if not any(_running(p) for p in pods if p["metadata"]["name"] != member):
        return None  # nobody to elect: releasing would change nothing
    return DeadLeader(member, renewed, finished)


def release_patch(leader: Mapping[str, Any]) -> JSON:
    """The merge patch removing the lock, as Patroni's own release does (the holder and the
    leader's address), conditional on the `resourceVersion` the decision was made on."""
    return {
        "metadata": {
            "resourceVersion": leader["metadata"]["resourceVersion"],
            "annotations": {"leader": None},
        },
        "subsets": [],
    }


def _database(pod: JSON) -> JSON | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s.get("name") == naming.CONTAINER_DATABASE), None)


def _running(pod: JSON) -> bool:
    status = _database(pod)
    return status is not None and "running" in (status.get("state") or {})


def _stopped_run(pod: JSON) -> tuple[datetime.datetime, datetime.datetime] | None:
    """(started, finished) of the `database` container's last run when it is not running now."""
    status = _database(pod)
    if status is None:
        return None
    state = status.get("state") or {}
    if "running" in state:
        return None
    terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated")
    if not terminated:
        return None  # never ran: nothing is known of the lock holder
    started, finished = (
        timestamp(terminated.get("startedAt")),
        timestamp(terminated.get("finishedAt")),
    )
    if started is None or finished is None:
        return None
    return started, finished


def timestamp(text: object) -> datetime.datetime | None:
    """An RFC 3339 time with its zone, as the API writes them; None when absent or invalid."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
