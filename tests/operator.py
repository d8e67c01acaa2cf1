"""The operator as tests run it: in-process, under its own ServiceAccount and the RBAC of
`manifests/` (a permission the code lacks fails a test), and the cluster-Ready probe."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import yaml
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.config import Settings
from reconciler.operator import Setup
from reconciler.postgrescluster import controller
from reconciler.runtime.client import JSON, Client, ConflictError, NotFoundError
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    NAMESPACES,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    STATEFUL_SETS,
    Resource,
)

MANIFESTS = Path(__file__).parents[1] / "manifests"
OPERATOR_NAMESPACE = "postgres-operator"
SERVICE_ACCOUNT = "pgo"
CLUSTERS = POSTGRES_CLUSTERS.resource

# Images of the integration tier (nothing runs them): every PostgreSQL major, and pgBackRest.
EXAMPLE_IMAGES = {
    **{f"POSTGRES_{v}": f"example/postgres:{v}" for v in (15, 16, 17)},
    "PGBACKREST": "example/pgbackrest:2",
    "PGBOUNCER": "example/pgbouncer:1",
    "PGEXPORTER": "example/crunchy-postgres-exporter:0",
}


def operator_role() -> JSON:
    """The ClusterRole users install (`manifests/rbac/base/role.yaml`)."""
    role: JSON = yaml.safe_load((MANIFESTS / "rbac/base/role.yaml").read_text())
    return role


async def operator_identity(
    kube: Client, control_plane: ControlPlane, *, namespace: str | None = None
) -> Path:
    """A kubeconfig of the operator's ServiceAccount `pgo` holding the manifests' role:
    cluster-wide (ClusterRoleBinding, in `postgres-operator`), or, with `namespace`, as the
    namespaced installation has it (a Role bound in that namespace only)."""
    home = namespace or OPERATOR_NAMESPACE
    with contextlib.suppress(ConflictError):
        await kube.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": home}}
        )
    account: JSON = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": home},
    }
    await kube.apply(SERVICE_ACCOUNTS, account, field_manager="reconciler-tests")
    role = operator_role()
    subject: JSON = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": home}
    reference: JSON = {"apiGroup": "rbac.authorization.k8s.io", "name": role["metadata"]["name"]}
    if namespace is None:
        await kube.apply(CLUSTER_ROLES, role, field_manager="reconciler-tests")
        binding: JSON = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role["metadata"]["name"]},
            "roleRef": {**reference, "kind": "ClusterRole"},
            "subjects": [subject],
        }
        await kube.apply(CLUSTER_ROLE_BINDINGS, binding, field_manager="reconciler-tests")
    else:
        scoped = {**role, "kind": "Role", "metadata": {**role["metadata"], "namespace": home}}
        await kube.apply(ROLES, scoped, field_manager="reconciler-tests")
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role["metadata"]["name"], "namespace": home},
            "roleRef": {**reference, "kind": "Role"},
            "subjects": [subject],
        }
        await kube.apply(ROLE_BINDINGS, binding, field_manager="reconciler-tests")
    return await control_plane.service_account_kubeconfig(home, SERVICE_ACCOUNT)


@contextlib.asynccontextmanager
async def running_operator(
    kubeconfig: Path,
    settings: Settings,
    setups: Sequence[Setup] = (controller.setup,),
    *,
    metrics_address: str = "0",
) -> AsyncIterator[Manager]:
    """The PostgresCluster controller (or the controllers of `setups`) running in this process
    as the given identity; its /metrics served at `metrics_address` ("0": not served)."""
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="operator") as client:
        manager = Manager(
            client,
            namespaces=settings.target_namespaces,
            health_address="0",
            metrics_address=metrics_address,
        )
        for setup in setups:
            await setup(manager, settings)
        task = asyncio.create_task(manager.run())
        try:
            yield manager
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Requests cancelled in flight (a Patroni call over TLS) leave their transports to
            # the garbage collector; collect them now, quietly, rather than at pytest's exit,
            # where their ResourceWarnings become errors of no test.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()


async def ready_cluster(
    kube: Client, namespace: str, name: str = "hippo", *, timeout: float = 60
) -> JSON:
    """Wait until the cluster reports Ready for its current generation; return it."""

    async def probe() -> JSON | None:
        cluster = await kube.get(CLUSTERS, name, namespace)
        status = cluster.get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        current = status.get("observedGeneration") == cluster["metadata"]["generation"]
        return cluster if current and ready and ready[0]["status"] == "True" else None

    try:
        return await wait_for(probe, timeout=timeout, interval=0.5)
    except AssertionError as error:
        raise AssertionError(
            f"{name} not Ready: {error}; {await _status_report(kube, namespace, name)}"
        ) from None


async def _status_report(kube: Client, namespace: str, name: str) -> str:
    """What a Ready time-out should show: the cluster's conditions, instances and startup
    instance, and each instance StatefulSet's wanted and ready replicas."""
    status = ((await found(kube, CLUSTERS, name, namespace)) or {}).get("status") or {}
    conditions = [
        f"{c['type']}={c['status']} ({c.get('reason')}: {c.get('message')})"
        for c in status.get("conditions") or []
    ]
    listed = await kube.list(
        STATEFUL_SETS,
        namespace,
        label_selector=f"{naming.LABEL_CLUSTER}={name},{naming.LABEL_INSTANCE}",
    )
    sets = [
        f"{s['metadata']['name']} {s['spec'].get('replicas')}/"
        f"{(s.get('status') or {}).get('readyReplicas', 0)}"
        for s in listed.items
    ]
    return (
        f"conditions {conditions}; instances {status.get('instances')}; startupInstance "
        f"{status.get('startupInstance')!r}; StatefulSets (wanted/ready) {sets}"
    )


async def found(kube: Client, resource: Resource, name: str, namespace: str) -> JSON | None:
    """The object, or None when it does not exist."""
    try:
        return await kube.get(resource, name, namespace)
    except NotFoundError:
        return None
