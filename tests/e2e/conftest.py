"""The e2e tier: the operator's pods run as real processes (PostgreSQL, Patroni) on the process
node, everything inside network and mount namespaces of the run's own.

Run through `make e2e` (or `reconciler-envtest isolated -- pytest tests/e2e`); outside such a
run these tests are skipped with that instruction, and `make test` always runs them isolated.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from reconciler_envtest import images, isolation, objectstore
from reconciler_envtest.controlplane import ControlPlane

from reconciler import features
from reconciler.api import crd
from reconciler.config import Settings
from reconciler.operator import CONTROLLERS
from reconciler.runtime.client import Client, ConflictError
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import ENDPOINTS, NAMESPACES, SERVICES
from tests.e2e import leaks
from tests.e2e.cluster import RESTRICTED
from tests.operator import running_operator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_isolated(items, "e2e")


def mark_isolated(items: list[pytest.Item], tier: str) -> None:
    """Mark the tests of `tests/<tier>` e2e, and skip them outside an isolated run."""
    for item in items:
        if f"/{tier}/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            if not isolation.is_isolated():
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"{tier} tests run isolated: `make {tier}` or "
                        f"`reconciler-envtest isolated -- pytest tests/{tier}`"
                    )
                )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish() -> None:
    # An error in pytest's own hooks after the last test (reporting, clean-up) ends the run
    # with a bare traceback; keep only its innermost frames so that a CI excerpt of the output
    # still shows the error itself.
    sys.tracebacklimit = 8


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control_plane() -> AsyncIterator[ControlPlane]:
    """The session's control plane with the process node (replaces the integration one)."""
    keep = os.environ.get("RECONCILER_ENVTEST_DIR")
    with tempfile.TemporaryDirectory(prefix="e2e-") as scratch:
        run_dir = Path(keep) if keep else Path(scratch)
        async with ControlPlane(run_dir, process_node=True) as plane:
            yield plane


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def operator(kube: Client, operator_kubeconfig: Path) -> AsyncIterator[Manager]:
    """The CRDs, and the operator running in-process, under its own ServiceAccount and RBAC,
    with the process node's images, serving /metrics on a free loopback port."""
    async with e2e_operator(kube, operator_kubeconfig) as manager:
        yield manager


# How long a NotReady node counts as alive (PGO_NODE_LOSS_AFTER_SECONDS; 300 by default).
NODE_LOSS_AFTER = 20.0


@contextlib.asynccontextmanager
async def e2e_operator(kube: Client, kubeconfig: Path) -> AsyncIterator[Manager]:
    """The CRDs installed, and the operator running in-process with the node's images."""
    await crd.install(kube, field_manager="reconciler-tests")
    related = {k.removeprefix("RELATED_IMAGE_"): v for k, v in images.related_images().items()}
    # AutoGrowVolumes: it acts only on sets with a storage limit (test_autogrow.py).
    # InstanceNodeLossRecovery: only for clusters annotated for it (chaos/test_node_loss.py).
    gates = features.parse("AutoGrowVolumes=true,InstanceNodeLossRecovery=true")
    settings = Settings(
        images=related, workers=2, feature_gates=gates, node_loss_after=NODE_LOSS_AFTER
    )
    # Its /metrics too: the monitoring test checks the dashboards against what it serves.
    async with running_operator(
        kubeconfig, settings, CONTROLLERS, metrics_address="127.0.0.1:0"
    ) as manager:
        yield manager


@pytest.fixture(scope="session")
def log_tap() -> leaks.LogTap:
    """The operator's log lines of the run, to be searched for secrets."""
    tap = leaks.LogTap()
    tap.install()
    return tap


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def no_secret_in_logs_or_events(
    kube: Client, namespace: str, log_tap: leaks.LogTap
) -> AsyncIterator[None]:
    """After each test: none of its namespace's passwords, verifiers or private keys appears in
    the operator's log of the test, a container's log or an Event (`tests/e2e/leaks.py`)."""
    start = len(log_tap.lines)
    yield
    found = await leaks.search(kube, namespace, log_tap.lines[start:])
    assert not found, f"secrets printed: {found}"


@pytest.fixture
def namespace_labels() -> dict[str, str]:
    """Each test's namespace enforces the `restricted` Pod Security Standard
    (test_process_node, which tries the process node with pods of every kind, asks for
    none)."""
    return dict(RESTRICTED)


# One bucket per test that backs up to S3: each cluster's stanza `db` lives at the same path.
BUCKETS = ("hippo-s3", "restore-s3", "hippo-standby")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def object_store(
    kube: Client, control_plane: ControlPlane
) -> AsyncIterator[objectstore.ObjectStore]:
    """The S3 object store of the run, reachable from pods as `objectstore.ENDPOINT`."""
    assert control_plane.pod_network is not None
    store = objectstore.ObjectStore(
        control_plane.run_dir, control_plane.pod_network.gateway, BUCKETS
    )
    await store.start()
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": objectstore.NAMESPACE},
    }
    service, endpoints = store.service()
    for resource, body in ((NAMESPACES, namespace), (SERVICES, service), (ENDPOINTS, endpoints)):
        with contextlib.suppress(ConflictError):  # kept from an earlier run (its etcd data)
            await kube.create(resource, body)
    try:
        yield store
    finally:
        await store.stop()
