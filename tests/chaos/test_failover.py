"""§1 of the chaos tier: failover in seconds, without split brain.

- The primary's node is lost (every process of its containers killed, none restarted): the
  kubelet reports its `database` container stopped, the operator releases Patroni's leader lock
  (Event `PrimaryLockReleased`), a replica is promoted at once. Measured: the kill to the first
  write the new primary acknowledged, through the primary Service.
- The primary's network is cut (its link down inside its namespace, its processes running):
  the operator must not act; Patroni demotes it and a replica is promoted once the lock
  expired. A writer on each side records its acknowledged writes; no two members ever
  acknowledged writes at overlapping times.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS
from tests.chaos.conftest import FULL
from tests.chaos.faults import (
    DEFAULTS,
    FAST,
    PRIMARY_LOCK_RELEASED,
    cut_network,
    events,
    started_writer,
    stop,
    write_locally,
)
from tests.e2e.cluster import create_replicated, ha_report, pods_by_role, primary_pod, psql

pytestmark = pytest.mark.usefixtures("operator")

# The short form measures PGO's defaults; `make chaos` the fast-failover settings as well.
SETTINGS = {"defaults": DEFAULTS, **({"fast": FAST} if FULL else {})}


@pytest.mark.parametrize("settings", list(SETTINGS))
async def test_primary_killed_assisted_failover(
    kube: Client, namespace: str, control_plane: ControlPlane, settings: str
) -> None:
    await create_replicated(kube, namespace, patroni=SETTINGS[settings])
    primary = await primary_pod(kube, namespace)
    old, old_ip = primary["metadata"]["name"], primary["status"]["podIP"]
    writer = await started_writer(kube, namespace)

    killed_at = time.time()
    assert control_plane.kubelet.kill(old, namespace, hold_restarts=True)
    promoted = await primary_pod(kube, namespace, other_than=old)
    promoted_at = time.time()

    async def written() -> float | None:
        return writer.first_acknowledged_by_other(old_ip, killed_at)

    first_write = await wait_for(written, timeout=120, interval=0.05)
    await stop(writer)
    # The operator released the lock, naming the pod it knows is down.
    released = await events(kube, namespace, PRIMARY_LOCK_RELEASED)
    assert [e["involvedObject"]["name"] for e in released] == ["hippo"]
    assert old in released[0]["message"]
    print(
        f"\n[chaos] kill -9 of the primary ({settings} Patroni settings): new primary labelled "
        f"after {promoted_at - killed_at:.1f}s, first acknowledged write on it after "
        f"{first_write - killed_at:.1f}s; {writer.summary()}"
    )

    # The old primary comes back as a replica of the new one.
    control_plane.kubelet.release(old, namespace)

    async def rejoined() -> bool:
        roles = await pods_by_role(kube, namespace)
        return [p["metadata"]["name"] for p in roles.get("replica", [])] == [old]

    await wait_for(rejoined, timeout=180, interval=0.5)
    assert (await primary_pod(kube, namespace))["metadata"]["name"] == promoted["metadata"]["name"]


async def test_primary_partitioned_no_split_brain(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await create_replicated(kube, namespace)
    primary = await primary_pod(kube, namespace)
    old, old_ip = primary["metadata"]["name"], primary["status"]["podIP"]
    writer = await started_writer(kube, namespace)
    # Inside the cut pod, a writer on its local socket: what its clients on that side see.
    local = asyncio.create_task(
        write_locally(kube, primary, namespace, writer, seconds=75, first=10_000_000)
    )

    async def writing_locally() -> bool:
        query = f"select count(*) from {writer.schema}.writes where n > 10000000"
        return int(await psql(kube, primary, namespace, query, writer.database)) > 0

    await wait_for(writing_locally, timeout=30, interval=0.2)
    cut_at = await cut_network(control_plane, primary, namespace)

    promoted = await primary_pod(kube, namespace, other_than=old)

    async def written() -> float | None:
        return writer.first_acknowledged_by_other(old_ip, cut_at)

    try:
        first_write = await wait_for(written, timeout=180, interval=0.1)
    except AssertionError as error:
        raise AssertionError(
            f"{error}; new primary {promoted['metadata']['name']}; servers that acknowledged: "
            f"{sorted(set(writer.servers))}; {await ha_report(kube, namespace)}; last errors: "
            f"{writer.errors[-5:]}"
        ) from None
    inside = await local
    await stop(writer)

    # One writer at a time: every write the old primary acknowledged, from either side,
    # came before the first the new one acknowledged.
    old_side = inside.acknowledged + writer.acknowledged_by(old_ip)
    assert old_side
    assert max(old_side) < first_write, "two members acknowledged writes at overlapping times"
    demoted = min((t for t in inside.refused if t > cut_at), default=None)
    assert demoted is not None, "the cut primary went on acknowledging writes"
    # Not the operator's doing: a primary that is only unreachable keeps its lock. (Once its
    # liveness probe failed long enough, the kubelet restarts its container: after that stop,
    # a release is allowed, and Patroni's lock may still be there.)
    if await events(kube, namespace, PRIMARY_LOCK_RELEASED):
        restarted = await kube.get(PODS, old, namespace)
        statuses = restarted["status"]["containerStatuses"]
        assert any(s["name"] == "database" and s["restartCount"] > 0 for s in statuses)
    print(
        f"\n[chaos] network cut of the primary: old primary's last acknowledged write "
        f"{max(old_side) - cut_at:.1f}s after the cut, refusing writes from "
        f"{demoted - cut_at:.1f}s; new primary {promoted['metadata']['name']} acknowledged "
        f"its first write {first_write - cut_at:.1f}s after the cut; gap between the two "
        f"{first_write - max(old_side):.1f}s; {len(inside.acknowledged)} local writes "
        f"acknowledged on the old side; {writer.summary()}"
    )
