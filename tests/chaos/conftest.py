"""The chaos tier: faults on the process node (killed processes, cut networks, a killed
operator), with real PostgreSQL and Patroni, each scenario printing what it measured.

Its tests use the e2e tier's control plane and operator and run isolated the same way. `make
test` runs each scenario's short form; `make chaos` (CHAOS=full) the full one: more rounds, and
the documented fast-failover settings besides PGO's defaults.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from reconciler.runtime.client import Client
from reconciler.runtime.manager import Manager
from tests.e2e.conftest import control_plane, e2e_operator, mark_isolated, object_store

__all__ = ["control_plane", "object_store"]

FULL = os.environ.get("CHAOS") == "full"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_isolated(items, "chaos")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operator(kube: Client, operator_kubeconfig: Path) -> AsyncIterator[Manager]:
    """The e2e tier's in-process operator, for one module at a time: the scenarios that kill
    the operator run their own processes, with no other operator around."""
    async with e2e_operator(kube, operator_kubeconfig) as manager:
        yield manager


def rounds(short: int, full: int) -> int:
    """How many rounds a scenario runs: its short form in `make test`, else the full one."""
    return full if FULL else short
