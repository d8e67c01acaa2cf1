"""Every test here runs against the session's real control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from reconciler.api import crd
from reconciler.config import Settings
from reconciler.runtime.client import Client
from reconciler.runtime.manager import Manager
from tests.operator import EXAMPLE_IMAGES, running_operator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crds(kube: Client) -> AsyncIterator[None]:
    """The generated CRDs, applied (idempotently) and Established."""
    await crd.install(kube, field_manager="reconciler-tests")
    yield


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operator(operator_kubeconfig: Path, crds: None) -> AsyncIterator[Manager]:
    """The operator's controllers, running in-process against the session control plane under
    the operator's own ServiceAccount and RBAC, with the example images."""
    settings = Settings(images=EXAMPLE_IMAGES, workers=2)
    async with running_operator(operator_kubeconfig, settings) as manager:
        yield manager
