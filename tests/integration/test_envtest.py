"""The local control plane acts as a cluster: a node, scheduling, volumes, Jobs, collection."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reconciler_envtest import KUBERNETES_VERSION
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.node import EXIT_CODE_ANNOTATION
from reconciler_envtest.process import alive
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, ApiError, Client, NotFoundError
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    EVENTS,
    JOBS,
    NAMESPACES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    SECRETS,
    STATEFUL_SETS,
)
from tests.e2e import leaks


def _statefulset(namespace: str, replicas: int) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "example/web:1"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def _job(namespace: str, name: str, annotations: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "example/job:1"}],
                },
            },
        },
    }


async def test_node_is_ready_and_reports_the_pinned_version(kube: Client) -> None:
    """The node registers, stays Ready and reports the pinned Kubernetes version."""
    nodes = (await kube.list(NODES)).items
    assert len(nodes) == 1
    node = nodes[0]
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES_VERSION}"


async def test_statefulset_pods_run_with_bound_claims(kube: Client, namespace: str) -> None:
    """A StatefulSet of two replicas gets two Running, Ready pods on loopback IPs and bound PVCs."""
    await kube.create(STATEFUL_SETS, _statefulset(namespace, 2))

    async def running_pods() -> list[JSON] | None:
        pods = (await kube.list(PODS, namespace)).items
        ok = [p for p in pods if p.get("status", {}).get("phase") == "Running"]
        return ok if len(ok) == 2 else None

    pods = await wait_for(running_pods)
    assert sorted(p["metadata"]["name"] for p in pods) == ["web-0", "web-1"]
    for pod in pods:
        assert pod["status"]["podIP"].startswith("127.")
        assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert len({p["status"]["podIP"] for p in pods}) == 2

    async def bound_claims() -> list[JSON] | None:
        claims = (await kube.list(PERSISTENT_VOLUME_CLAIMS, namespace)).items
        bound = [c for c in claims if c.get("status", {}).get("phase") == "Bound"]
        return bound if len(bound) == 2 else None

    claims = await wait_for(bound_claims)
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1"]

    async def ready_statefulset() -> JSON | None:
        statefulset = await kube.get(STATEFUL_SETS, "web", namespace)
        return statefulset if statefulset.get("status", {}).get("readyReplicas") == 2 else None

    await wait_for(ready_statefulset)


async def test_deleted_claim_releases_and_removes_its_volume(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    """Deleting a claim deletes its volume and the volume's directory (reclaim policy Delete)."""
    claim = await kube.create(
        PERSISTENT_VOLUME_CLAIMS,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "scratch", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    volume_name = f"pvc-{claim['metadata']['uid']}"
    volume = await wait_for(lambda: kube.get(PERSISTENT_VOLUMES, volume_name))
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory.is_relative_to(control_plane.run_dir)

    await kube.delete(PERSISTENT_VOLUME_CLAIMS, "scratch", namespace)

    async def volume_gone() -> bool:
        try:
            await kube.get(PERSISTENT_VOLUMES, volume_name)
        except NotFoundError:
            return True
        return False

    await wait_for(volume_gone)
    assert not await asyncio.to_thread(directory.exists)


async def test_job_completes(kube: Client, namespace: str) -> None:
    """A Job's pod exits 0 and the Job controller marks the Job Complete."""
    await kube.create(JOBS, _job(namespace, "ok"))

    async def complete() -> JSON | None:
        job = await kube.get(JOBS, "ok", namespace)
        conditions = job.get("status", {}).get("conditions") or []
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
        return job if done else None

    job = await wait_for(complete)
    assert job["status"]["succeeded"] == 1


async def test_job_fails_when_the_test_says_so(kube: Client, namespace: str) -> None:
    """A pod annotated with a non-zero exit code fails, and so does its Job."""
    await kube.create(JOBS, _job(namespace, "bad", {EXIT_CODE_ANNOTATION: "3"}))

    async def failed() -> JSON | None:
        job = await kube.get(JOBS, "bad", namespace)
        conditions = job.get("status", {}).get("conditions") or []
        return (
            job
            if any(c["type"] == "Failed" and c["status"] == "True" for c in conditions)
            else None
        )

    await wait_for(failed)
    pods = (await kube.list(PODS, namespace, label_selector="job-name=bad")).items
    state = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 3


async def test_deleting_an_owner_collects_its_dependents(kube: Client, namespace: str) -> None:
    """The garbage collector deletes an object whose owner was deleted."""
    owner = await kube.create(
        CONFIG_MAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "owner", "namespace": namespace},
        },
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    await kube.create(
        CONFIG_MAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "namespace": namespace,
                "ownerReferences": [reference],
            },
        },
    )
    await kube.delete(CONFIG_MAPS, "owner", namespace)

    async def collected() -> bool:
        try:
            await kube.get(CONFIG_MAPS, "dependent", namespace)
        except NotFoundError:
            return True
        return False

    await wait_for(collected)


@pytest.mark.timeout(180)
def test_cli_up_status_down_leaves_no_process(tmp_path: Path) -> None:
    """`envtest up` returns with a kubeconfig; `down` stops every process it started."""
    run = tmp_path / "plane"
    command = [sys.executable, "-m", "reconciler_envtest"]
    env = {**os.environ}
    up = subprocess.run(
        [*command, "up", "--dir", str(run)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=150,
    )
    assert up.returncode == 0, up.stderr
    assert Path(up.stdout.strip()) == run / "kubeconfig"
    pids = {p.stem: int(p.read_text()) for p in run.glob("*.pid")}
    assert {
        "supervisor",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    } <= set(pids)
    assert subprocess.run([*command, "status", "--dir", str(run)], check=False).returncode == 0

    down = subprocess.run(
        [*command, "down", "--dir", str(run)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert subprocess.run([*command, "status", "--dir", str(run)], check=False).returncode == 3


async def test_pod_security_admission_enforces_restricted(kube: Client) -> None:
    """The e2e tier runs every test in a namespace enforcing the `restricted` Pod Security
    Standard; that only proves something if the API server's admission refuses a pod that
    breaks it."""
    name = "restricted-check"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    await kube.create(
        NAMESPACES,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loose", "namespace": name},
        "spec": {"containers": [{"name": "main", "image": "example/web:1"}]},
    }
    try:
        with pytest.raises(ApiError) as refused:
            await kube.create(PODS, pod)
        assert refused.value.status == 403
        assert 'violates PodSecurity "restricted:latest"' in refused.value.message
    finally:
        await kube.delete(NAMESPACES, name)


async def test_the_secret_search_of_the_e2e_tier_finds_a_printed_password(
    kube: Client, namespace: str
) -> None:
    """The e2e tier's check for secrets in logs and Events (`tests/e2e/leaks.py`) would see
    one: a password of a Secret shown in an Event's message and in a log line is reported,
    a certificate (public) and a short value are not looked for."""
    password = "Vq8-not-a-real-password-3k"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hippo-pguser-hippo", "namespace": namespace},
        "stringData": {"password": password, "port": "5432", "ca.crt": "-----BEGIN CERT"},
    }
    await kube.create(SECRETS, secret)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "oops", "namespace": namespace},
        "involvedObject": {"kind": "Secret", "name": "hippo-pguser-hippo", "namespace": namespace},
        "reason": "Oops",
        "message": f"connecting with {password}",
        "type": "Warning",
    }
    await kube.create(EVENTS, event)
    found = await leaks.search(kube, namespace, ["reconciled", f"password={password}"])
    assert sorted(found) == [
        "Event oops on hippo-pguser-hippo shows hippo-pguser-hippo/password",
        "operator log shows hippo-pguser-hippo/password",
    ]
