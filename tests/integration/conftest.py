"""Every test here runs against the session's real control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from reconciler.api import crd
from reconciler.runtime.client import Client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crds(kube: Client) -> AsyncIterator[None]:
    """The generated CRDs, applied (idempotently) and Established."""
    await crd.install(kube, field_manager="reconciler-tests")
    yield
