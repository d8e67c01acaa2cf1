"""Storage faults on real, size-capped volumes: a data volume that fills up, and one lost.

The process node gives each claim a filesystem of its size (a tmpfs), so PostgreSQL really runs
out of space, and a larger claim really gives it room again.
"""

from __future__ import annotations

import time

import pytest
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import EVENTS, PERSISTENT_VOLUME_CLAIMS, PODS
from tests.e2e.cluster import CLUSTERS, create_replicated, e2e_hippo, primary_pod, psql
from tests.operator import found, ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

# About 8 MiB of rows, stored uncompressed (the table's storage is plain).
FILL = "insert into filler select repeat(md5(i::text), 60) from generate_series(1, 4000) i"


async def _event(kube: Client, namespace: str, reason: str) -> str | None:
    """The message of the cluster's latest Event with `reason`, if any."""
    events = [
        e
        for e in (await kube.list(EVENTS, namespace)).items
        if e["reason"] == reason and e["involvedObject"].get("kind") == "PostgresCluster"
    ]
    return str(events[-1]["message"]) if events else None


async def _condition(kube: Client, namespace: str, type_: str) -> JSON | None:
    status = (await kube.get(CLUSTERS, "hippo", namespace)).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


async def test_a_full_data_volume_stops_writes_until_it_grows(kube: Client, namespace: str) -> None:
    cluster = e2e_hippo(namespace)
    # No limit: nothing grows by itself (AutoGrowVolumes needs one).
    cluster["spec"]["instances"][0]["dataVolumeClaimSpec"]["resources"] = {
        "requests": {"storage": "192Mi"}
    }
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=180)
    pod = await primary_pod(kube, namespace)
    claim = naming.instance_data_volume(pod["metadata"]["labels"][naming.LABEL_INSTANCE])
    await psql(kube, pod, namespace, "create table keep as select generate_series(1, 1000) n")
    await psql(
        kube,
        pod,
        namespace,
        "create unlogged table filler (v text); alter table filler alter v set storage plain",
    )

    # Fill the volume until PostgreSQL refuses to write: no space left on the device.
    refused = ""
    for _ in range(64):  # 192Mi hold fewer than 24 chunks of 8 MiB
        try:
            await psql(kube, pod, namespace, FILL)
        except RuntimeError as error:
            refused = str(error)
            break
    assert "No space left on device" in refused, refused
    full_at = time.monotonic()

    async def reported() -> JSON | None:
        condition = await _condition(kube, namespace, naming.CONDITION_VOLUME_FULL)
        return condition if condition and condition["status"] == "True" else None

    condition = await wait_for(reported, timeout=60, interval=0.5)
    reported_in = time.monotonic() - full_at
    assert condition["reason"] == naming.REASON_VOLUME_FULL
    assert claim in condition["message"]
    assert "dataVolumeClaimSpec" in condition["message"]
    assert claim in (await _event(kube, namespace, naming.REASON_VOLUME_FULL) or "")

    # The user grows the volume: PostgreSQL writes again, nothing was lost.
    current = await kube.get(CLUSTERS, "hippo", namespace)
    instances = current["spec"]["instances"]
    instances[0]["dataVolumeClaimSpec"]["resources"]["requests"]["storage"] = "320Mi"
    grown_at = time.monotonic()
    await kube.patch(CLUSTERS, "hippo", {"spec": {"instances": instances}}, namespace=namespace)

    async def writes() -> bool:
        await psql(kube, pod, namespace, FILL)
        return True

    async def grown() -> bool:
        claim_status = (await kube.get(PERSISTENT_VOLUME_CLAIMS, claim, namespace))["status"]
        return bool(claim_status["capacity"]["storage"] == "320Mi")

    await wait_for(grown, timeout=120, interval=0.5)
    await wait_for(writes, timeout=120, interval=0.5)
    writable_in = time.monotonic() - grown_at
    for _ in range(4):  # 32 MiB more than the full volume held: the room is the new one's
        await psql(kube, pod, namespace, FILL)

    async def cleared() -> bool:
        gone = await _condition(kube, namespace, naming.CONDITION_VOLUME_FULL) is None
        return gone and bool(await _event(kube, namespace, naming.REASON_VOLUME_SPACE_AVAILABLE))

    await wait_for(cleared, timeout=60, interval=0.5)
    await ready_cluster(kube, namespace, timeout=120)
    assert await psql(kube, pod, namespace, "select count(*), sum(n) from keep") == "1000|500500"
    print(
        f"\nstorage: volume full reported in {reported_in:.1f} s; writes again "
        f"{writable_in:.1f} s after the claim was grown (192Mi -> 320Mi)"
    )


# `make chaos` only: in one fresh-clone `.ci/run` (2026-11-30) no replica took over within
# 120 s of the primary's claim and pod being deleted; it passed in four runs before and after,
# and the cause is not found yet (tests/chaos/README.md).
@pytest.mark.full
async def test_a_lost_data_volume_is_rebuilt_from_the_primary(kube: Client, namespace: str) -> None:
    await create_replicated(kube, namespace)
    lost = await primary_pod(kube, namespace)
    await psql(kube, lost, namespace, "create table keep as select generate_series(1, 1000) n")
    name = lost["metadata"]["name"]
    claim_name = naming.instance_data_volume(lost["metadata"]["labels"][naming.LABEL_INSTANCE])
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)

    # The claim goes with its pod (it waits, Terminating, until the pod is gone).
    started = time.monotonic()
    await kube.delete(PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
    await kube.delete(PODS, name, namespace)
    survivor = await primary_pod(kube, namespace, other_than=name)
    failed_over_in = time.monotonic() - started

    async def rebuilt() -> JSON | None:
        fresh = await found(kube, PERSISTENT_VOLUME_CLAIMS, claim_name, namespace)
        if fresh is None or fresh["metadata"]["uid"] == claim["metadata"]["uid"]:
            return None
        pod = await found(kube, PODS, name, namespace)
        if pod is None or pod["metadata"]["uid"] == lost["metadata"]["uid"]:
            return None
        ready = [
            c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"
        ]
        return pod if ready and ready[0]["status"] == "True" else None

    replica = await wait_for(rebuilt, timeout=300, interval=0.5)
    rebuilt_in = time.monotonic() - started
    await ready_cluster(kube, namespace, timeout=120)
    # The instance is a replica of the survivor, with every row, on its new volume.
    assert await psql(kube, replica, namespace, "select pg_is_in_recovery()") == "t"
    query = "select count(*), sum(n) from keep"
    assert await psql(kube, replica, namespace, query) == "1000|500500"
    assert await psql(kube, survivor, namespace, query) == "1000|500500"
    print(
        f"\nstorage: primary's data volume lost: failover in {failed_over_in:.1f} s, "
        f"instance rebuilt and Ready in {rebuilt_in:.1f} s"
    )
