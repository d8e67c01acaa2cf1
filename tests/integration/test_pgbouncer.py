"""pgBouncer's objects on a real control plane, the operator running in-process: PGO's names,
labels and keys, the status, the certificate, and their removal when pooling is turned off."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from cryptography import x509 as cx509
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.api.crd import POSTGRES_CLUSTERS
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    EVENTS,
    POD_DISRUPTION_BUDGETS,
    SECRETS,
    SERVICES,
    Resource,
)
from tests.api_examples import hippo
from tests.operator import found, ready_cluster

CLUSTERS = POSTGRES_CLUSTERS.resource
PREFIX = "postgres-operator.crunchydata.com/"
LABELS = {PREFIX + "cluster": "hippo", PREFIX + "role": "pgbouncer"}
KINDS: tuple[Resource, ...] = (DEPLOYMENTS, SERVICES, CONFIG_MAPS, SECRETS, POD_DISRUPTION_BUDGETS)

pytestmark = pytest.mark.usefixtures("crds", "operator")


def _hippo(namespace: str, **bouncer: Any) -> JSON:
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    cluster["spec"]["proxy"] = {"pgBouncer": {"replicas": 2, **bouncer}}
    return cluster


async def _available(kube: Client, namespace: str) -> JSON | None:
    cluster = await kube.get(CLUSTERS, "hippo", namespace)
    status = cluster.get("status") or {}
    found = [c for c in status.get("conditions") or [] if c["type"] == "ProxyAvailable"]
    ready = ((status.get("proxy") or {}).get("pgBouncer") or {}).get("readyReplicas")
    return cluster if found and found[0]["status"] == "True" and ready == 2 else None


async def _frontend_certificate(kube: Client, namespace: str, secret: JSON) -> None:
    """Issued by the namespace root for the four names of the pgBouncer Service."""
    certificate = cx509.load_pem_x509_certificate(
        base64.b64decode(secret["data"]["pgbouncer-frontend.crt"])
    )
    names = certificate.extensions.get_extension_for_class(cx509.SubjectAlternativeName)
    assert sorted(names.value.get_values_for_type(cx509.DNSName)) == sorted(
        [
            f"hippo-pgbouncer.{namespace}.svc.cluster.local.",
            f"hippo-pgbouncer.{namespace}.svc",
            f"hippo-pgbouncer.{namespace}",
            "hippo-pgbouncer",
        ]
    )
    root = await kube.get(SECRETS, "pgo-root-cacert", namespace)
    assert secret["data"]["pgbouncer-frontend.ca-roots"] == root["data"]["root.crt"]


async def test_pgbouncer_objects_status_and_removal(kube: Client, namespace: str) -> None:
    cluster = _hippo(namespace, metadata={"labels": {"tier": "pool"}})
    await kube.create(CLUSTERS, cluster)
    await ready_cluster(kube, namespace)
    cluster = await wait_for(lambda: _available(kube, namespace), timeout=60)
    assert cluster["status"]["proxy"]["pgBouncer"] == {"replicas": 2, "readyReplicas": 2}
    uid = cluster["metadata"]["uid"]
    for resource in KINDS:
        obj = await kube.get(resource, "hippo-pgbouncer", namespace)
        assert obj["metadata"]["labels"] == {**LABELS, "tier": "pool"}, resource
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid

    deployment = await kube.get(DEPLOYMENTS, "hippo-pgbouncer", namespace)
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["pgbouncer", "pgbouncer-config"]
    assert {c["image"] for c in pod["containers"]} == {"example/pgbouncer:1"}
    assert deployment["spec"]["replicas"] == 2
    service = await kube.get(SERVICES, "hippo-pgbouncer", namespace)
    assert service["spec"]["selector"] == LABELS
    assert service["spec"]["ports"][0]["name"] == "pgbouncer"
    config = await kube.get(CONFIG_MAPS, "hippo-pgbouncer", namespace)
    assert sorted(config["data"]) == ["pgbouncer-empty", "pgbouncer.ini"]
    assert "host=hippo-primary port=5432" in config["data"]["pgbouncer.ini"]
    secret = await kube.get(SECRETS, "hippo-pgbouncer", namespace)
    assert sorted(secret["data"]) == [
        "pgbouncer-frontend.ca-roots",
        "pgbouncer-frontend.crt",
        "pgbouncer-frontend.key",
        "pgbouncer-password",
        "pgbouncer-users.txt",
        "pgbouncer-verifier",
    ]
    await _frontend_certificate(kube, namespace, secret)
    pdb = await kube.get(POD_DISRUPTION_BUDGETS, "hippo-pgbouncer", namespace)
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": LABELS}}
    user = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]
    host = base64.b64decode(user["pgbouncer-host"]).decode()
    assert host == f"hippo-pgbouncer.{namespace}.svc"
    assert {"pgbouncer-port", "pgbouncer-uri", "pgbouncer-jdbc-uri"} <= set(user)
    patroni = await kube.get(CONFIG_MAPS, "hippo-config", namespace)
    dcs = yaml.safe_load(patroni["data"]["patroni.yaml"])["bootstrap"]["dcs"]
    assert dcs["postgresql"]["pg_hba"][6:8] == [
        'hostssl all "_crunchypgbouncer" all "scram-sha-256"',
        'host all "_crunchypgbouncer" all "reject"',
    ]
    password = secret["data"]["pgbouncer-password"]

    # Off: every object and the user Secret keys go; the condition and the status too.
    await kube.patch(CLUSTERS, "hippo", {"spec": {"proxy": None}}, namespace=namespace)

    async def removed() -> bool:
        for resource in KINDS:
            if await found(kube, resource, "hippo-pgbouncer", namespace) is not None:
                return False
        data = (await kube.get(SECRETS, "hippo-pguser-hippo", namespace))["data"]
        return not any(key.startswith("pgbouncer-") for key in data)

    await wait_for(removed, timeout=60)
    cluster = await ready_cluster(kube, namespace)
    assert "ProxyAvailable" not in {c["type"] for c in cluster["status"]["conditions"]}
    assert "proxy" not in cluster["status"]

    # On again, with one replica: no budget; a new password (the Secret went with pooling).
    await kube.patch(
        CLUSTERS, "hippo", {"spec": {"proxy": {"pgBouncer": {"replicas": 1}}}}, namespace=namespace
    )
    secret = await wait_for(lambda: found(kube, SECRETS, "hippo-pgbouncer", namespace))
    assert secret["data"]["pgbouncer-password"] != password
    await wait_for(lambda: found(kube, DEPLOYMENTS, "hippo-pgbouncer", namespace))
    await ready_cluster(kube, namespace)
    assert await found(kube, POD_DISRUPTION_BUDGETS, "hippo-pgbouncer", namespace) is None


async def test_node_port_on_cluster_ip_is_a_warning(kube: Client, namespace: str) -> None:
    """Kubernetes would refuse the Service: a Warning naming the fix; the rest is applied."""
    await kube.create(CLUSTERS, _hippo(namespace, service={"nodePort": 32000}))

    async def warned() -> JSON | None:
        events = (await kube.list(EVENTS, namespace)).items
        return next((e for e in events if e["reason"] == "MisconfiguredClusterIP"), None)

    event = await wait_for(warned)
    assert "spec.proxy.pgBouncer.service.type" in event["message"]
    await wait_for(lambda: found(kube, DEPLOYMENTS, "hippo-pgbouncer", namespace))
    assert await found(kube, SERVICES, "hippo-pgbouncer", namespace) is None
