"""Every test here runs against the session's real control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from reconciler.api import crd
from reconciler.envtest.pytest_plugin import wait_for
from reconciler.runtime.client import Client
from reconciler.runtime.resources import CUSTOM_RESOURCE_DEFINITIONS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def crds(kube: Client) -> AsyncIterator[None]:
    """The generated CRDs, applied (idempotently) and Established."""
    for kind in crd.KINDS:
        await kube.apply(
            CUSTOM_RESOURCE_DEFINITIONS,
            crd.custom_resource_definition(kind),
            field_manager="reconciler-tests",
        )

    async def established() -> bool:
        for kind in crd.KINDS:
            found = await kube.get(CUSTOM_RESOURCE_DEFINITIONS, kind.crd_name)
            conditions = (found.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return False
        return True

    await wait_for(established)
    yield
