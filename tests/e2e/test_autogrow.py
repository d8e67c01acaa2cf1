"""Volume auto-grow (AutoGrowVolumes, on in the e2e operator) on real, size-capped volumes.

The process node gives each claim a filesystem of its size, so filling PostgreSQL's data
directory really fills the volume: the instance pod asks for a larger one, the operator grows the
claim up to `dataVolumeClaimSpec.resources.limits.storage`, and the filesystem grows online.
"""

from __future__ import annotations

import time

import pytest
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import EVENTS, PERSISTENT_VOLUME_CLAIMS
from tests.e2e.cluster import CLUSTERS, e2e_hippo, primary_pod, psql
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def df(kube: Client, pod: JSON, namespace: str, field: str) -> int:
    """A figure of /pgdata as the database container sees it: `size` (MiB) or `pcent`."""
    argv = ["df", "--block-size=M", f"--output={field}", "/pgdata"]
    done = await podexec.run(kube, namespace, pod["metadata"]["name"], "database", argv)
    assert done.exit_code == 0, done.stderr
    return int(done.stdout.decode().split()[-1].rstrip("M%"))


async def fill(kube: Client, pod: JSON, namespace: str, percent: int) -> None:
    """Add table data to the data volume, 8 MiB at a time, until it is `percent` used: an
    unlogged table (no WAL, so only the table grows), its rows stored uncompressed."""
    create = (
        "create unlogged table if not exists filler (v text);"
        "alter table filler alter v set storage plain"
    )
    await psql(kube, pod, namespace, create)
    insert = "insert into filler select repeat(md5(i::text), 60) from generate_series(1, 4000) i"
    while await df(kube, pod, namespace, "pcent") < percent:
        await psql(kube, pod, namespace, insert)


async def claim_request(kube: Client, namespace: str, name: str) -> tuple[str, str]:
    """A claim's request and its capacity (status)."""
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, name, namespace)
    capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage", "")
    return claim["spec"]["resources"]["requests"]["storage"], capacity


async def reasons(kube: Client, namespace: str) -> dict[str, str]:
    """The cluster's Events: reason -> message."""
    events = (await kube.list(EVENTS, namespace)).items
    return {
        e["reason"]: e["message"]
        for e in events
        if e["involvedObject"].get("kind") == "PostgresCluster"
    }


async def test_a_filling_data_volume_grows_up_to_its_limit(kube: Client, namespace: str) -> None:
    cluster = e2e_hippo(namespace)
    cluster["spec"]["instances"][0]["dataVolumeClaimSpec"]["resources"] = {
        "requests": {"storage": "256Mi"},
        "limits": {"storage": "448Mi"},
    }
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace, timeout=180)
    pod = await primary_pod(kube, namespace)
    instance = pod["metadata"]["labels"][naming.LABEL_INSTANCE]
    claim = naming.instance_data_volume(instance)
    assert await claim_request(kube, namespace, claim) == ("256Mi", "256Mi")
    assert (
        "limits"
        not in (await kube.get(PERSISTENT_VOLUME_CLAIMS, claim, namespace))["spec"]["resources"]
    ), "PGO's claims carry no limit"

    # Past 75% of 256Mi: the pod suggests half as much again (384Mi), the claim and the
    # filesystem the database sees grow to it.
    await fill(kube, pod, namespace, 76)  # the pod asks once it is over 75%
    started = time.monotonic()

    async def grown() -> bool:
        return await claim_request(kube, namespace, claim) == ("384Mi", "384Mi")

    await wait_for(grown, timeout=120, interval=0.5)
    took = time.monotonic() - started
    print(
        f"\nautogrow: 256Mi -> 384Mi in {took:.1f} s "
        "(from the volume past 75% used to the grown claim)"
    )
    assert await df(kube, pod, namespace, "size") == 384
    status = (await kube.get(CLUSTERS, "hippo", namespace))["status"]
    assert status["instances"][0]["desiredPGDataVolume"] == {instance: "384Mi"}
    assert "384Mi" in (await reasons(kube, namespace))[naming.REASON_VOLUME_AUTO_GROW]

    # Past 75% of 384Mi: the suggestion (576Mi) is above the limit, the claim stops at it.
    await fill(kube, pod, namespace, 80)

    async def at_limit() -> bool:
        return await claim_request(kube, namespace, claim) == ("448Mi", "448Mi")

    await wait_for(at_limit, timeout=120, interval=0.5)
    found = await reasons(kube, namespace)
    assert "448Mi" in found[naming.REASON_VOLUME_LIMIT_REACHED]
    assert "576Mi" in found[naming.REASON_DESIRED_VOLUME_ABOVE_LIMIT]
    assert await df(kube, pod, namespace, "size") == 448
    await ready_cluster(kube, namespace)
