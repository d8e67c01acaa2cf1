"""The PostgresCluster controller on a real control plane, the operator running in-process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from cryptography import x509 as cx509
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.api import crd
from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.api.defaults import with_defaults
from reconciler.api.validation import parse_postgres_cluster
from reconciler.config import Settings
from reconciler.intent import Owner
from reconciler.pki import authority, certificates
from reconciler.postgrescluster import controller, instance_pod
from reconciler.postgrescluster.context import Environment
from reconciler.runtime import drift, metrics
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.events import EventRecorder
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    CONTROLLER_REVISIONS,
    ENDPOINTS,
    EVENTS,
    JOBS,
    PERSISTENT_VOLUME_CLAIMS,
    POD_DISRUPTION_BUDGETS,
    PODS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFUL_SETS,
    Resource,
)
from tests.api_examples import hippo
from tests.operator import EXAMPLE_IMAGES, operator_identity, ready_cluster, running_operator

CLUSTERS = POSTGRES_CLUSTERS.resource
PREFIX = "postgres-operator.crunchydata.com/"
IMAGES = EXAMPLE_IMAGES

pytestmark = pytest.mark.usefixtures("crds", "operator")


def _hippo(namespace: str, **spec: Any) -> JSON:
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"].update(spec)
    return cluster


async def _get(kube: Client, resource: Resource, name: str, namespace: str) -> JSON | None:
    try:
        return await kube.get(resource, name, namespace)
    except NotFoundError:
        return None


async def _instances(kube: Client, namespace: str) -> list[JSON]:
    selector = f"{PREFIX}cluster=hippo,{PREFIX}instance"  # not the repository host
    return (await kube.list(STATEFUL_SETS, namespace, label_selector=selector)).items


async def _ready(kube: Client, namespace: str) -> JSON:
    return await ready_cluster(kube, namespace)


async def test_hippo_produces_pgo_objects(kube: Client, namespace: str) -> None:
    """The quick start yields exactly PGO's objects: names, labels, owners, keys, selectors."""
    await kube.create(CLUSTERS, _hippo(namespace))
    cluster = await _ready(kube, namespace)
    uid = cluster["metadata"]["uid"]
    assert PREFIX + "finalizer" in cluster["metadata"]["finalizers"]
    assert cluster["status"]["instances"] == [
        {"name": "instance1", "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
    ]

    statefulsets = await _instances(kube, namespace)
    assert len(statefulsets) == 1
    instance = statefulsets[0]["metadata"]["name"]
    assert instance.startswith("hippo-instance1-")
    assert len(instance) == len("hippo-instance1-") + 4

    expected: dict[Resource, list[str]] = {
        SECRETS: [
            "hippo-cluster-cert",
            "hippo-replication-cert",
            f"{instance}-certs",
            "hippo-pguser-hippo",
            "hippo-pgbackrest",
        ],
        CONFIG_MAPS: ["hippo-config", f"{instance}-config", "hippo-pgbackrest-config"],
        SERVICES: ["hippo-pods", "hippo-ha", "hippo-ha-config", "hippo-primary", "hippo-replicas"],
        SERVICE_ACCOUNTS: ["hippo-instance", "hippo-pgbackrest", "hippo-repohost"],
        ROLES: ["hippo-instance", "hippo-pgbackrest"],
        ROLE_BINDINGS: ["hippo-instance", "hippo-pgbackrest"],
        PERSISTENT_VOLUME_CLAIMS: [f"{instance}-pgdata", "hippo-repo1"],
        STATEFUL_SETS: [instance, "hippo-repo-host"],
        POD_DISRUPTION_BUDGETS: [],
    }
    for resource, names in expected.items():
        labelled = await kube.list(resource, namespace, label_selector=f"{PREFIX}cluster=hippo")
        assert sorted(o["metadata"]["name"] for o in labelled.items) == sorted(names), resource
        for obj in labelled.items:
            owner = obj["metadata"]["ownerReferences"][0]
            assert (owner["uid"], owner["controller"]) == (uid, True), obj["metadata"]["name"]

    root = await kube.get(SECRETS, "pgo-root-cacert", namespace)
    assert sorted(root["data"]) == ["root.crt", "root.key"]
    # PGO's plain reference: neither controller nor blocking the cluster's deletion.
    assert set(root["metadata"]["ownerReferences"][0]) == {"apiVersion", "kind", "name", "uid"}
    user = await kube.get(SECRETS, "hippo-pguser-hippo", namespace)
    assert {"user", "password", "verifier", "host", "port", "dbname", "uri", "jdbc-uri"} <= set(
        user["data"]
    )
    assert base64.b64decode(user["data"]["host"]).decode() == f"hippo-primary.{namespace}.svc"
    replicas = await kube.get(SERVICES, "hippo-replicas", namespace)
    assert replicas["spec"]["selector"] == {PREFIX + "cluster": "hippo", PREFIX + "role": "replica"}
    leader = await kube.get(SERVICES, "hippo-ha", namespace)
    assert "selector" not in leader["spec"]
    # Endpoints: ours for hippo-primary; kube-controller-manager makes those of selector Services.
    primary = await kube.get(ENDPOINTS, "hippo-primary", namespace)
    assert primary["metadata"]["ownerReferences"][0]["uid"] == uid
    assert primary["subsets"][0]["addresses"] == [{"ip": leader["spec"]["clusterIP"]}]
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, f"{instance}-pgdata", namespace)
    assert claim["status"]["phase"] == "Bound"
    pods = (await kube.list(PODS, namespace, label_selector=f"{PREFIX}instance={instance}")).items
    assert pods[0]["metadata"]["labels"][PREFIX + "patroni"] == "hippo-ha"


@contextlib.asynccontextmanager
async def _second_operator(kubeconfig: Path, namespace: str) -> AsyncIterator[Probe]:
    """Another operator process in all but name: its own client, cache and controller, and
    the operator's identity.

    Yields a probe telling how many reconciles it finished; its client counts its requests.
    """
    name = f"{controller.NAME}-{uuid.uuid4().hex[:6]}"
    async with await Client.from_kubeconfig(
        str(kubeconfig), user_agent="second-operator"
    ) as client:
        manager = Manager(client, namespaces=(namespace,), health_address="0", metrics_address="0")
        recorder = EventRecorder(client, controller.NAME)
        environment = Environment(images=IMAGES)
        await manager.add(
            controller.controller(
                manager.cache, client, recorder, environment, workers=1, name=name
            )
        )
        task = asyncio.create_task(manager.run())

        def reconciles() -> float:
            value = metrics.REGISTRY.get_sample_value(
                "controller_runtime_reconcile_total", {"controller": name, "result": "success"}
            )
            return value or 0.0

        try:
            yield Probe(client, reconciles)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Probe(NamedTuple):
    """What a test sees of the second operator."""

    client: Client
    reconciles: Callable[[], float]


async def _until(test: Callable[[], bool]) -> None:
    async def probe() -> bool:
        return test()

    await wait_for(probe)


async def test_steady_state_sends_no_writes(
    kube: Client, namespace: str, operator_kubeconfig: Path
) -> None:
    """A fresh operator finds the converged cluster and writes nothing, on start (a restart
    or upgrade) and on later reconciles (here: after an unrelated annotation); pgBouncer's
    objects and certificate included, and the exporter's."""
    monitoring: JSON = {"pgmonitor": {"exporter": {}}}
    cluster = _hippo(namespace, proxy={"pgBouncer": {"replicas": 2}}, monitoring=monitoring)
    await kube.create(CLUSTERS, cluster)
    await _ready(kube, namespace)

    async def pooler_settled() -> bool:
        status = (await kube.get(CLUSTERS, "hippo", namespace)).get("status") or {}
        pods = ((status.get("proxy") or {}).get("pgBouncer") or {}).get("readyReplicas")
        return pods == 2 and "ProxyAvailable" in {c["type"] for c in status["conditions"]}

    await wait_for(pooler_settled)
    statefulsets = await _instances(kube, namespace)
    revisions = len((await kube.list(CONTROLLER_REVISIONS, namespace)).items)
    async with _second_operator(operator_kubeconfig, namespace) as second:
        await _until(lambda: second.reconciles() >= 1)
        assert second.client.writes() == 0, second.client.requests
        await kube.patch(
            CLUSTERS, "hippo", {"metadata": {"annotations": {"touch": "1"}}}, namespace=namespace
        )
        await _until(lambda: second.reconciles() >= 2)
        assert second.client.writes() == 0, second.client.requests
        reads = {m for (m, _) in second.client.requests}
        assert reads <= {"GET", "WATCH"}
    after = await _instances(kube, namespace)
    assert [s["metadata"]["resourceVersion"] for s in after] == [
        s["metadata"]["resourceVersion"] for s in statefulsets
    ]
    assert len((await kube.list(CONTROLLER_REVISIONS, namespace)).items) == revisions


async def test_ha_example_has_two_instances_and_a_budget(kube: Client, namespace: str) -> None:
    """Two replicas: two StatefulSets and a PodDisruptionBudget keeping one."""
    cluster = _hippo(namespace)
    cluster["spec"]["instances"][0]["replicas"] = 2
    await kube.create(CLUSTERS, cluster)
    await _ready(kube, namespace)
    assert len(await _instances(kube, namespace)) == 2
    budget = await kube.get(POD_DISRUPTION_BUDGETS, "hippo-set-instance1", namespace)
    assert budget["spec"]["minAvailable"] == 1


async def test_scaling_down_keeps_the_primary(kube: Client, namespace: str) -> None:
    """2 -> 1 removes the replica, never the pod Patroni labelled master."""
    cluster = _hippo(namespace)
    cluster["spec"]["instances"][0]["replicas"] = 2
    await kube.create(CLUSTERS, cluster)
    await _ready(kube, namespace)
    names = sorted(s["metadata"]["name"] for s in await _instances(kube, namespace))
    primary = names[1]  # the later name: scaling down by name order alone would remove it
    await kube.patch(
        PODS,
        f"{primary}-0",
        {"metadata": {"labels": {PREFIX + "role": "master"}}},
        namespace=namespace,
    )
    await wait_for(lambda: _labelled_primary(kube, namespace, primary))
    await kube.patch(
        CLUSTERS,
        "hippo",
        [{"op": "replace", "path": "/spec/instances/0/replicas", "value": 1}],
        namespace=namespace,
        patch_type="json",
    )

    async def one_left() -> list[str] | None:
        left = [s["metadata"]["name"] for s in await _instances(kube, namespace)]
        return left if len(left) == 1 else None

    assert await wait_for(one_left) == [primary]

    async def no_budget() -> bool:
        return await _get(kube, POD_DISRUPTION_BUDGETS, "hippo-set-instance1", namespace) is None

    await wait_for(no_budget)


async def _labelled_primary(kube: Client, namespace: str, instance: str) -> bool:
    pod = await kube.get(PODS, f"{instance}-0", namespace)
    return bool(pod["metadata"]["labels"].get(PREFIX + "role") == "master")


@pytest.mark.parametrize(
    ("resource", "name"),
    [
        (SERVICES, "hippo-primary"),
        (ENDPOINTS, "hippo-primary"),
        (STATEFUL_SETS, None),
        (CONFIG_MAPS, "hippo-config"),
        (SECRETS, "hippo-pguser-hippo"),
        (SECRETS, "hippo-cluster-cert"),
    ],
    ids=["service", "endpoints", "statefulset", "configmap", "user-secret", "cert-secret"],
)
async def test_deleted_objects_are_repaired(
    kube: Client, namespace: str, resource: Resource, name: str | None
) -> None:
    """An owned object deleted by someone comes back within 5 s; the data PVC stays."""
    await kube.create(CLUSTERS, _hippo(namespace))
    await _ready(kube, namespace)
    instance = (await _instances(kube, namespace))[0]["metadata"]["name"]
    name = name or instance
    before = await kube.get(resource, name, namespace)
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, f"{instance}-pgdata", namespace)
    await kube.delete(resource, name, namespace, propagation="Orphan")

    async def recreated() -> JSON | None:
        obj = await _get(kube, resource, name, namespace)
        return obj if obj and obj["metadata"]["uid"] != before["metadata"]["uid"] else None

    await wait_for(recreated, timeout=5)
    again = await kube.get(PERSISTENT_VOLUME_CLAIMS, f"{instance}-pgdata", namespace)
    assert again["metadata"]["uid"] == claim["metadata"]["uid"]


async def test_custom_tls_secret_replaces_the_generated_certificate(
    kube: Client, namespace: str
) -> None:
    """With customTLSSecret, no `<c>-cluster-cert` is made and pods mount the user's Secret."""
    spec = {
        "customTLSSecret": {"name": "my-server-tls"},
        "customReplicationTLSSecret": {"name": "my-replication-tls"},
    }
    await kube.create(CLUSTERS, _hippo(namespace, **spec))
    await wait_for(lambda: _instances(kube, namespace))
    template = (await _instances(kube, namespace))[0]["spec"]["template"]["spec"]
    sources = template["volumes"][0]["projected"]["sources"]
    assert [s["secret"]["name"] for s in sources] == ["my-server-tls", "my-replication-tls"]
    assert await _get(kube, SECRETS, "hippo-cluster-cert", namespace) is None
    assert await _get(kube, SECRETS, "hippo-replication-cert", namespace) is None


async def test_paused_cluster_changes_nothing_but_status(kube: Client, namespace: str) -> None:
    """spec.paused: condition Progressing=False/Paused, and no objects are created."""
    await kube.create(CLUSTERS, _hippo(namespace, paused=True))

    async def paused() -> JSON | None:
        cluster = await kube.get(CLUSTERS, "hippo", namespace)
        found = [
            c
            for c in (cluster.get("status") or {}).get("conditions") or []
            if c["type"] == "Progressing"
        ]
        return found[0] if found and found[0]["reason"] == "Paused" else None

    assert (await wait_for(paused))["status"] == "False"
    assert await _get(kube, CONFIG_MAPS, "hippo-config", namespace) is None


async def test_an_instance_begun_before_an_operator_stop_keeps_its_name(
    kube: Client, namespace: str
) -> None:
    """An operator killed after an instance's first objects (its configuration) and before its
    StatefulSet: the next one completes that instance instead of orphaning them."""
    cluster = await kube.create(CLUSTERS, _hippo(namespace, paused=True))
    instance = "hippo-instance1-abcd"
    owner = {
        "apiVersion": cluster["apiVersion"],
        "kind": cluster["kind"],
        "name": "hippo",
        "uid": cluster["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    labels = {
        f"{PREFIX}cluster": "hippo",
        f"{PREFIX}instance-set": "instance1",
        f"{PREFIX}instance": instance,
    }
    begun = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{instance}-config",
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
    }
    await kube.create(CONFIG_MAPS, begun)
    await kube.patch(CLUSTERS, "hippo", {"spec": {"paused": False}}, namespace=namespace)
    await _ready(kube, namespace)
    assert [s["metadata"]["name"] for s in await _instances(kube, namespace)] == [instance]


async def test_shutdown_scales_every_instance_to_zero(kube: Client, namespace: str) -> None:
    """spec.shutdown: StatefulSets at 0 replicas, the primary recorded to start first."""
    cluster = _hippo(namespace)
    cluster["spec"]["instances"][0]["replicas"] = 2
    await kube.create(CLUSTERS, cluster)
    await _ready(kube, namespace)
    await kube.patch(CLUSTERS, "hippo", {"spec": {"shutdown": True}}, namespace=namespace)

    async def stopped() -> bool:
        statefulsets = await _instances(kube, namespace)
        pods = (await kube.list(PODS, namespace, label_selector=f"{PREFIX}instance")).items
        return all(s["spec"]["replicas"] == 0 for s in statefulsets) and not pods

    await wait_for(stopped, timeout=60)
    status = (await kube.get(CLUSTERS, "hippo", namespace))["status"]
    assert status["startupInstance"].startswith("hippo-instance1-")


async def test_deleting_the_cluster_cleans_up(kube: Client, namespace: str) -> None:
    """Deletion stops the instances, removes Patroni's Endpoints (which have no owner) and
    the finalizer; the owned objects are collected."""
    await kube.create(CLUSTERS, _hippo(namespace))
    await _ready(kube, namespace)
    labels = {PREFIX + "cluster": "hippo", PREFIX + "patroni": "hippo-ha"}
    patroni_leader = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "hippo-ha", "namespace": namespace, "labels": labels},
    }
    await kube.apply(ENDPOINTS, patroni_leader, field_manager="patroni")
    await kube.delete(CLUSTERS, "hippo", namespace)

    async def gone() -> bool:
        return (
            await _get(kube, CLUSTERS, "hippo", namespace) is None
            and not await _instances(kube, namespace)
            and await _get(kube, SERVICES, "hippo-primary", namespace) is None
            and await _get(kube, ENDPOINTS, "hippo-ha", namespace) is None
        )

    await wait_for(gone, timeout=60)


async def _event(kube: Client, namespace: str, reason: str) -> JSON | None:
    events = (await kube.list(EVENTS, namespace)).items
    return next((e for e in events if e["reason"] == reason), None)


async def _condition(kube: Client, namespace: str, type_: str, reason: str) -> JSON | None:
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    found = [
        c
        for c in (cluster.get("status") or {}).get("conditions") or []
        if c["type"] == type_ and c["reason"] == reason
    ]
    return found[0] if found else None


async def test_missing_image_is_a_condition_and_a_warning(kube: Client, namespace: str) -> None:
    """No RELATED_IMAGE for the version: Ready=False/MissingRequiredImage and an Event."""
    await kube.create(CLUSTERS, _hippo(namespace, postgresVersion=14))
    condition = await wait_for(lambda: _condition(kube, namespace, "Ready", "MissingRequiredImage"))
    assert "RELATED_IMAGE_POSTGRES_14" in condition["message"]
    event = await wait_for(lambda: _event(kube, namespace, "MissingRequiredImage"))
    assert event["type"] == "Warning"
    assert not await _instances(kube, namespace)


async def test_node_port_on_cluster_ip_is_flagged(kube: Client, namespace: str) -> None:
    """A nodePort with type ClusterIP: event MisconfiguredClusterIP, condition, no nodePort."""
    await kube.create(CLUSTERS, _hippo(namespace, service={"nodePort": 32001}))
    await wait_for(
        lambda: _condition(kube, namespace, "ServicesConfigured", "MisconfiguredClusterIP")
    )
    event = await wait_for(lambda: _event(kube, namespace, "MisconfiguredClusterIP"))
    assert "spec.service.nodePort" in event["message"]
    service = await wait_for(lambda: _get(kube, SERVICES, "hippo-ha", namespace))
    assert "nodePort" not in service["spec"]["ports"][0]


async def test_spec_sections_not_acted_on_are_reported(kube: Client, namespace: str) -> None:
    """Volume snapshots are accepted but not acted on yet: a condition and one Warning say so;
    the rest of the cluster, its repositories included, is managed."""
    cluster = _hippo(namespace)
    cluster["spec"]["backups"]["snapshots"] = {"volumeSnapshotClassName": "csi"}
    s3 = {"name": "repo2", "s3": {"bucket": "b", "endpoint": "s3.example", "region": "r"}}
    pgbackrest = cluster["spec"]["backups"]["pgbackrest"]
    pgbackrest["repos"].append(s3)
    await kube.create(CLUSTERS, cluster)
    condition = await wait_for(
        lambda: _condition(kube, namespace, "UnsupportedSpec", "NotImplemented")
    )
    assert condition["message"].startswith("spec.backups.snapshots: accepted")
    event = await wait_for(lambda: _event(kube, namespace, "UnsupportedSpec"))
    assert event["type"] == "Warning"
    config = await kube.get(CONFIG_MAPS, "hippo-config", namespace)
    dcs = yaml.safe_load(config["data"]["patroni.yaml"])["bootstrap"]["dcs"]
    assert dcs["postgresql"]["parameters"]["archive_command"] == (
        'pgbackrest --stanza=db archive-push "%p"'
    )

    # Without that section the condition goes away.
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    patch = {"spec": {"backups": {"snapshots": None}}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)

    async def cleared() -> bool:
        found = await kube.get(CLUSTERS, "hippo", namespace)
        types = {c["type"] for c in (found.get("status") or {}).get("conditions") or []}
        return "UnsupportedSpec" not in types

    await wait_for(cleared)


async def test_a_clone_of_a_missing_cluster_starts_no_instance(
    kube: Client, namespace: str
) -> None:
    """A data source that cannot be restored: a condition and a Warning name it, and no
    instance starts empty in its place."""
    source = {"postgresCluster": {"clusterName": "nowhere", "repoName": "repo1"}}
    await kube.create(CLUSTERS, _hippo(namespace, dataSource=source))
    condition = await wait_for(
        lambda: _condition(kube, namespace, "PostgresDataInitialized", "InvalidDataSource")
    )
    assert condition["status"] == "False"
    assert 'PostgresCluster "nowhere" does not exist' in condition["message"]
    event = await wait_for(lambda: _event(kube, namespace, "InvalidDataSource"))
    assert "spec.dataSource" in event["message"]
    assert await _instances(kube, namespace) == []
    assert await _get(kube, JOBS, "hippo-pgbackrest-restore", namespace) is None


async def test_an_upgrade_keeps_the_template_of_a_running_instance(
    kube: Client, namespace: str
) -> None:
    """What an earlier operator version applied for the same spec (here: the instance's
    template without the disk space report) is kept: another reconcile leaves the StatefulSet
    alone, so no pod is rolled; a spec change that alters the template brings the report."""
    await kube.create(CLUSTERS, _hippo(namespace))
    (sts,) = await wait_for(lambda: _instances(kube, namespace))
    raw = await kube.get(CLUSTERS, "hippo", namespace)
    spec = with_defaults(parse_postgres_cluster(raw)).spec.dump()
    earlier = instance_pod.statefulset(
        Owner.of(raw),
        spec,
        spec["instances"][0],
        sts["metadata"]["name"],
        image=IMAGES[f"POSTGRES_{spec['postgresVersion']}"],
        replicas=1,
        sidecars=True,
        pgbackrest_image=IMAGES["PGBACKREST"],
        report_disk_space=False,
    )
    applied = await kube.apply(
        STATEFUL_SETS, drift.with_intent_hash(earlier), field_manager=naming.FIELD_MANAGER
    )

    def script(statefulset: JSON) -> str:
        containers = statefulset["spec"]["template"]["spec"]["containers"]
        return str(
            next(c for c in containers if c["name"] == "replication-cert-copy")["command"][3]
        )

    assert "report_space" not in script(applied)
    # A spec change that leaves the instance's template as it is: reconciled, and still kept.
    users = {"spec": {"users": [{"name": "rhino"}]}}
    changed = await kube.patch(CLUSTERS, "hippo", users, namespace=namespace)
    await wait_for(lambda: _observed(kube, namespace, changed["metadata"]["generation"]))
    (kept,) = await _instances(kube, namespace)
    assert kept["metadata"]["generation"] == applied["metadata"]["generation"]
    resources = {"requests": {"cpu": "100m"}}
    instances = {"spec": {"instances": [{**raw["spec"]["instances"][0], "resources": resources}]}}
    await kube.patch(CLUSTERS, "hippo", instances, namespace=namespace)

    async def reported() -> bool:
        (changed,) = await _instances(kube, namespace)
        return "report_space" in script(changed)

    await wait_for(reported)


async def _observed(kube: Client, namespace: str, generation: int) -> bool:
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    return bool((cluster.get("status") or {}).get("observedGeneration") == generation)


async def test_a_repository_claim_is_adopted_once_it_exists(kube: Client, namespace: str) -> None:
    """`dataSource.volumes.pgBackRestVolume` naming a claim not made yet: the repository host
    waits (its condition says why) and a Warning names the claim; once the user makes it, the
    claim becomes repo1's volume under its own name (PGO's labels, the cluster as owner), no
    `hippo-repo1` claim is made, and the move Job has PGO's name and labels."""
    adopt = {"volumes": {"pgBackRestVolume": {"pvcName": "old-repo", "directory": "old"}}}
    await kube.create(CLUSTERS, _hippo(namespace, dataSource=adopt))
    event = await wait_for(lambda: _event(kube, namespace, "InvalidRepoVolume"))
    assert 'pgBackRestVolume: claim "old-repo" does not exist' in event["message"]
    condition = await wait_for(
        lambda: _condition(kube, namespace, "PGBackRestRepoHostReady", "RepoHostNotReady")
    )
    assert 'PersistentVolumeClaim "old-repo"' in condition["message"]
    assert await _get(kube, STATEFUL_SETS, "hippo-repo-host", namespace) is None
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "old-repo", "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await kube.create(PERSISTENT_VOLUME_CLAIMS, claim)
    job = await wait_for(
        lambda: _get(kube, JOBS, "hippo-move-pgbackrest-repo-dir", namespace), timeout=60
    )
    assert job["metadata"]["labels"] == {
        f"{PREFIX}cluster": "hippo",
        f"{PREFIX}move-job": "",
        f"{PREFIX}move-pgbackrest-repo-dir": "",
    }
    (volume,) = job["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "old-repo"
    adopted = await kube.get(PERSISTENT_VOLUME_CLAIMS, "old-repo", namespace)
    assert adopted["metadata"]["labels"][f"{PREFIX}pgbackrest-repo"] == "repo1"
    assert adopted["metadata"]["ownerReferences"][0]["name"] == "hippo"
    assert await _get(kube, PERSISTENT_VOLUME_CLAIMS, "hippo-repo1", namespace) is None
    # The Job never runs here: the repository host still waits, for the Job now.
    condition = await wait_for(
        lambda: _condition(kube, namespace, "PGBackRestRepoHostReady", "RepoHostNotReady")
    )
    assert "hippo-move-pgbackrest-repo-dir" in condition["message"]


async def test_a_malformed_restore_is_refused_and_nothing_stops(
    kube: Client, namespace: str
) -> None:
    """An in-place restore whose options cannot work is settled as refused before the
    instances are touched; a corrected spec alone does not start it."""
    await kube.create(CLUSTERS, _hippo(namespace))
    (instance,) = await wait_for(lambda: _instances(kube, namespace))
    patch = {
        "metadata": {"annotations": {f"{PREFIX}pgbackrest-restore": "one"}},
        "spec": {
            "backups": {
                "pgbackrest": {
                    "restore": {"enabled": True, "repoName": "repo1", "options": ["--type=soon"]}
                }
            }
        },
    }
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
    condition = await wait_for(
        lambda: _condition(kube, namespace, "PGBackRestoreProgressing", "RestoreRefused")
    )
    assert "--type=soon is not allowed" in condition["message"]
    event = await wait_for(lambda: _event(kube, namespace, "InvalidDataSource"))
    assert "nothing was stopped" in event["message"]
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    assert cluster["status"]["pgbackrest"]["restore"] == {"id": "one", "finished": True}
    fixed = {"spec": {"backups": {"pgbackrest": {"restore": {"options": ["--type=immediate"]}}}}}
    await kube.patch(CLUSTERS, "hippo", fixed, namespace=namespace)
    generation = (await kube.get(CLUSTERS, "hippo", namespace))["metadata"]["generation"]

    async def observed() -> bool:
        found = await kube.get(CLUSTERS, "hippo", namespace)
        return bool((found.get("status") or {}).get("observedGeneration") == generation)

    await wait_for(observed)
    (after,) = await _instances(kube, namespace)
    assert after["spec"]["replicas"] == 1
    assert after["metadata"]["uid"] == instance["metadata"]["uid"]
    assert await _get(kube, JOBS, "hippo-pgbackrest-restore", namespace) is None


def _backup_job(namespace: str, name: str, kind: str, schedule: str | None = None) -> JSON:
    """A backup Job as the operator (manual) or a CronJob (scheduled) makes it; here its pod
    never runs, so the Job stays active."""
    labels = {f"{PREFIX}cluster": "hippo", f"{PREFIX}pgbackrest-backup": kind}
    if schedule:
        labels[f"{PREFIX}pgbackrest-cronjob"] = schedule
    pod = {"restartPolicy": "Never", "containers": [{"name": "pgbackrest", "image": "x"}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": pod}},
    }


async def test_a_scheduled_backup_beside_a_running_one_is_skipped(
    kube: Client, namespace: str
) -> None:
    """One backup per cluster at a time: a scheduled Job that starts while another backup
    runs is deleted with an Event; the running one is left alone."""
    await kube.create(CLUSTERS, _hippo(namespace))
    await _ready(kube, namespace)
    await kube.create(JOBS, _backup_job(namespace, "hippo-backup-abcd", "manual"))
    await kube.create(
        JOBS, _backup_job(namespace, "hippo-repo1-incr-1", "scheduled", schedule="incr")
    )
    event = await wait_for(lambda: _event(kube, namespace, "BackupSkipped"))
    assert event["type"] == "Warning"
    assert event["message"].startswith(
        "Scheduled backup Job hippo-repo1-incr-1 skipped: backup Job hippo-backup-abcd is "
        "still running"
    )

    async def gone() -> bool:
        return await _get(kube, JOBS, "hippo-repo1-incr-1", namespace) is None

    await wait_for(gone)
    assert await _get(kube, JOBS, "hippo-backup-abcd", namespace) is not None


async def test_a_failing_step_is_reported_in_status(kube: Client, namespace: str) -> None:
    """A Service the API server refuses (a nodePort outside its range) stops the reconcile:
    the status says which step failed and why, with an Event, while the operator retries."""
    service = {"type": "NodePort", "nodePort": 80}
    await kube.create(CLUSTERS, _hippo(namespace, service=service))
    condition = await wait_for(lambda: _condition(kube, namespace, "ReconcileFailed", "StepFailed"))
    assert condition["message"].startswith("step services failed:")
    assert "nodePort" in condition["message"]
    event = await wait_for(lambda: _event(kube, namespace, "ReconcileFailed"))
    assert event["type"] == "Warning"

    # Fixed, the cluster converges and the condition goes.
    await kube.patch(
        CLUSTERS, "hippo", {"spec": {"service": {"nodePort": 32002}}}, namespace=namespace
    )
    cluster = await _ready(kube, namespace)
    assert "ReconcileFailed" not in {c["type"] for c in cluster["status"]["conditions"]}


async def test_certificate_near_expiry_is_renewed(kube: Client, namespace: str) -> None:
    """A leaf past two thirds of its life is replaced by a fresh one from the same root."""
    await kube.create(CLUSTERS, _hippo(namespace))
    await _ready(kube, namespace)
    root = certificates.read(
        await kube.get(SECRETS, "pgo-root-cacert", namespace), "root.crt", "root.key"
    )
    assert root is not None
    aged = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=300)
    common_name, names = certificates.replication_names()
    old = authority.issue_leaf(root, common_name, names, aged)
    data = {
        "tls.crt": base64.b64encode(old.certificate_pem).decode(),
        "tls.key": base64.b64encode(old.key_pem).decode(),
    }
    await kube.patch(SECRETS, "hippo-replication-cert", {"data": data}, namespace=namespace)

    async def renewed() -> cx509.Certificate | None:
        secret = await kube.get(SECRETS, "hippo-replication-cert", namespace)
        pem = base64.b64decode(secret["data"]["tls.crt"])
        certificate = cx509.load_pem_x509_certificate(pem)
        return certificate if certificate.serial_number != old.certificate.serial_number else None

    fresh = await wait_for(renewed)
    assert fresh.not_valid_after_utc > old.certificate.not_valid_after_utc


def _permissive_crd() -> JSON:
    """The PostgresCluster CRD as an old, lax version might have been: any spec is stored."""
    definition = crd.custom_resource_definition(crd.POSTGRES_CLUSTERS)
    version = definition["spec"]["versions"][0]
    version["schema"] = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    return definition


@pytest.mark.timeout(120)
async def test_invalid_stored_spec_is_a_condition_not_a_crash(tmp_path: Path) -> None:
    """A cluster stored under a laxer CRD that the models reject gets Ready=False/InvalidSpec
    with the field path, and a Warning; the operator goes on with the other clusters."""
    async with (
        ControlPlane(tmp_path / "plane") as plane,
        await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="tests") as kube,
    ):
        await crd.install(kube, [_permissive_crd()], field_manager="tests")
        bad = _hippo("default")
        bad["metadata"]["name"] = "broken"
        bad["spec"]["instances"][0]["replicas"] = "many"
        await kube.create(CLUSTERS, bad)
        await kube.create(CLUSTERS, _hippo("default"))
        identity = await operator_identity(kube, plane)
        async with running_operator(identity, Settings(images=IMAGES, workers=2)):

            async def rejected() -> JSON | None:
                cluster = await kube.get(CLUSTERS, "broken", "default")
                found = [
                    c
                    for c in (cluster.get("status") or {}).get("conditions") or []
                    if c["type"] == "Ready" and c["reason"] == "InvalidSpec"
                ]
                return found[0] if found else None

            condition = await wait_for(rejected)
            assert condition["status"] == "False"
            assert "spec.instances[0].replicas" in condition["message"]
            event = await wait_for(lambda: _event(kube, "default", "InvalidSpec"))
            assert event["type"] == "Warning"
            assert event["involvedObject"]["name"] == "broken"
            await _ready(kube, "default")  # the valid cluster beside it converges


async def test_larger_storage_request_grows_the_volume(kube: Client, namespace: str) -> None:
    """A larger dataVolumeClaimSpec request patches the PVC (which grows); a smaller one is
    refused by Kubernetes and reported as PersistentVolumeResizeError with a Warning."""
    await kube.create(CLUSTERS, _hippo(namespace))
    await _ready(kube, namespace)
    instance = (await _instances(kube, namespace))[0]["metadata"]["name"]
    path = "/spec/instances/0/dataVolumeClaimSpec/resources/requests/storage"
    await kube.patch(
        CLUSTERS,
        "hippo",
        [{"op": "replace", "path": path, "value": "2Gi"}],
        namespace=namespace,
        patch_type="json",
    )

    async def grown() -> bool:
        claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, f"{instance}-pgdata", namespace)
        return bool(claim["status"]["capacity"]["storage"] == "2Gi")

    await wait_for(grown)
    await kube.patch(
        CLUSTERS,
        "hippo",
        [{"op": "replace", "path": path, "value": "1Gi"}],
        namespace=namespace,
        patch_type="json",
    )
    condition = await wait_for(
        lambda: _condition(kube, namespace, "PersistentVolumeResizeError", "ResizeRefused")
    )
    assert f"{instance}-pgdata" in condition["message"]
    assert await wait_for(lambda: _event(kube, namespace, "PersistentVolumeResizeError"))
    claim = await kube.get(PERSISTENT_VOLUME_CLAIMS, f"{instance}-pgdata", namespace)
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


async def test_patroni_bootstrap_is_observed(kube: Client, namespace: str) -> None:
    """Patroni's `initialize` annotation becomes status.patroni.systemIdentifier, and the
    bootstrap sections leave the configuration (Patroni then owns the DCS)."""
    await kube.create(CLUSTERS, _hippo(namespace))
    await _ready(kube, namespace)
    config = await kube.get(CONFIG_MAPS, "hippo-config", namespace)
    assert "bootstrap:" in config["data"]["patroni.yaml"]
    # What Patroni writes when it initialises the cluster (no owner: the finalizer removes it).
    await kube.create(
        ENDPOINTS,
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "hippo-ha-config",
                "namespace": namespace,
                "labels": {PREFIX + "cluster": "hippo", PREFIX + "patroni": "hippo-ha"},
                "annotations": {"initialize": "7300000000000000001"},
            },
        },
    )

    async def observed() -> bool:
        status = (await kube.get(CLUSTERS, "hippo", namespace)).get("status") or {}
        return bool((status.get("patroni") or {}).get("systemIdentifier") == "7300000000000000001")

    await wait_for(observed)

    async def no_bootstrap() -> bool:
        config = await kube.get(CONFIG_MAPS, "hippo-config", namespace)
        return "bootstrap:" not in config["data"]["patroni.yaml"]

    await wait_for(no_bootstrap)
