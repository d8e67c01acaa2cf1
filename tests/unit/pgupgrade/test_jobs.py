"""The PGUpgrade Jobs: PGO's names and labels, the instance's pod with one container."""

from __future__ import annotations

from typing import Any

from reconciler import naming
from reconciler.pgupgrade import jobs

UPGRADE: dict[str, Any] = {
    "metadata": {"name": "hippo-upgrade", "namespace": "ns", "uid": "u-1"},
    "spec": {
        "postgresClusterName": "hippo",
        "fromPostgresVersion": 15,
        "toPostgresVersion": 17,
        "image": "example/crunchy-upgrade",
        "metadata": {"labels": {"team": "db"}, "annotations": {"note": "x"}},
    },
}
STATEFULSET: dict[str, Any] = {
    "metadata": {"name": "hippo-instance1-abcd"},
    "spec": {
        "template": {
            "metadata": {"labels": {"old": "label"}},
            "spec": {
                "serviceAccountName": "hippo-instance",
                "securityContext": {"fsGroup": 26},
                "initContainers": [{"name": "postgres-startup"}],
                "containers": [
                    {
                        "name": "database",
                        "image": "postgres:15",
                        "securityContext": {"runAsNonRoot": True},
                        "volumeMounts": [{"name": "postgres-data", "mountPath": "/pgdata"}],
                    },
                    {"name": "pgbackrest", "image": "pgbackrest"},
                ],
                "volumes": [{"name": "postgres-data"}],
            },
        }
    },
}


def test_upgrade_job_runs_pg_upgrade_on_the_startup_instance_volumes() -> None:
    job = jobs.upgrade_job(UPGRADE, STATEFULSET, cpu_concurrency=True)
    assert job["metadata"]["name"] == "hippo-upgrade-pgdata"
    assert job["metadata"]["labels"] == {
        "team": "db",
        naming.LABEL_PGUPGRADE: "hippo-upgrade",
        naming.LABEL_CLUSTER: "hippo",
        naming.LABEL_ROLE: "pgupgrade",
        naming.LABEL_VERSION: "17",
    }
    assert job["metadata"]["ownerReferences"][0]["kind"] == "PGUpgrade"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert "initContainers" not in pod
    assert pod["serviceAccountName"] == "hippo-instance"
    assert pod["volumes"] == [{"name": "postgres-data"}]
    (container,) = pod["containers"]
    assert container["name"] == "database"
    assert container["image"] == "example/crunchy-upgrade"
    assert container["securityContext"] == {"runAsNonRoot": True}
    assert container["volumeMounts"] == [{"name": "postgres-data", "mountPath": "/pgdata"}]
    assert container["command"][-4:] == ["15", "17", "--link", "1"]
    assert "pg_upgrade" in container["command"][3]
    # The template's own labels give way to the Job's.
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]
    # The StatefulSet is not modified.
    assert len(STATEFULSET["spec"]["template"]["spec"]["containers"]) == 2


def test_transfer_method_and_jobs() -> None:
    assert jobs.transfer_flag({}) == "--link"
    assert jobs.transfer_flag({"transferMethod": "Copy"}) == "--copy"
    assert jobs.transfer_flag({"transferMethod": "CopyFileRange"}) == "--copy-file-range"
    assert jobs.parallel_jobs({"jobs": 3}, cpu_concurrency=True) == 3
    assert jobs.parallel_jobs({}, cpu_concurrency=True) == 1
    four = {"resources": {"limits": {"cpu": "4"}, "requests": {"cpu": "2500m"}}}
    assert jobs.parallel_jobs(four, cpu_concurrency=True) == 3
    assert jobs.parallel_jobs(four, cpu_concurrency=False) == 1


def test_remove_data_job_names_the_replica() -> None:
    job = jobs.remove_data_job(UPGRADE, STATEFULSET)
    assert job["metadata"]["name"] == "hippo-upgrade-hippo-instance1-abcd"
    assert job["metadata"]["labels"][naming.LABEL_ROLE] == "removedata"
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-1] == "15"
    assert "shut down in recovery" in command[3]
