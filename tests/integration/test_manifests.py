"""The kustomize manifests render and are accepted by a real API server (server-side dry run)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path

import pytest
import yaml
from reconciler_envtest import binaries
from reconciler_envtest.controlplane import ControlPlane

from reconciler.runtime.client import Client, ConflictError
from reconciler.runtime.resources import NAMESPACES

MANIFESTS = Path(__file__).parents[2] / "manifests"


async def _kubectl(*args: str) -> str:
    bin_dir = await asyncio.to_thread(binaries.ensure)  # the cached build, or builds it
    process = await asyncio.create_subprocess_exec(
        str(bin_dir / "kubectl"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


@pytest.mark.parametrize("variant", ["default", "rbac/namespaced"])
async def test_manifests_apply_with_a_server_side_dry_run(
    variant: str, kube: Client, control_plane: ControlPlane, tmp_path: Path
) -> None:
    rendered = await _kubectl("kustomize", str(MANIFESTS / variant))
    documents = list(yaml.safe_load_all(rendered))
    kinds = {doc["kind"] for doc in documents}
    if variant == "default":
        assert kinds == {
            "CustomResourceDefinition",
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
        }
        (deployment,) = (doc for doc in documents if doc["kind"] == "Deployment")
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {
            doc["metadata"].get("namespace") for doc in documents if doc["kind"] == "Deployment"
        } == {"postgres-operator"}
        crds = {d["metadata"]["name"] for d in documents if d["kind"] == "CustomResourceDefinition"}
        assert "postgresclusters.postgres-operator.crunchydata.com" in crds
    else:
        assert kinds == {"ServiceAccount", "Role", "RoleBinding"}
    # A dry run of namespaced objects needs their namespace to exist.
    with contextlib.suppress(ConflictError):
        await kube.create(
            NAMESPACES,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "postgres-operator"}},
        )
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    output = await _kubectl(
        f"--kubeconfig={control_plane.kubeconfig}",
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=manifest-test",
        "--namespace=postgres-operator",
        f"--filename={path}",
    )
    assert output.count("serverside-applied (server dry run)") == len(documents), output


def _relative(path: Path, start: Path) -> str:
    """`path` from `start` (kustomize takes relative paths only)."""
    return os.path.relpath(path, start)


async def test_monitoring_component_adds_podmonitors_and_dashboards(tmp_path: Path) -> None:
    """`manifests/monitoring` joins an installation as a component: PodMonitors that select
    the exporter's pods and the operator's, and the dashboards as one ConfigMap for Grafana."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [_relative(MANIFESTS / "default", tmp_path)],
                "components": [_relative(MANIFESTS / "monitoring", tmp_path)],
            }
        )
    )
    documents = list(yaml.safe_load_all(await _kubectl("kustomize", str(tmp_path))))
    monitors = {d["metadata"]["name"]: d for d in documents if d["kind"] == "PodMonitor"}
    exporter = monitors["postgres-exporter"]["spec"]
    assert exporter["selector"]["matchLabels"] == {
        "postgres-operator.crunchydata.com/crunchy-postgres-exporter": "true"
    }
    assert exporter["podMetricsEndpoints"][0]["port"] == "exporter"
    (deployment,) = (d for d in documents if d["kind"] == "Deployment")
    operator = monitors["postgres-operator"]["spec"]
    pod = deployment["spec"]["template"]
    assert operator["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert operator["podMetricsEndpoints"][0]["port"] in ports
    (dashboards,) = (d for d in documents if d["kind"] == "ConfigMap")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {"postgrescluster.json", "operator.json"} <= set(dashboards["data"])
    assert json.loads(dashboards["data"]["operator.json"])["panels"]
