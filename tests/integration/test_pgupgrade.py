"""The PGUpgrade controller on a real control plane (no PostgreSQL runs here): PGO's reasons
for an upgrade that cannot start, and the pg_upgrade Job once it can."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.api.crd import PG_UPGRADES, POSTGRES_CLUSTERS
from reconciler.config import Settings
from reconciler.pgupgrade import controller as pgupgrade
from reconciler.postgrescluster import controller as postgrescluster
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import EVENTS, JOBS
from tests.api_examples import hippo, hippo_upgrade
from tests.operator import EXAMPLE_IMAGES, running_operator

CLUSTERS = POSTGRES_CLUSTERS.resource
UPGRADES = PG_UPGRADES.resource
IMAGES = {**EXAMPLE_IMAGES, "PGUPGRADE": "example/crunchy-upgrade:1"}

pytestmark = pytest.mark.usefixtures("crds", "operator")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operator(operator_kubeconfig: Path, crds: None) -> AsyncIterator[Manager]:
    """Both controllers, as `reconciler run` registers them."""
    settings = Settings(images=IMAGES, workers=2)
    setups = (postgrescluster.setup, pgupgrade.setup)
    async with running_operator(operator_kubeconfig, settings, setups) as manager:
        yield manager


async def _progressing(
    kube: Client, namespace: str, reason: str, name: str = "hippo-upgrade"
) -> JSON:
    async def probe() -> JSON | None:
        upgrade = await kube.get(UPGRADES, name, namespace)
        found: list[JSON] = (upgrade.get("status") or {}).get("conditions") or []
        return next(
            (c for c in found if c["type"] == "Progressing" and c["reason"] == reason), None
        )

    return await wait_for(probe, timeout=60, interval=0.5)


async def _cluster(kube: Client, namespace: str, version: int = 15) -> None:
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"]["postgresVersion"] = version
    await kube.create(CLUSTERS, cluster)


async def test_reasons_until_the_upgrade_job_runs(kube: Client, namespace: str) -> None:
    """Not found, not shut down, no annotation: each is PGO's reason and a Warning Event; with
    all three settled the pg_upgrade Job of the startup instance is created."""
    await kube.create(UPGRADES, hippo_upgrade(namespace))
    condition = await _progressing(kube, namespace, "PGClusterNotFound")
    assert condition["status"] == "False"

    await _cluster(kube, namespace)
    condition = await _progressing(kube, namespace, "PGClusterNotShutdown")
    assert condition["message"] == "PostgresCluster instances still running"

    await kube.patch(CLUSTERS, "hippo", {"spec": {"shutdown": True}}, namespace=namespace)
    condition = await _progressing(kube, namespace, "PGClusterMissingRequiredAnnotation")
    assert "postgres-operator.crunchydata.com/allow-upgrade=hippo-upgrade" in condition["message"]

    events = (await kube.list(EVENTS, namespace)).items
    reasons = {e["reason"] for e in events if e["involvedObject"]["kind"] == "PGUpgrade"}
    assert {"PGClusterNotFound", "PGClusterNotShutdown"} <= reasons

    annotation = {naming.ANNOTATION_ALLOW_UPGRADE: "hippo-upgrade"}
    await kube.patch(
        CLUSTERS, "hippo", {"metadata": {"annotations": annotation}}, namespace=namespace
    )
    condition = await _progressing(kube, namespace, "PGUpgradeProgressing")
    assert condition["status"] == "True"

    async def job() -> JSON | None:
        found = (await kube.list(JOBS, namespace, label_selector=f"{naming.LABEL_PGUPGRADE}")).items
        return found[0] if found else None

    created = await wait_for(job, timeout=60, interval=0.5)
    assert created["metadata"]["name"] == "hippo-upgrade-pgdata"
    assert created["metadata"]["labels"][naming.LABEL_ROLE] == "pgupgrade"
    assert created["metadata"]["labels"][naming.LABEL_VERSION] == "17"
    (container,) = created["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "example/crunchy-upgrade:1"
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    startup = cluster["status"]["startupInstance"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in created["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [f"{startup}-pgdata"]


async def test_an_upgrade_to_the_running_version_is_resolved(kube: Client, namespace: str) -> None:
    await _cluster(kube, namespace)
    await kube.create(
        UPGRADES, hippo_upgrade(namespace, fromPostgresVersion=14, toPostgresVersion=15)
    )
    condition = await _progressing(kube, namespace, "PGUpgradeResolved")
    assert condition["message"] == "PostgresCluster hippo is already running version 15"
