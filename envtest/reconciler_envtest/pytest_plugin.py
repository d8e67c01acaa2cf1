"""pytest fixtures: one control plane per test session, one namespace per test.

Enable with `pytest_plugins = ["reconciler_envtest.pytest_plugin"]` in a conftest.py.
Set `RECONCILER_ENVTEST_DIR` to keep the run directory (logs, kubeconfig) after the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

from reconciler.runtime.client import Client, NotFoundError
from reconciler.runtime.resources import NAMESPACES
from reconciler_envtest.controlplane import ControlPlane

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail after `timeout`.

    Exceptions from `probe` count as "not yet"; the last one is reported on time-out.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = await probe()
        except Exception as error:
            last_error = error
        else:
            if result:
                return result
        if loop.time() > deadline:
            message = f"condition not met within {timeout}s"
            if last_error is not None:
                message += f"; last error: {last_error!r}"
            raise AssertionError(message)
        await asyncio.sleep(interval)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control_plane() -> AsyncIterator[ControlPlane]:
    """The session's control plane, started on first use."""
    keep = os.environ.get("RECONCILER_ENVTEST_DIR")
    with tempfile.TemporaryDirectory(prefix="envtest-") as scratch:
        run_dir = Path(keep) if keep else Path(scratch)
        async with ControlPlane(run_dir) as plane:
            yield plane


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kube(control_plane: ControlPlane) -> AsyncIterator[Client]:
    """An admin client of the session's control plane."""
    async with await Client.from_kubeconfig(
        str(control_plane.kubeconfig), user_agent="reconciler-tests"
    ) as client:
        yield client


@pytest.fixture
def namespace_labels() -> dict[str, str]:
    """The labels of each test's namespace (a conftest may ask for Pod Security levels)."""
    return {}


@pytest_asyncio.fixture(loop_scope="session")
async def namespace(
    kube: Client, request: pytest.FixtureRequest, namespace_labels: dict[str, str]
) -> AsyncIterator[str]:
    """A fresh namespace for one test, deleted (with everything in it) afterwards."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    metadata = {"name": name, "labels": namespace_labels}
    await kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
    yield name
    with contextlib.suppress(NotFoundError):
        await kube.delete(NAMESPACES, name)
