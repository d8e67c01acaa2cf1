"""§2 of the chaos tier: nothing acknowledged is lost, with Patroni's strict synchronous mode.

A writer loop through the primary Service records every acknowledged write; the primary is
killed (its node lost) or, in `make chaos`, its network is cut, mid-stream. Every acknowledged
write is on the new primary; the attempts not acknowledged are counted, and how many of those
committed after all. The same during a switchover and a rolling update, in `make chaos` (with
asynchronous replication, tests/e2e asserts it for both in every `make test`).
"""

from __future__ import annotations

import time

import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS
from tests.chaos.conftest import FULL
from tests.chaos.faults import SYNCHRONOUS, audit, cut_network, started_writer, stop
from tests.e2e.cluster import CLUSTERS, PREFIX, e2e_hippo, primary_pod, psql
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

FAULTS = ["kill", *(["cut"] if FULL else [])]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", FAULTS)
async def test_no_acknowledged_write_lost(
    kube: Client, namespace: str, control_plane: ControlPlane, fault: str
) -> None:
    # Three instances: after the primary is lost, the new one still has a synchronous replica,
    # without which strict mode accepts no write at all.
    cluster = e2e_hippo(namespace, patroni=SYNCHRONOUS)
    cluster["spec"]["instances"][0]["replicas"] = 3
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=300)
    primary = await primary_pod(kube, namespace)
    assert await psql(kube, primary, namespace, "show synchronous_standby_names") != ""
    old, old_ip = primary["metadata"]["name"], primary["status"]["podIP"]
    writer = await started_writer(kube, namespace)
    await writer.wait_acknowledged(len(writer.acknowledged) + 50)

    if fault == "kill":
        faulted_at = time.time()
        assert control_plane.kubelet.kill(old, namespace, hold_restarts=True)
    else:
        faulted_at = await cut_network(control_plane, primary, namespace)
    await primary_pod(kube, namespace, other_than=old)

    async def written() -> float | None:
        return writer.first_acknowledged_by_other(old_ip, faulted_at)

    first_write = await wait_for(written, timeout=180, interval=0.1)
    await writer.wait_acknowledged(len(writer.acknowledged) + 50)
    await stop(writer)
    found = await audit(writer)
    print(
        f"\n[chaos] synchronous_mode_strict, primary {fault}: first acknowledged write on the "
        f"new primary {first_write - faulted_at:.1f}s after the fault; {found.summary()}; "
        f"{writer.summary()}"
    )
    assert not found.lost, f"acknowledged writes lost: {sorted(found.lost)}"


@pytest.mark.full
@pytest.mark.timeout(900)
async def test_no_acknowledged_write_lost_switchover_and_rolling_update(
    kube: Client, namespace: str
) -> None:
    cluster = e2e_hippo(namespace, patroni={**SYNCHRONOUS, "switchover": {"enabled": True}})
    cluster["spec"]["instances"][0]["replicas"] = 3
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=300)
    primary = await primary_pod(kube, namespace)
    writer = await started_writer(kube, namespace)

    started = time.monotonic()
    trigger = {"metadata": {"annotations": {f"{PREFIX}trigger-switchover": "chaos"}}}
    await kube.patch(CLUSTERS, "hippo", trigger, namespace=namespace)
    await primary_pod(kube, namespace, other_than=primary["metadata"]["name"])
    await writer.wait_acknowledged(len(writer.acknowledged) + 50)
    switched = time.monotonic() - started

    started = time.monotonic()
    resources = {"requests": {"cpu": "100m"}}  # a template change that restarts each pod
    patch = [{"op": "add", "path": "/spec/instances/0/resources", "value": resources}]
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace, patch_type="json")

    async def rolled() -> bool:
        label = f"{PREFIX}cluster=hippo,{PREFIX}instance"
        pods = (await kube.list(PODS, namespace, label_selector=label)).items
        return len(pods) == 3 and all(
            c["resources"].get("requests", {}).get("cpu") == "100m"
            for p in pods
            for c in p["spec"]["containers"]
            if c["name"] == "database"
        )

    await wait_for(rolled, timeout=600, interval=1)
    await ready_cluster(kube, namespace, timeout=300)
    await writer.wait_acknowledged(len(writer.acknowledged) + 50)
    rolled_in = time.monotonic() - started
    await stop(writer)
    found = await audit(writer)
    print(
        f"\n[chaos] synchronous_mode_strict: switchover {switched:.1f}s, rolling update of 3 "
        f"instances {rolled_in:.1f}s; {found.summary()}; {writer.summary()}"
    )
    assert not found.lost, f"acknowledged writes lost: {sorted(found.lost)}"
