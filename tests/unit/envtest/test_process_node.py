"""The process node's pure parts: volume contents, environment, names, the launch program."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from reconciler_envtest import services, volumes
from reconciler_envtest.containers import ContainerSpec, Mount, launch_script
from reconciler_envtest.kubelet import container_env, expand


def _pod(**spec: object) -> dict[str, object]:
    return {
        "metadata": {
            "name": "hippo-0",
            "namespace": "ns",
            "uid": "u1",
            "labels": {"b": "2", "a": 'q"uote'},
        },
        "spec": {
            "containers": [{"name": "database", "resources": {"limits": {"cpu": "1500m"}}}],
            **spec,
        },
        "status": {"podIP": "10.244.0.9"},
    }


OBJECTS = {
    ("ConfigMap", "ns", "cm"): {"data": {"patroni.yaml": "a: 1", "other": "x"}},
    ("Secret", "ns", "s"): {"data": {"tls.key": base64.b64encode(b"KEY").decode()}},
}


def lookup(kind: str, namespace: str, name: str) -> dict[str, object] | None:
    return OBJECTS.get((kind, namespace, name))  # type: ignore[return-value]


def no_token(_: dict[str, object]) -> str:
    raise AssertionError("no token expected")


def test_projected_volume_items_modes_and_sources() -> None:
    volume = {
        "name": "v",
        "projected": {
            "defaultMode": 0o600,
            "sources": [
                {
                    "configMap": {
                        "name": "cm",
                        "items": [{"key": "patroni.yaml", "path": "p/c.yaml"}],
                    }
                },
                {
                    "secret": {
                        "name": "s",
                        "items": [{"key": "tls.key", "path": "k", "mode": 0o640}],
                    }
                },
                {"secret": {"name": "absent", "optional": True}},
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}},
            ],
        },
    }
    files = volumes.files(volume, _pod(), lookup, lambda source: f"T{source['expirationSeconds']}")
    assert files == {
        "p/c.yaml": (b"a: 1", 0o600),
        "k": (b"KEY", 0o640),
        "token": (b"T600", 0o600),
    }


def test_missing_required_source_is_an_error_naming_it() -> None:
    with pytest.raises(volumes.VolumeError, match='secret "nope" not found'):
        volumes.files({"name": "v", "secret": {"secretName": "nope"}}, _pod(), lookup, no_token)
    volume = {
        "name": "v",
        "configMap": {"name": "cm", "items": [{"key": "missing", "path": "m"}]},
    }
    with pytest.raises(volumes.VolumeError, match='has no key "missing"'):
        volumes.files(volume, _pod(), lookup, no_token)


def test_downward_api_formats_as_the_kubelet() -> None:
    volume = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {
                    "path": "cpu",
                    "resourceFieldRef": {
                        "containerName": "database",
                        "resource": "limits.cpu",
                        "divisor": "1m",
                    },
                },
                {
                    "path": "mem",
                    "resourceFieldRef": {
                        "containerName": "database",
                        "resource": "limits.memory",
                        "divisor": "1Mi",
                    },
                },
                {
                    "path": "cores",
                    "resourceFieldRef": {
                        "containerName": "database",
                        "resource": "limits.cpu",
                        "divisor": "0",
                    },
                },
            ]
        },
    }
    files = volumes.files(volume, _pod(), lookup, no_token)
    assert files is not None
    assert files["labels"][0] == b'a="q\\"uote"\nb="2"'
    assert files["cpu"][0] == b"1500"
    assert files["mem"][0] == b"262144"  # no limit: the node's allocatable, 256Gi
    assert files["cores"][0] == b"2"  # a zero divisor is unset: whole cores, rounded up


def test_other_volume_kinds_have_no_files() -> None:
    assert volumes.files({"name": "tmp", "emptyDir": {}}, _pod(), lookup, no_token) is None


def test_atomic_write_swaps_data_and_keeps_links(tmp_path: Path) -> None:
    uid, gid = os.getuid(), os.getgid()
    assert volumes.write_atomically(
        tmp_path, {"a/b": (b"1", 0o600), "c": (b"2", 0o644)}, uid=uid, gid=gid
    )
    assert (tmp_path / "a" / "b").read_bytes() == b"1"
    assert (tmp_path / "a").is_symlink()
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o640  # group read for fsGroup
    assert not volumes.write_atomically(
        tmp_path, {"a/b": (b"1", 0o600), "c": (b"2", 0o644)}, uid=uid, gid=gid
    )
    assert volumes.write_atomically(tmp_path, {"c": (b"3", 0o644)}, uid=uid, gid=gid)
    assert (tmp_path / "c").read_bytes() == b"3"
    assert not (tmp_path / "a").exists()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("..20")]) == 1


def test_expand_follows_kubernetes_rules() -> None:
    env = {"NAME": "hippo-0"}
    assert expand("$(NAME).hippo-pods:5432", env) == "hippo-0.hippo-pods:5432"
    assert expand("$(UNSET) $$(NAME) $$", env) == "$(UNSET) $(NAME) $"


def test_container_env_in_order_with_downward_and_references() -> None:
    container = {
        "name": "database",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "PATRONI_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ADDRESS", "value": "$(PATRONI_NAME).pods:$(PORT)"},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "tls.key"}}},
        ],
    }
    env = container_env(_pod(), container, {"PATH": "/bin", "PORT": "5432"}, lookup)
    assert env == {
        "PATH": "/bin",
        "PORT": "5432",
        "CM_patroni.yaml": "a: 1",
        "CM_other": "x",
        "PATRONI_NAME": "hippo-0",
        "IP": "10.244.0.9",
        "ADDRESS": "hippo-0.pods:5432",
        "KEY": "KEY",
    }


def test_hosts_entries_as_cluster_dns_answers() -> None:
    service_ip = {
        "metadata": {"name": "hippo-ha", "namespace": "ns"},
        "spec": {"clusterIP": "10.96.0.10"},
    }
    headless = {
        "metadata": {"name": "hippo-pods", "namespace": "ns"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True},
    }
    endpoints = {("ns", "hippo-pods"): {"subsets": [{"notReadyAddresses": [{"ip": "10.244.0.9"}]}]}}
    pod = {
        "metadata": {"name": "hippo-0", "namespace": "ns"},
        "spec": {"subdomain": "hippo-pods"},
        "status": {"podIP": "10.244.0.9"},
    }
    local = services.hosts_entries([service_ip, headless], endpoints, [pod], "ns")
    assert ("10.96.0.10", "hippo-ha") in local
    assert ("10.96.0.10", "hippo-ha.ns.svc.cluster.local") in local
    assert ("10.244.0.9", "hippo-pods.ns.svc") in local
    assert ("10.244.0.9", "hippo-0.hippo-pods") in local
    node = services.hosts_entries([service_ip], endpoints, [pod], None)
    assert ("10.96.0.10", "hippo-ha") not in node
    assert ("10.96.0.10", "hippo-ha.ns.svc") in node
    text = services.hosts_text(local)
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert (
        "10.96.0.10\thippo-ha.ns.svc.cluster.local hippo-ha.ns.svc.cluster.local. "
        "hippo-ha.ns.svc hippo-ha.ns hippo-ha\n" in text
    )


def test_launch_script_mounts_then_becomes_the_command(tmp_path: Path) -> None:
    source = tmp_path / "cert volume"
    source.mkdir()
    spec = ContainerSpec(
        name="database",
        argv=["patroni", "/etc/patroni"],
        env={"PATRONI_KUBERNETES_PORTS": "- name: postgres\n  port: 5432\n"},
        mounts=[Mount(str(source), "/pgconf/tls", read_only=True), Mount("tmpfs", "/dev/shm")],
        uid=101,
        gid=104,
        groups=[26, 104],
        read_only_root=True,
    )
    script = launch_script(spec, Path("/run/l"), Path("/sys/fs/cgroup/x"), Path("/h/ns"))
    lines = script.splitlines()
    assert lines[1] == "echo $$ > /sys/fs/cgroup/x/cgroup.procs"
    assert f"mount --bind '{source}' /run/l/root/pgconf/tls" in lines
    assert "mount -o remount,bind,ro /run/l/root/pgconf/tls" in lines
    assert "mount -t tmpfs -o mode=1777 tmpfs /run/l/root/dev/shm" in lines
    last = script.index("exec chroot")
    assert lines[lines.index(script[last:].splitlines()[0]) - 1] == (
        "mount -o remount,bind,ro /run/l/root"
    )
    assert script[last:].startswith(
        "exec chroot --userspec=101:104 --groups=26,104 /run/l/root env -i --chdir=/ "
    )
    assert script.endswith(" patroni /etc/patroni\n")
    assert "'PATRONI_KUBERNETES_PORTS=- name: postgres\n  port: 5432\n'" in script
