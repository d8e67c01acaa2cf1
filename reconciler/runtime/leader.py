"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules and timings.

A candidate takes the Lease when it is free or when its record has not changed for a lease
duration, measured on the candidate's own monotonic clock from the moment it saw the record
change (so clock skew between machines does not matter). Writes are conditional on the
resourceVersion: a 409 means another candidate won the race. The leader renews every retry
period and steps down when it could not renew for the renew deadline.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from reconciler.runtime import metrics
from reconciler.runtime.client import JSON, ApiError, Client, ConflictError, NotFoundError
from reconciler.runtime.rbac import Rule
from reconciler.runtime.resources import LEASES
from reconciler.runtime.workqueue import Clock

log = structlog.get_logger(__name__)

JITTER = 1.2
RULES = (
    Rule(
        "coordination.k8s.io",
        ("leases",),
        ("create", "get", "update"),
        "Leader election: read the Lease, create it once, renew and release it (updates).",
    ),
)


class LeadershipLost(Exception):
    """The Lease could not be renewed within the renew deadline."""


@dataclass(frozen=True, slots=True)
class LeaseTimings:
    """client-go's defaults; `lease_duration > renew_deadline > JITTER * retry_period`."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > JITTER * self.retry_period:
            raise ValueError("need lease_duration > renew_deadline > 1.2 * retry_period")


def _microtime() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs `lead()` while this identity holds the Lease; see the module docstring."""

    def __init__(
        self,
        client: Client,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings | None = None,
        release_on_cancel: bool = True,
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings or LeaseTimings()
        self.release_on_cancel = release_on_cancel
        self._clock = clock
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._lease: JSON | None = None
        self.is_leader = False
        self._status = metrics.leader_election_master_status.labels(name)
        self._log = log.bind(lease=f"{namespace}/{name}", identity=identity)

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Acquire the Lease, then run `lead()` until it returns or leadership is lost
        (`LeadershipLost` is raised after `lead()` has been cancelled)."""
        await self._acquire()
        try:
            async with asyncio.TaskGroup() as group:
                leading = group.create_task(lead(), name="leading")
                renewing = group.create_task(self._renew_until_lost(), name="lease-renewal")
                leading.add_done_callback(lambda _: renewing.cancel())
        except BaseExceptionGroup as group_error:
            lost = group_error.subgroup(LeadershipLost)
            if lost is not None:
                raise lost.exceptions[0] from None
            raise
        finally:
            self._set_leader(False)
            if self.release_on_cancel:
                await self._release()

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                break
            await asyncio.sleep(self.timings.retry_period * random.uniform(1.0, JITTER))
        self._log.info("acquired the lease")
        self._set_leader(True)

    async def _renew_until_lost(self) -> None:
        while True:
            await asyncio.sleep(self.timings.retry_period)
            deadline = self._clock() + self.timings.renew_deadline
            while not await self._try_acquire_or_renew():
                if self._clock() >= deadline:
                    self._log.error("could not renew the lease in time; stepping down")
                    raise LeadershipLost(f"lease {self.namespace}/{self.name} lost")
                await asyncio.sleep(self.timings.retry_period)

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt; True if this identity holds the Lease afterwards."""
        now = _microtime()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFoundError:
            return await self._create(now)
        except (ApiError, ConnectionError) as error:
            self._log.warning("could not read the lease", error=str(error))
            return False
        spec: dict[str, Any] = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec, self._observed_at = spec, self._clock()
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
        if holder and holder != self.identity and self._observed_at + duration > self._clock():
            return False
        changed_hands = holder != self.identity
        transitions = int(spec.get("leaseTransitions") or 0)
        if changed_hands:
            metrics.leader_election_slowpath_total.labels(self.name).inc()
            transitions += 1 if holder else 0
        lease["spec"] = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.timings.lease_duration),
            "renewTime": now,
            "acquireTime": now if changed_hands else spec.get("acquireTime", now),
            "leaseTransitions": transitions,
        }
        try:
            updated = await self.client.replace(LEASES, lease)
        except ConflictError:
            return False
        except (ApiError, ConnectionError) as error:
            self._log.warning("could not update the lease", error=str(error))
            return False
        self._remember(updated)
        return True

    async def _create(self, now: str) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self.timings.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            created = await self.client.create(LEASES, lease)
        except (ApiError, ConnectionError):
            return False  # created by another candidate meanwhile, or unreachable
        self._remember(created)
        return True

    def _remember(self, lease: JSON) -> None:
        self._lease = lease
        self._observed_spec, self._observed_at = lease.get("spec") or {}, self._clock()

    async def _release(self) -> None:
        """Give the Lease up so that a successor need not wait for it to expire."""
        if self._lease is None:
            return
        lease, self._lease = self._lease, None
        lease["spec"] = {
            **lease["spec"],
            "holderIdentity": None,
            "leaseDurationSeconds": 1,
            "renewTime": _microtime(),
        }
        try:
            await self.client.replace(LEASES, lease)
        except (ApiError, ConnectionError) as error:
            self._log.warning("could not release the lease", error=str(error))
        else:
            self._log.info("released the lease")

    def _set_leader(self, leading: bool) -> None:
        self.is_leader = leading
        self._status.set(1 if leading else 0)
