"""pgBackRest's objects as PGO builds them: the repository host, its claim, RBAC, the instance
pod's additions, backup Jobs and CronJobs, and when the removal of backups waits."""

from __future__ import annotations

import datetime
from typing import Any

from reconciler import naming
from reconciler.intent import Owner
from reconciler.pki import authority, certificates
from reconciler.postgrescluster import instance_pod
from reconciler.postgrescluster.steps import backups, pgbackrest

OWNER = Owner("hippo", "ns", "uid-1")
IMAGE = "example/pgbackrest:2"
REPO = {
    "name": "repo1",
    "volume": {
        "volumeClaimSpec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        }
    },
}
SPEC: dict[str, Any] = {
    "postgresVersion": 16,
    "port": 5432,
    "patroni": {"port": 8008, "syncPeriodSeconds": 10, "leaderLeaseDurationSeconds": 30},
    "backups": {"pgbackrest": {"repos": [REPO], "jobs": {"ttlSecondsAfterFinished": 600}}},
}
P = naming.PREFIX


def test_repo_host_is_one_pod_named_under_the_pods_service() -> None:
    sts = pgbackrest.repo_host(OWNER, SPEC, IMAGE, None, {})
    assert sts["metadata"]["name"] == "hippo-repo-host"
    assert sts["spec"]["selector"]["matchLabels"] == {
        f"{P}cluster": "hippo",
        f"{P}pgbackrest": "",
        f"{P}pgbackrest-dedicated": "",
    }
    assert sts["metadata"]["labels"][f"{P}data"] == "pgbackrest"
    assert sts["spec"]["serviceName"] == "hippo-pods"
    assert (sts["spec"]["replicas"], sts["spec"]["podManagementPolicy"]) == (1, "Parallel")
    pod = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["pgbackrest-log-dir", "nss-wrapper-init"]
    assert [c["name"] for c in pod["containers"]] == ["pgbackrest", "pgbackrest-config"]
    assert pod["containers"][0]["command"] == ["pgbackrest", "server"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {
        "pgbackrest-server": "/etc/pgbackrest/server",
        "repo1": "/pgbackrest/repo1",
        "pgbackrest-config": "/etc/pgbackrest/conf.d",
        "tmp": "/tmp",
    }
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "repo1", "persistentVolumeClaim": {"claimName": "hippo-repo1"}}]
    assert pod["serviceAccountName"] == "hippo-repohost"
    assert pod["automountServiceAccountToken"] is False
    assert (
        pgbackrest.repo_host(OWNER, {**SPEC, "shutdown": True}, IMAGE, None, {})["spec"]["replicas"]
        == 0
    )


def test_repo_volume_carries_pgo_s_labels() -> None:
    claim = pgbackrest.repo_volume(OWNER, REPO, {"labels": {"team": "db"}})
    assert claim["metadata"]["name"] == "hippo-repo1"
    assert claim["metadata"]["labels"] == {
        f"{P}cluster": "hippo",
        f"{P}data": "pgbackrest",
        f"{P}pgbackrest": "",
        f"{P}pgbackrest-repo": "repo1",
        f"{P}pgbackrest-volume": "",
        "team": "db",
    }
    assert claim["spec"] == REPO["volume"]["volumeClaimSpec"]  # type: ignore[index]


def test_backup_jobs_may_list_pods_and_exec_into_them_only() -> None:
    account, job_account, role, binding = pgbackrest.rbac_objects(OWNER, None)
    assert account["metadata"]["name"] == "hippo-repohost"
    assert job_account["metadata"]["name"] == role["metadata"]["name"] == "hippo-pgbackrest"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    ]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hippo-pgbackrest"}]


def test_pgbackrest_secret_holds_the_client_and_repo_host_certificates() -> None:
    now = datetime.datetime.now(datetime.UTC)
    root = authority.new_root(now)
    client = authority.issue_leaf(root, *certificates.pgbackrest_client_names(OWNER), now)
    common_name, names = certificates.repo_host_names(OWNER)
    assert names[0] == "hippo-repo-host-0.hippo-pods.ns.svc.cluster.local."
    host = authority.issue_leaf(root, common_name, names, now)
    secret = certificates.pgbackrest_secret(OWNER, root, client, host)
    assert secret["metadata"]["name"] == "hippo-pgbackrest"
    assert sorted(secret["data"]) == [
        "pgbackrest-client.crt",
        "pgbackrest-client.key",
        "pgbackrest-repo-host.crt",
        "pgbackrest-repo-host.key",
        "pgbackrest.ca-roots",
    ]
    assert certificates.pgbackrest_client_names(OWNER) == ("pgbackrest@uid-1", ["pgbackrest@uid-1"])
    without_host = certificates.pgbackrest_secret(OWNER, root, client, None)
    assert "pgbackrest-repo-host.crt" not in without_host["data"]


def test_instances_gain_the_tls_server_and_its_configuration_with_backups_only() -> None:
    set_ = {"name": "instance1", "replicas": 1}

    def pod(spec: dict[str, Any], pgbackrest_image: str | None) -> dict[str, Any]:
        return instance_pod.pod_spec(
            OWNER,
            spec,
            set_,
            "hippo-instance1-abcd",
            image="example/postgres:16",
            sidecars=True,
            pgbackrest_image=pgbackrest_image,
        )

    plain = pod({k: v for k, v in SPEC.items() if k != "backups"}, None)
    assert [c["name"] for c in plain["containers"]] == ["database", "replication-cert-copy"]
    with_backups = pod(SPEC, IMAGE)
    names = [c["name"] for c in with_backups["containers"]]
    assert names == ["database", "replication-cert-copy", "pgbackrest", "pgbackrest-config"]
    database = with_backups["containers"][0]
    assert {
        "name": "pgbackrest-config",
        "mountPath": "/etc/pgbackrest/conf.d",
        "readOnly": True,
    } in (database["volumeMounts"])
    volumes = {v["name"]: v for v in with_backups["volumes"]}
    server = volumes["pgbackrest-server"]["projected"]["sources"][0]["secret"]
    assert server["name"] == "hippo-instance1-abcd-certs"
    sources = volumes["pgbackrest-config"]["projected"]["sources"]
    assert sources[0]["configMap"]["name"] == "hippo-pgbackrest-config"
    assert sources[1]["secret"]["optional"] is True


def test_backup_jobs_exec_pgbackrest_in_the_repo_host() -> None:
    job = backups.backup_job(
        OWNER,
        SPEC,
        IMAGE,
        name="hippo-backup-b2c4",
        repo="repo1",
        kind=naming.BACKUP_MANUAL,
        options=["--type=full"],
        annotations={naming.ANNOTATION_PGBACKREST_BACKUP: "first"},
    )
    assert job["metadata"]["labels"] == {
        f"{P}cluster": "hippo",
        f"{P}pgbackrest": "",
        f"{P}pgbackrest-backup": "manual",
        f"{P}pgbackrest-repo": "repo1",
    }
    assert job["metadata"]["annotations"][f"{P}pgbackrest-backup"] == "first"
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["command"][:2] == ["bash", "-c"]
    assert container["command"][4:] == ["/opt/crunchy/bin/pgbackrest"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["COMMAND_OPTS"] == "--stanza=db --repo=1 --type=full"
    assert env["SELECTOR"] == (f"{P}cluster=hippo,{P}pgbackrest=,{P}pgbackrest-dedicated=")
    assert backups.job_name("hippo").startswith("hippo-backup-")
    assert len(backups.job_name("hippo")) == len("hippo-backup-") + 4


def test_cloud_backup_jobs_run_pgbackrest_themselves() -> None:
    s3 = {"name": "repo2", "s3": {"bucket": "b", "endpoint": "s3.example", "region": "r"}}
    credentials = {"secret": {"name": "hippo-s3-creds"}}
    spec = {
        **SPEC,
        "supplementalGroups": [0, 65534],
        "backups": {"pgbackrest": {"repos": [REPO, s3], "configuration": [credentials]}},
    }
    job = backups.backup_job(
        OWNER,
        spec,
        IMAGE,
        name="hippo-backup-b2c4",
        repo="repo2",
        kind=naming.BACKUP_MANUAL,
        options=["--type=incr"],
        annotations={},
        log_claim="backup-logs",
    )
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][4:] == [
        "/bin/pgbackrest",
        "backup",
        "--stanza=db",
        "--repo=2",
        "--type=incr",
    ]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {
        "pgbackrest-config": "/etc/pgbackrest/conf.d",
        "tmp": "/tmp",
        "backup-logs": "/volumes/backup-logs",
    }
    # Root is never a supplemental group; the volumes' group may read the client key.
    assert pod["securityContext"] == {
        "fsGroup": 26,
        "fsGroupChangePolicy": "OnRootMismatch",
        "supplementalGroups": [65534],
    }
    (config_volume,) = [v for v in pod["volumes"] if v["name"] == "pgbackrest-config"]
    sources = config_volume["projected"]["sources"]
    assert sources[0] == credentials
    assert sources[1]["configMap"]["items"] == [
        {"key": "pgbackrest_cloud.conf", "path": "pgbackrest_cloud.conf"}
    ]
    assert "optional" not in sources[2]["secret"]


def test_scheduled_backups_one_at_a_time() -> None:
    cron = backups.cron_job(OWNER, SPEC, IMAGE, repo="repo1", kind="incr", schedule="0 1 * * 1-6")
    assert cron["metadata"]["name"] == "hippo-repo1-incr"
    assert cron["metadata"]["labels"][f"{P}pgbackrest-cronjob"] == "incr"
    assert cron["metadata"]["labels"][f"{P}pgbackrest-backup"] == "scheduled"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] == backups.STARTING_DEADLINE_SECONDS
    assert cron["spec"]["suspend"] is False
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["COMMAND_OPTS"] == "--stanza=db --repo=1 --type=incr"
    suspended = backups.cron_job(
        OWNER, {**SPEC, "shutdown": True}, IMAGE, repo="repo1", kind="full", schedule="@daily"
    )
    assert suspended["spec"]["suspend"] is True


def test_removing_backups_waits_for_the_annotation_while_a_repo_host_exists() -> None:
    host = {"metadata": {"name": "hippo-repo-host"}}
    authorized = {naming.ANNOTATION_AUTHORIZE_BACKUP_REMOVAL: "true"}
    assert pgbackrest.removal_pending({}, {}, host)
    assert not pgbackrest.removal_pending({}, authorized, host)
    assert not pgbackrest.removal_pending({}, {}, None)
    assert not pgbackrest.removal_pending(SPEC, {}, host)
