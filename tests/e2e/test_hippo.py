"""hippo on real processes: PostgreSQL bootstrapped by Patroni, Ready, answering SQL."""

from __future__ import annotations

import pytest

from reconciler.envtest.controlplane import ControlPlane
from reconciler.runtime.client import Client
from tests.e2e.cluster import CLUSTERS, e2e_hippo, primary_pod, psql, ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


async def test_hippo_runs_postgres(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    await kube.create(CLUSTERS, e2e_hippo(namespace))
    await ready_cluster(kube, namespace)
    pod = await primary_pod(kube, namespace)
    assert await psql(control_plane, pod, namespace, "select pg_is_in_recovery()") == "f"
