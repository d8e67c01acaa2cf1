"""The operator's RBAC, as `manifests/` installs it, is all it needs and no more."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
import pytest_asyncio
from reconciler_envtest.controlplane import ControlPlane

from reconciler.config import Settings
from reconciler.runtime.client import ApiError, Client, NotFoundError
from reconciler.runtime.resources import (
    CONTROLLER_REVISIONS,
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUMES,
    SECRETS,
)
from tests.api_examples import hippo
from tests.operator import (
    CLUSTERS,
    EXAMPLE_IMAGES,
    operator_identity,
    ready_cluster,
    running_operator,
)

pytestmark = pytest.mark.usefixtures("crds")


@pytest_asyncio.fixture(loop_scope="session")
async def elsewhere(kube: Client, namespace: str) -> AsyncIterator[str]:
    """A second namespace, with a Secret of someone else's."""
    name = f"{namespace}-other"[:63]
    await kube.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "theirs"}, "data": {}}
    await kube.create(SECRETS, secret, name)
    yield name
    with contextlib.suppress(NotFoundError):
        await kube.delete(NAMESPACES, name)


async def _refused(call: Awaitable[object]) -> int:
    """The status an API call answered with: 200 when it succeeded."""
    try:
        await call
    except ApiError as error:
        return error.status
    return 200


async def test_a_namespaced_operator_reads_no_secret_outside_its_namespace(
    kube: Client, control_plane: ControlPlane, namespace: str, elsewhere: str
) -> None:
    """With the namespaced installation (PGO_TARGET_NAMESPACE), the operator's identity cannot
    read Secrets of another namespace, and still runs hippo in its own to Ready."""
    kubeconfig = await operator_identity(kube, control_plane, namespace=namespace)
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="pgo") as pgo:
        assert await _refused(pgo.get(SECRETS, "theirs", elsewhere)) == 403
        assert await _refused(pgo.list(SECRETS, elsewhere)) == 403
        assert await _refused(pgo.list(SECRETS, None)) == 403
        assert await _refused(pgo.list(SECRETS, namespace)) == 200

    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    await kube.create(CLUSTERS, cluster)
    settings = Settings(
        images=EXAMPLE_IMAGES,
        target_namespaces=(namespace,),
        workers=1,
    )
    async with running_operator(kubeconfig, settings):
        ready = await ready_cluster(kube, namespace)
    assert ready["status"]["instances"][0]["readyReplicas"] == 1


async def test_the_operator_holds_nothing_it_does_not_use(
    operator_kubeconfig: Path, kube: Client, namespace: str
) -> None:
    """Cluster-wide, the identity still cannot touch what no code of the operator calls."""
    async with await Client.from_kubeconfig(str(operator_kubeconfig), user_agent="pgo") as pgo:
        # Nodes are read (node-loss recovery), never written; volumes are read one by one.
        assert await _refused(pgo.list(NODES, None)) == 200
        assert await _refused(pgo.delete(NODES, "anything")) == 403
        assert await _refused(pgo.list(PERSISTENT_VOLUMES, None)) == 403
        assert await _refused(pgo.list(CONTROLLER_REVISIONS, namespace)) == 403
        assert await _refused(pgo.get(SECRETS, "anything", namespace)) == 403  # lists, no gets
        assert await _refused(pgo.list(SECRETS, namespace)) == 200
