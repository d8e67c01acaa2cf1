"""Fixtures shared by every test tier."""

from __future__ import annotations

from pathlib import Path

import pytest_asyncio
from reconciler_envtest.controlplane import ControlPlane

from reconciler.runtime.client import Client

pytest_plugins = ["reconciler_envtest.pytest_plugin"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def operator_kubeconfig(kube: Client, control_plane: ControlPlane) -> Path:
    """The operator's ServiceAccount with the cluster-wide RBAC of `manifests/`: every
    in-process operator of the tests runs as it, never as the admin."""
    # Imported here: the plugin above must be registered before anything imports it.
    from tests.operator import operator_identity

    return await operator_identity(kube, control_plane)
