"""The chaos tier: faults on the process node with real PostgreSQL and Patroni, each scenario
printing what it measured. It uses the e2e tier's control plane and operator, run isolated."""

from __future__ import annotations

import pytest
from reconciler_envtest import isolation

from tests.e2e.conftest import control_plane, operator

__all__ = ["control_plane", "operator"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/chaos/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            if not isolation.is_isolated():
                item.add_marker(
                    pytest.mark.skip(
                        reason="chaos tests run isolated: `make chaos` or "
                        "`reconciler-envtest isolated -- pytest tests/chaos`"
                    )
                )
