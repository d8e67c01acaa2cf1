"""hippo on real processes: PostgreSQL bootstrapped by Patroni, Ready, answering SQL."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.envtest.controlplane import ControlPlane
from reconciler.envtest.pytest_plugin import wait_for
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import PODS
from tests.api_examples import hippo

CLUSTERS = POSTGRES_CLUSTERS.resource
PREFIX = "postgres-operator.crunchydata.com/"

pytestmark = pytest.mark.usefixtures("operator")


def e2e_hippo(namespace: str, **spec: Any) -> JSON:
    """hippo on PostgreSQL 15 (the machine's), without backups (no pgBackRest yet)."""
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"]["postgresVersion"] = 15
    del cluster["spec"]["backups"]
    cluster["spec"].update(spec)
    return cluster


async def ready_cluster(kube: Client, namespace: str, timeout: float = 120) -> JSON:
    """Wait until hippo is Ready at its current generation."""

    async def probe() -> JSON | None:
        cluster = await kube.get(CLUSTERS, "hippo", namespace)
        status = cluster.get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        current = status.get("observedGeneration") == cluster["metadata"]["generation"]
        return cluster if current and ready and ready[0]["status"] == "True" else None

    return await wait_for(probe, timeout=timeout, interval=0.5)


async def primary_pod(kube: Client, namespace: str) -> JSON:
    """The pod Patroni labelled master."""

    async def probe() -> JSON | None:
        selector = f"{PREFIX}cluster=hippo,{PREFIX}role=master"
        pods = (await kube.list(PODS, namespace, label_selector=selector)).items
        return pods[0] if len(pods) == 1 else None

    return await wait_for(probe, timeout=90, interval=0.5)


async def test_hippo_runs_postgres(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace)
    pod = await primary_pod(kube, namespace)
    code, output = await control_plane.kubelet.exec(
        pod["metadata"]["name"],
        namespace,
        "database",
        ["psql", "-Atc", "select pg_is_in_recovery()"],
    )
    assert (code, output.strip()) == (0, b"f")
