"""The chaos tier: faults on the process node (killed processes, cut networks, a killed
operator), with real PostgreSQL and Patroni, each scenario printing what it measured.

Its tests use the e2e tier's control plane and operator and run isolated the same way. `make
test` runs each scenario's short form; `make chaos` (CHAOS=full) the full one: more rounds, and
the documented fast-failover settings besides PGO's defaults.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import control_plane, mark_isolated, object_store, operator

__all__ = ["control_plane", "object_store", "operator"]

FULL = os.environ.get("CHAOS") == "full"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_isolated(items, "chaos")


def rounds(short: int, full: int) -> int:
    """How many rounds a scenario runs: its short form in `make test`, else the full one."""
    return full if FULL else short
