"""Helpers of the e2e tests: hippo on the process node, its pods and SQL run inside them."""

from __future__ import annotations

from typing import Any

from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.envtest.controlplane import ControlPlane
from reconciler.envtest.pytest_plugin import wait_for
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import PODS
from tests.api_examples import hippo

CLUSTERS = POSTGRES_CLUSTERS.resource
PREFIX = "postgres-operator.crunchydata.com/"


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


async def pods_by_role(kube: Client, namespace: str) -> dict[str, list[JSON]]:
    """hippo's instance pods by Patroni's role label (`master`, `replica`, "" when none)."""
    selector = f"{PREFIX}cluster=hippo,{PREFIX}instance"
    roles: dict[str, list[JSON]] = {}
    for pod in (await kube.list(PODS, namespace, label_selector=selector)).items:
        role = pod["metadata"]["labels"].get(f"{PREFIX}role", "")
        roles.setdefault(role, []).append(pod)
    return roles


async def primary_pod(kube: Client, namespace: str, *, other_than: str = "") -> JSON:
    """The one pod Patroni labelled master, other than `other_than` (a lost primary keeps its
    label until its Patroni runs again: nobody else changes it)."""

    async def probe() -> JSON | None:
        masters = (await pods_by_role(kube, namespace)).get("master", [])
        masters = [p for p in masters if p["metadata"]["name"] != other_than]
        return masters[0] if len(masters) == 1 else None

    return await wait_for(probe, timeout=120, interval=0.25)


async def psql(plane: ControlPlane, pod: JSON, namespace: str, query: str) -> str:
    """Run `query` in the pod's database container as `postgres` (local peer); its output."""
    code, output = await plane.kubelet.exec(
        pod["metadata"]["name"],
        namespace,
        "database",
        ["psql", "-v", "ON_ERROR_STOP=1", "-Atqc", query],
    )
    if code != 0:
        raise RuntimeError(f"psql in {pod['metadata']['name']}: {output.decode().strip()}")
    return output.decode().strip()
