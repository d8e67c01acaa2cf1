"""Pure parts of the local control plane: the Go wrapper modules, the node's objects."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from reconciler_envtest import binaries
from reconciler_envtest.node import (
    EXIT_CODE_ANNOTATION,
    PodAddresses,
    persistent_volume,
    pod_status,
)
from reconciler_envtest.process import free_port


def test_wrapper_module_pins_every_staging_module_to_the_matching_version() -> None:
    """Each k8s.io staging module is replaced by itself at v0.<minor>.<patch>."""
    go_mod = binaries.kubernetes_go_mod()
    minor_patch = binaries.KUBERNETES_VERSION.split(".", 1)[1]
    assert f"require k8s.io/kubernetes v{binaries.KUBERNETES_VERSION}" in go_mod
    assert f"k8s.io/client-go => k8s.io/client-go v0.{minor_patch}" in go_mod
    replaces = [line for line in go_mod.splitlines() if "=>" in line]
    assert len(replaces) == 33


def test_given_directory_without_binaries_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RECONCILER_K8S_BIN naming an incomplete directory fails with the missing names."""
    monkeypatch.setenv("RECONCILER_K8S_BIN", str(tmp_path))
    with pytest.raises(binaries.BinariesUnavailableError, match="kube-apiserver"):
        binaries.locate()


def test_pod_addresses_are_unique_and_reused_after_release() -> None:
    """Each pod gets its own loopback address; a released address is handed out again."""
    addresses = PodAddresses("127.1.0.0/16")
    first, second = addresses.get("a"), addresses.get("b")
    assert first != second
    assert addresses.get("a") == first
    addresses.release("a")
    assert addresses.get("c") == first


def _pod(owner_kind: str | None, annotations: dict[str, str] | None = None) -> dict[str, object]:
    owners = (
        [{"kind": owner_kind, "controller": True, "name": "x", "uid": "u"}] if owner_kind else []
    )
    return {
        "metadata": {"uid": "1", "ownerReferences": owners, "annotations": annotations or {}},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "main", "image": "i"}],
        },
    }


def test_long_running_pod_is_running_and_ready() -> None:
    """A StatefulSet's pod is Running and Ready, its init containers terminated."""
    status = pod_status(_pod("StatefulSet"), "127.1.0.1", "127.0.0.1")["status"]
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert "running" in status["containerStatuses"][0]["state"]


def test_job_pod_succeeds_or_fails_with_the_annotated_exit_code() -> None:
    """A Job's pod succeeds, unless annotated with a non-zero exit code."""
    assert pod_status(_pod("Job"), "127.1.0.1", "127.0.0.1")["status"]["phase"] == "Succeeded"
    failed = pod_status(_pod("Job", {EXIT_CODE_ANNOTATION: "2"}), "127.1.0.1", "127.0.0.1")[
        "status"
    ]
    assert failed["phase"] == "Failed"
    assert failed["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2


def test_persistent_volume_is_prebound_to_its_claim(tmp_path: Path) -> None:
    """The volume carries the claim's size and modes and a claimRef with its UID."""
    claim = {
        "metadata": {"name": "data", "namespace": "ns", "uid": "abc"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    volume = persistent_volume(claim, tmp_path)
    assert volume["metadata"]["name"] == "pvc-abc"
    assert volume["spec"]["capacity"] == {"storage": "5Gi"}
    assert volume["spec"]["claimRef"]["uid"] == "abc"
    assert volume["spec"]["hostPath"]["path"] == str(tmp_path / "pvc-abc")


def test_listening_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", ports[0]))
