"""Backup Jobs in a service mesh: a mutating webhook, served by this test as a mesh's injector
would be, adds a proxy container that never exits by itself (as Istio's does without native
sidecars) to every Job pod of a labelled namespace; the backup Job still completes, because
its container asks the proxy to quit on the mesh's endpoint once pgBackRest is done."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from reconciler_envtest import images
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.process import free_port

from reconciler import naming
from reconciler.containers import RESTRICTED_SECURITY_CONTEXT
from reconciler.pki import x509
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import JOBS, NAMESPACES, PODS, Resource
from tests.e2e.cluster import CLUSTERS
from tests.e2e.test_backups import cluster_where, condition, hippo_with_backups
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

WEBHOOKS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    namespaced=False,
)
LABEL = "e2e.reconciler.dev/mesh-injection"

# The proxy: serves Istio's pilot-agent quit endpoint on the pod's loopback, else runs forever.
PROXY = """
import http.server
class Agent(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(200 if self.path == "/quitquitquit" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if self.path == "/quitquitquit":
            raise SystemExit(0)
http.server.HTTPServer(("127.0.0.1", 15020), Agent).serve_forever()
"""


def proxy_container() -> JSON:
    return {
        "name": "istio-proxy",
        "image": f"{images.REGISTRY}/pgbackrest",
        "command": ["python3", "-c", PROXY],
        "securityContext": RESTRICTED_SECURITY_CONTEXT,
    }


async def inject(request: web.Request) -> web.Response:
    """The admission webhook: a JSON patch appending the proxy to the pod's containers."""
    review: dict[str, Any] = await request.json()
    patch = [{"op": "add", "path": "/spec/containers/-", "value": proxy_container()}]
    review["response"] = {
        "uid": review["request"]["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    review.pop("request")
    return web.json_response(review)


@pytest_asyncio.fixture(loop_scope="session")
async def mesh_injector(kube: Client, tmp_path: Path) -> AsyncIterator[str]:
    """The webhook, registered for Job pods of namespaces labelled `LABEL=enabled`."""
    lifetime = datetime.timedelta(hours=1)
    authority = x509.new_authority("mesh-injector-ca", valid_for=lifetime)
    serving = x509.issue(
        authority, "mesh-injector", valid_for=lifetime, ip_addresses=["127.0.0.1"], server=True
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    (tmp_path / "tls.crt").write_bytes(serving.certificate_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    app = web.Application()
    app.router.add_post("/inject", inject)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    name = "e2e-mesh-injector"
    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "inject.mesh.e2e.reconciler.dev",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{port}/inject",
                    "caBundle": base64.b64encode(authority.certificate_pem).decode(),
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": {LABEL: "enabled"}},
                "objectSelector": {
                    "matchExpressions": [
                        {"key": "batch.kubernetes.io/job-name", "operator": "Exists"}
                    ]
                },
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
            }
        ],
    }
    await kube.create(WEBHOOKS, configuration)
    try:
        yield name
    finally:
        await kube.delete(WEBHOOKS, name)
        await runner.cleanup()


@pytest.mark.timeout(900)
async def test_backup_jobs_complete_beside_a_mesh_proxy(
    kube: Client, namespace: str, control_plane: ControlPlane, mesh_injector: str
) -> None:
    await kube.patch(NAMESPACES, namespace, {"metadata": {"labels": {LABEL: "enabled"}}})
    await kube.create(CLUSTERS, hippo_with_backups(namespace))
    await ready_cluster(kube, namespace, timeout=120)

    def replica_create(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_PGBACKREST_REPLICA_CREATE) or {}
        return found.get("status") == "True"

    cluster = await cluster_where(kube, namespace, replica_create, 600, control_plane)
    assert cluster["status"]["pgbackrest"]["repos"][0]["replicaCreateBackupComplete"] is True
    selector = f"{naming.LABEL_PGBACKREST_BACKUP}=replica-create"
    (job,) = (await kube.list(JOBS, namespace, label_selector=selector)).items
    pods = await kube.list(PODS, namespace, label_selector=f"job-name={job['metadata']['name']}")
    succeeded = [p for p in pods.items if p["status"].get("phase") == "Succeeded"]
    assert succeeded, [p["status"].get("phase") for p in pods.items]
    statuses = {s["name"]: s for s in succeeded[0]["status"]["containerStatuses"]}
    # The proxy was there, and it left because it was asked to.
    assert set(statuses) == {"pgbackrest", "istio-proxy"}
    assert statuses["istio-proxy"]["state"]["terminated"]["exitCode"] == 0
    assert statuses["pgbackrest"]["state"]["terminated"]["exitCode"] == 0
