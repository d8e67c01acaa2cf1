"""The instance StatefulSet and pod template."""

from __future__ import annotations

from typing import Any

from reconciler.intent import Owner
from reconciler.postgrescluster import instance_pod, scripts

OWNER = Owner("hippo", "ns", "uid-1", labels={"team": "db"})
SPEC: dict[str, Any] = {
    "postgresVersion": 16,
    "port": 5432,
    "patroni": {"port": 8008, "syncPeriodSeconds": 10, "leaderLeaseDurationSeconds": 30},
}
SET: dict[str, Any] = {
    "name": "instance1",
    "replicas": 1,
    "dataVolumeClaimSpec": {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    },
    "metadata": {"labels": {"tier": "gold"}},
    "containers": [{"name": "extra", "image": "example/extra:1"}],
}
PREFIX = "postgres-operator.crunchydata.com/"


def _statefulset(spec: dict[str, Any] = SPEC, sidecars: bool = True) -> dict[str, Any]:
    return instance_pod.statefulset(
        OWNER,
        spec,
        SET,
        "hippo-instance1-abcd",
        image="example/postgres:16",
        replicas=1,
        sidecars=sidecars,
    )


def test_statefulset_is_one_pod_updated_on_delete() -> None:
    """PGO's StatefulSet: one replica, OnDelete, `<c>-pods` as service, no history."""
    sts = _statefulset()
    assert sts["metadata"]["name"] == "hippo-instance1-abcd"
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["serviceName"] == "hippo-pods"
    assert spec["revisionHistoryLimit"] == 0
    assert spec["selector"]["matchLabels"] == {
        PREFIX + "cluster": "hippo",
        PREFIX + "instance-set": "instance1",
        PREFIX + "instance": "hippo-instance1-abcd",
    }


def test_pod_labels_carry_patroni_scope_and_user_metadata() -> None:
    """The pod template has the Patroni scope label, data=postgres and the set's own labels."""
    template = _statefulset()["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert labels[PREFIX + "patroni"] == "hippo-ha"
    assert labels[PREFIX + "data"] == "postgres"
    assert labels["tier"] == "gold"
    assert labels["team"] == "db"
    assert (
        template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "database"
    )


def test_pod_layout_matches_pgo() -> None:
    """Init containers, containers, volumes and the database container's probes and env."""
    pod = _statefulset()["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["postgres-startup", "nss-wrapper-init"]
    assert [c["name"] for c in pod["containers"]] == ["database", "replication-cert-copy", "extra"]
    assert [v["name"] for v in pod["volumes"]] == [
        "cert-volume",
        "postgres-data",
        "database-containerinfo",
        "patroni-config",
        "tmp",
        "dshm",
    ]
    database = pod["containers"][0]
    assert database["command"] == ["patroni", "/etc/patroni"]
    assert database["readinessProbe"]["httpGet"] == {
        "path": "/readiness",
        "port": 8008,
        "scheme": "HTTPS",
    }
    env = {e["name"]: e.get("value") for e in database["env"]}
    assert env["PGDATA"] == "/pgdata/pg16"
    assert env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == "$(PATRONI_NAME).hippo-pods:5432"
    assert pod["serviceAccountName"] == "hippo-instance"
    assert pod["securityContext"]["fsGroup"] == 26
    assert database["securityContext"]["runAsNonRoot"] is True
    assert len(pod["topologySpreadConstraints"]) == 2


def test_sidecars_need_their_gate_and_default_spread_can_be_disabled() -> None:
    """InstanceSidecars off drops user containers; disableDefaultPodScheduling drops the spread."""
    pod = _statefulset({**SPEC, "disableDefaultPodScheduling": True}, sidecars=False)["spec"][
        "template"
    ]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["database", "replication-cert-copy"]
    assert "topologySpreadConstraints" not in pod


def test_rendering_is_deterministic() -> None:
    """The same inputs render the same template, byte for byte (no rollout on restart)."""
    assert _statefulset() == _statefulset()


def test_container_info_is_in_pgo_units() -> None:
    """The downward API files hold whole cores and bytes (PGO sets no divisor): the units
    pgMonitor's pgnodemx queries read."""
    pod = _statefulset()["spec"]["template"]["spec"]
    (info,) = [v for v in pod["volumes"] if v["name"] == "database-containerinfo"]
    refs = [i["resourceFieldRef"] for i in info["downwardAPI"]["items"] if "resourceFieldRef" in i]
    assert [r["resource"] for r in refs] == [
        "limits.cpu",
        "requests.cpu",
        "limits.memory",
        "requests.memory",
    ]
    assert {r["divisor"] for r in refs} == {"0"}


def test_the_disk_space_reporter_sees_the_data_and_wal_volumes() -> None:
    """replication-cert-copy reports free space (scripts.replication_cert_copy): it mounts the
    volumes it looks at, and patches only its own pod, with PGO's annotation name."""
    with_wal = {**SET, "walVolumeClaimSpec": SET["dataVolumeClaimSpec"]}
    for instance_set, paths in ((SET, ["/pgdata"]), (with_wal, ["/pgdata", "/pgwal"])):
        pod = instance_pod.pod_spec(
            OWNER, SPEC, instance_set, "hippo-instance1-abcd", image="pg", sidecars=False
        )
        reporter = next(c for c in pod["containers"] if c["name"] == "replication-cert-copy")
        mounted = [m["mountPath"] for m in reporter["volumeMounts"]]
        assert [p for p in mounted if p.startswith("/pg") and p != "/pgconf/tls"] == paths
        script = reporter["command"][3]
        assert "suggested-pgdata-pvc-size" in script
        assert "/pods/${HOSTNAME}" in script


def test_without_the_disk_space_report_the_sidecar_is_as_before() -> None:
    """An upgraded operator keeps the template of a running instance whose spec did not
    change (steps/instances.py): without the report, the sidecar is the program and mounts of
    the versions before the report, byte for byte."""
    pod = instance_pod.pod_spec(
        OWNER,
        SPEC,
        SET,
        "hippo-instance1-abcd",
        image="pg",
        sidecars=False,
        report_disk_space=False,
    )
    sidecar = next(c for c in pod["containers"] if c["name"] == "replication-cert-copy")
    assert sidecar["command"][3] == scripts.REPLICATION_CERT_COPY
    assert "report_space" not in sidecar["command"][3]
    assert [m["mountPath"] for m in sidecar["volumeMounts"]] == ["/pgconf/tls", "/pgdata", "/tmp"]
    with_report = scripts.replication_cert_copy(report_disk_space=True)
    assert with_report.startswith(scripts.REPLICATION_CERT_COPY.split("last=")[0])
    assert with_report.endswith(scripts.REPLICATION_CERT_COPY.split("  current=")[1])


def test_the_exporter_joins_the_pod_with_pgmonitor_s_discovery_label() -> None:
    container = {"name": "exporter", "image": "example/exporter:1"}
    volume = {"name": "monitoring-secret", "secret": {"secretName": "hippo-monitoring"}}
    sts = instance_pod.statefulset(
        OWNER,
        SPEC,
        SET,
        "hippo-instance1-abcd",
        image="example/postgres:16",
        replicas=1,
        sidecars=False,
        exporter=(container, [volume]),
    )
    template = sts["spec"]["template"]
    assert template["metadata"]["labels"][PREFIX + "crunchy-postgres-exporter"] == "true"
    assert template["spec"]["containers"][-1] == container
    assert volume in template["spec"]["volumes"]
    assert (
        PREFIX + "crunchy-postgres-exporter"
        not in _statefulset()["spec"]["template"]["metadata"]["labels"]
    )
