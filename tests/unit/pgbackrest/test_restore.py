"""The restore's options, Job, configuration and preview, without I/O."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from reconciler import naming
from reconciler.intent import Owner
from reconciler.pgbackrest import restore

OWNER = Owner("hippo", "ns", "uid-1")
INSTANCE_SET: dict[str, Any] = {"name": "instance1", "replicas": 2}
SPEC: dict[str, Any] = {
    "postgresVersion": 15,
    "instances": [INSTANCE_SET],
    "backups": {"pgbackrest": {"repos": [{"name": "repo1", "volume": {}}]}},
}
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


def at(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


INFO = [
    {
        "name": "db",
        "backup": [
            {
                "label": "20261130-100000F",
                "timestamp": {
                    "start": at("2026-11-30T10:00:00+00:00"),
                    "stop": at("2026-11-30T10:00:05+00:00"),
                },
                "archive": {
                    "start": "000000010000000000000003",
                    "stop": "000000010000000000000003",
                },
                "database": {"id": 1, "repo-key": 1},
            },
            {
                "label": "20261130-100000F_20261130-110000I",
                "timestamp": {
                    "start": at("2026-11-30T11:00:00+00:00"),
                    "stop": at("2026-11-30T11:00:04+00:00"),
                },
                "archive": {
                    "start": "000000010000000000000007",
                    "stop": "000000010000000000000007",
                },
                "database": {"id": 1, "repo-key": 1},
            },
        ],
        "archive": [
            {
                "database": {"id": 1, "repo-key": 1},
                "max": "00000001000000000000000A",
                "min": "000000010000000000000001",
            }
        ],
    }
]


def test_options_say_what_they_ask_for() -> None:
    request = restore.parse_options(["--type=time", '--target="2026-11-30 10:30:00+00"'])
    assert request.type == "time"
    assert request.target == "2026-11-30 10:30:00+00"
    assert request.target_time == datetime.datetime(2026, 11, 30, 10, 30, tzinfo=datetime.UTC)
    assert restore.parse_options(["--set", "20261130-100000F"]).backup_set == "20261130-100000F"
    assert restore.parse_options([]).type == "default"
    # Without a zone, a time is UTC (the clusters' PostgreSQL zone); a short zone is hours.
    bare = restore.parse_options(["--type=time --target='2026-11-30 10:30'"])
    assert bare.target_time == datetime.datetime(2026, 11, 30, 10, 30, tzinfo=datetime.UTC)
    east = restore.parse_options(["--type=time", '--target="2026-11-30 11:30:00+01"'])
    assert east.target_time == datetime.datetime(2026, 11, 30, 10, 30, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--repo=2"], "use the repoName field"),
        (["--stanza=other"], "--stanza is not allowed"),
        (["--target-action=pause", "--type=immediate"], "--target-action is not allowed"),
        (["--type=standby"], "--type=standby is not allowed"),
        (["--type=time"], "needs --target"),
        (["--target=5"], "--target needs --type"),
        (["--type=time", "--target=yesterday"], "is not a time"),
        (["type=time"], "is not a pgBackRest option"),
        (['--target="unbalanced'], "do not parse"),
    ],
)
def test_options_the_restore_refuses(options: list[str], says: str) -> None:
    with pytest.raises(restore.InvalidRestore, match=says):
        restore.parse_options(options)


def test_the_operator_adds_its_options_after_the_users() -> None:
    line = restore.restore_options(
        ["--type=time", '--target="2026-11-30 10:30:00+00"'],
        stanza="db",
        repo="repo2",
        postgres_version=15,
        wal_volume=True,
    )
    assert line == (
        '--type=time --target="2026-11-30 10:30:00+00" --stanza=db --pg1-path=/pgdata/pg15 '
        "--repo=2 --link-map=pg_wal=/pgwal/pg15_wal --target-action=promote"
    )
    plain = restore.restore_options(
        [], stanza="db", repo="repo1", postgres_version=15, wal_volume=False
    )
    assert "--target-action" not in plain
    assert "--link-map=pg_wal=/pgdata/pg15_wal" in plain


def test_the_job_restores_into_the_new_instances_volumes() -> None:
    instance_set = {
        **INSTANCE_SET,
        "walVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"]},
    }
    job = restore.restore_job(
        OWNER,
        SPEC,
        "postgres:15",
        instance_set=instance_set,
        instance="hippo-instance1-abcd",
        source={"resources": {"limits": {"cpu": "1"}}, "priorityClassName": "high"},
        options="--stanza=db",
        configuration=[{"secret": {"name": "creds-restorecopy-0"}}],
        certificates=True,
        source_digest="d1",
        identifier="r1",
    )
    meta = job["metadata"]
    assert meta["name"] == "hippo-pgbackrest-restore"
    assert meta["labels"][naming.LABEL_STARTUP_INSTANCE] == "hippo-instance1-abcd"
    assert naming.LABEL_PGBACKREST_RESTORE in meta["labels"]
    assert meta["annotations"][naming.ANNOTATION_PGBACKREST_HASH] == "d1"
    assert meta["annotations"][naming.ANNOTATION_PGBACKREST_RESTORE] == "r1"
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == restore.BACKOFF_LIMIT
    assert pod["restartPolicy"] == "Never"
    assert pod["priorityClassName"] == "high"
    assert pod["automountServiceAccountToken"] is False
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"hippo-instance1-abcd-pgdata", "hippo-instance1-abcd-pgwal"}
    (container,) = pod["containers"]
    assert container["name"] == "pgbackrest-restore"
    assert container["command"][-3:] == ["/pgdata/pg15", "/pgwal/pg15_wal", "--stanza=db"]
    assert container["resources"] == {"limits": {"cpu": "1"}}
    config = next(v for v in pod["volumes"] if v["name"] == "pgbackrest-config")
    sources = config["projected"]["sources"]
    assert sources[0] == {"secret": {"name": "creds-restorecopy-0"}}
    assert sources[1]["configMap"]["name"] == "hippo-pgbackrest-restore"
    assert sources[2]["secret"]["name"] == "hippo-pgbackrest-restore"


def test_a_cloud_data_source_is_located_by_its_repo_and_global_options() -> None:
    conf = restore.cloud_conf(
        {
            "stanza": "db",
            "repo": {
                "name": "repo1",
                "s3": {"bucket": "b", "endpoint": "s3.example", "region": "r"},
            },
            "global": {"repo1-path": "/pgbackrest/old/repo1"},
        }
    )
    assert "repo1-type = s3" in conf
    assert "repo1-s3-bucket = b" in conf
    assert "repo1-path = /pgbackrest/old/repo1" in conf
    assert "repo1-path = /pgbackrest/repo1" not in conf


def test_copies_of_the_sources_configuration_are_renamed() -> None:
    copy = restore.copied(
        OWNER,
        {
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "creds"},
            "data": {"s3.conf": "eA=="},
        },
        0,
    )
    assert copy["metadata"]["name"] == "creds-restorecopy-0"
    assert copy["metadata"]["labels"][naming.LABEL_PGBACKREST_RESTORE_CONFIG] == ""
    assert copy["data"] == {"s3.conf": "eA=="}
    projections = restore.copied_projections(
        [{"secret": {"name": "creds"}}, {"configMap": {"name": "extra", "optional": True}}]
    )
    assert projections == [
        {"secret": {"name": "creds-restorecopy-0"}},
        {"configMap": {"name": "extra-restorecopy-1", "optional": True}},
    ]


def test_the_preview_resolves_a_target_to_a_backup_and_wal() -> None:
    request = restore.parse_options(["--type=time", '--target="2026-11-30 10:30:00+00"'])
    found = restore.preview(INFO, request, "repo1", now=NOW)
    assert found.backup == "20261130-100000F"
    assert found.wal_start == "000000010000000000000003"
    assert found.wal_max == "00000001000000000000000A"
    message = found.message("repo1", request)
    assert "backup 20261130-100000F (ended 2026-11-30 10:00:05+00)" in message
    assert "--target=2026-11-30 10:30:00+00" in message
    latest = restore.preview(INFO, restore.parse_options([]), "repo1", now=NOW)
    assert latest.backup == "20261130-100000F_20261130-110000I"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--type=time", '--target="2026-11-30 09:00:00+00"'], "before the earliest backup"),
        (["--type=time", '--target="2026-12-01 09:00:00+00"'], "is in the future"),
        (["--set=nope"], "--set=nope is not a backup in repo1"),
    ],
)
def test_the_preview_refuses_what_the_repository_cannot_do(options: list[str], says: str) -> None:
    with pytest.raises(restore.InvalidRestore, match=says):
        restore.preview(INFO, restore.parse_options(options), "repo1", now=NOW)
    with pytest.raises(restore.InvalidRestore, match="holds no backup"):
        restore.preview([{"name": "db", "backup": []}], restore.parse_options([]), "repo1", now=NOW)


def test_an_in_place_restore_under_way_holds_the_instances() -> None:
    running = {
        "conditions": [{"type": naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING, "status": "True"}]
    }
    assert restore.restoring_in_place(running)
    assert not restore.restoring_in_place({})
