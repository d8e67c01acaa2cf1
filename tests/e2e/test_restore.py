"""Restores on real processes: a clone into another namespace while the source keeps
writing, a restore refused before anything stops, a restore that fails and leaves the cluster
its data, a point-in-time restore in place, checked row by row, a clone from the S3 repository
of a deleted cluster, and the adoption of an existing data volume."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from reconciler_envtest import images
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.objectstore import ObjectStore
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    CRON_JOBS,
    EVENTS,
    JOBS,
    NAMESPACES,
    PERSISTENT_VOLUME_CLAIMS,
    PODS,
    SECRETS,
)
from tests.e2e.cluster import (
    CLUSTERS,
    RESTRICTED,
    ha_report,
    primary_pod,
    psql,
    timeline,
    writable_primary,
)
from tests.e2e.test_backups import cluster_where, condition, hippo_with_backups
from tests.e2e.test_s3_backups import CA_FILE, credentials, hippo_s3
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")


@contextlib.asynccontextmanager
async def other_namespace(kube: Client, name: str) -> AsyncIterator[str]:
    """A namespace of the test's own beside the fixture's; deleted afterwards."""
    metadata = {"name": name, "labels": RESTRICTED}
    await kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
    try:
        yield name
    finally:
        with contextlib.suppress(NotFoundError):
            await kube.delete(NAMESPACES, name)


async def job(kube: Client, namespace: str, cluster: str) -> JSON | None:
    """The cluster's restore Job, if there is one."""
    try:
        return await kube.get(JOBS, naming.restore_job(cluster), namespace)
    except NotFoundError:
        return None


async def instance_pods(kube: Client, namespace: str, cluster: str = "hippo") -> list[JSON]:
    selector = f"{naming.LABEL_CLUSTER}={cluster},{naming.LABEL_INSTANCE}"
    return list((await kube.list(PODS, namespace, label_selector=selector)).items)


async def leader(kube: Client, namespace: str, cluster: str) -> JSON:
    async def probe() -> JSON | None:
        pods = await instance_pods(kube, namespace, cluster)
        leaders = [p for p in pods if p["metadata"]["labels"].get(naming.LABEL_ROLE) == "master"]
        return leaders[0] if len(leaders) == 1 else None

    return await wait_for(probe, timeout=120, interval=0.5)


async def rows(kube: Client, pod: JSON, namespace: str) -> list[int]:
    found = await psql(kube, pod, namespace, "select n from things order by n")
    return [int(n) for n in found.split()]


async def archived(kube: Client, namespace: str) -> None:
    """Close the current WAL segment and wait until the repository has it."""
    primary = await primary_pod(kube, namespace)
    segment = await psql(kube, primary, namespace, "select pg_walfile_name(pg_current_wal_lsn())")
    await psql(kube, primary, namespace, "select pg_switch_wal()")

    async def pushed() -> bool:
        last = await psql(
            kube, primary, namespace, "select last_archived_wal from pg_stat_archiver"
        )
        return bool(last) and last[:24] >= segment

    await wait_for(pushed, timeout=120, interval=0.5)


async def request_restore(kube: Client, namespace: str, identifier: str, **restore: Any) -> None:
    patch = {
        "metadata": {"annotations": {naming.ANNOTATION_PGBACKREST_RESTORE: identifier}},
        "spec": {"backups": {"pgbackrest": {"restore": {"enabled": True, **restore}}}},
    }
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)


def restore_entry(cluster: JSON) -> JSON:
    return ((cluster.get("status") or {}).get("pgbackrest") or {}).get("restore") or {}


async def warnings(kube: Client, namespace: str, reason: str) -> list[str]:
    found = (await kube.list(EVENTS, namespace)).items
    return [e["message"] for e in found if e.get("reason") == reason]


# Beyond the suite's 300 s per test: a cluster, a clone and three restores.
@pytest.mark.timeout(1500)
async def test_clone_then_restores_in_place(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    cluster = hippo_with_backups(namespace)
    cluster["spec"]["instances"][0]["replicas"] = 2
    cluster["spec"]["backups"]["pgbackrest"]["repos"][0]["schedules"] = {"full": "0 1 * * 0"}
    await kube.create(CLUSTERS, cluster)
    await cluster_where(
        kube,
        namespace,
        lambda c: any(
            r.get("replicaCreateBackupComplete")
            for r in ((c.get("status") or {}).get("pgbackrest") or {}).get("repos") or []
        ),
        300,
        control_plane,
    )
    primary = await primary_pod(kube, namespace)
    await psql(
        kube,
        primary,
        namespace,
        "create table things (n int primary key, at timestamptz default clock_timestamp());"
        "create table gone (n int); insert into things (n) select generate_series(1, 5)",
    )
    target = await psql(kube, primary, namespace, "select clock_timestamp()")
    await psql(
        kube,
        primary,
        namespace,
        "insert into things (n) select generate_series(6, 10); drop table gone",
    )
    await archived(kube, namespace)
    await _clone_while_the_source_writes(kube, namespace, control_plane)
    await _refused_before_anything_stops(kube, namespace)
    await _failed_restore_keeps_the_data(kube, namespace, control_plane)
    await _point_in_time(kube, namespace, control_plane, target)


async def _clone_while_the_source_writes(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    async with other_namespace(kube, f"{namespace}-clone") as clones:
        clone = hippo_with_backups(clones)
        clone["metadata"]["name"] = "zoo"
        clone["spec"]["dataSource"] = {
            "postgresCluster": {
                "clusterName": "hippo",
                "clusterNamespace": namespace,
                "repoName": "repo1",
            }
        }
        started = time.monotonic()
        await kube.create(CLUSTERS, clone)
        source = await primary_pod(kube, namespace)
        written = 10
        while await job(kube, clones, "zoo") is None:
            written += 1
            await psql(kube, source, namespace, f"insert into things (n) values ({written})")
            if time.monotonic() - started > 120:
                zoo = await kube.get(CLUSTERS, "zoo", clones)
                raise AssertionError(f"no restore Job after 120s: {zoo.get('status')}")
        ready = await ready_cluster(kube, clones, "zoo", timeout=300)
        print(f"clone Ready {time.monotonic() - started:.1f}s after it was created")
        initialized = condition(ready, naming.CONDITION_POSTGRES_DATA_INITIALIZED) or {}
        assert initialized.get("status") == "True", initialized
        assert restore_entry(ready)["id"] == naming.bootstrap_restore_id("zoo")
        cloned = await rows(kube, await leader(kube, clones, "zoo"), clones)
        assert cloned[:10] == list(range(1, 11)), cloned
        # The source went on writing all along, and has every row it acknowledged.
        written += 1
        await psql(kube, source, namespace, f"insert into things (n) values ({written})")
        assert await rows(kube, source, namespace) == list(range(1, written + 1))
        assert set(cloned) <= set(range(1, written + 1))
        # The clone backs up to its own repository: a stanza of its own.
        await cluster_where(
            kube,
            clones,
            lambda c: any(
                r.get("stanzaCreated")
                for r in ((c.get("status") or {}).get("pgbackrest") or {}).get("repos") or []
            ),
            180,
            control_plane,
            name="zoo",
        )
        restore_objects = await kube.list(
            CONFIG_MAPS, clones, label_selector=naming.LABEL_PGBACKREST_RESTORE_CONFIG
        )
        assert not restore_objects.items


async def _refused_before_anything_stops(kube: Client, namespace: str) -> None:
    before = sorted(p["metadata"]["name"] for p in await instance_pods(kube, namespace))
    await request_restore(
        kube,
        namespace,
        "too-early",
        repoName="repo1",
        options=["--type=time", '--target="2001-01-01 00:00:00+00"'],
    )
    cluster = await cluster_where(
        kube, namespace, lambda c: restore_entry(c).get("id") == "too-early", 60
    )
    refused = condition(cluster, naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING) or {}
    assert refused.get("reason") == "RestoreRefused", refused
    assert "before the earliest backup" in refused["message"], refused
    assert any("too-early" in m for m in await warnings(kube, namespace, "InvalidDataSource"))
    assert sorted(p["metadata"]["name"] for p in await instance_pods(kube, namespace)) == before
    assert await job(kube, namespace, "hippo") is None
    # A malformed option is refused the same way.
    await request_restore(kube, namespace, "malformed", options=["--type=tomorrow"])
    cluster = await cluster_where(
        kube, namespace, lambda c: restore_entry(c).get("id") == "malformed", 60
    )
    refused = condition(cluster, naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING) or {}
    assert "--type=tomorrow is not allowed" in refused["message"], refused


async def _failed_restore_keeps_the_data(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    volumes_before = await _data_volumes(kube, namespace)
    # A transaction that never happens: recovery reaches the end of the WAL before it.
    await request_restore(kube, namespace, "never", options=["--type=xid", "--target=2000000000"])

    def ended(cluster: JSON) -> bool:
        # The Job's end is recorded at once; the restore ends once its volumes are deleted.
        progressing = condition(cluster, naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING) or {}
        entry = restore_entry(cluster)
        return (
            entry.get("id") == "never"
            and bool(entry.get("finished"))
            and progressing.get("status") != "True"
        )

    cluster = await cluster_where(kube, namespace, ended, 600, control_plane)
    failed = condition(cluster, naming.CONDITION_PGBACKREST_RESTORE_PROGRESSING) or {}
    assert failed.get("reason") == "RestoreFailed", failed
    assert "recovery ended before configured recovery target was reached" in failed["message"]
    assert any("never" in m for m in await warnings(kube, namespace, "RestoreFailed"))
    try:
        await ready_cluster(kube, namespace, timeout=300)
    except AssertionError as error:
        raise AssertionError(f"{error}; {await ha_report(kube, namespace)}") from None
    assert await _data_volumes(kube, namespace) == volumes_before
    primary = await writable_primary(kube, namespace)
    assert (await rows(kube, primary, namespace))[:10] == list(range(1, 11))


async def _data_volumes(kube: Client, namespace: str) -> list[str]:
    selector = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_ROLE}=pgdata"
    found = await kube.list(PERSISTENT_VOLUME_CLAIMS, namespace, label_selector=selector)
    return sorted(
        c["metadata"]["name"] for c in found.items if not c["metadata"].get("deletionTimestamp")
    )


async def _point_in_time(
    kube: Client, namespace: str, control_plane: ControlPlane, target: str
) -> None:
    primary = await primary_pod(kube, namespace)
    timeline_before = await timeline(kube, primary, namespace)
    old_primary = primary["metadata"]["labels"][naming.LABEL_INSTANCE]
    await kube.patch(
        CLUSTERS,
        "hippo",
        {
            "spec": {
                "backups": {
                    "pgbackrest": {"restore": {"options": ["--type=time", f'--target="{target}"']}}
                }
            }
        },
        namespace=namespace,
    )

    def previewed(cluster: JSON) -> bool:
        preview = condition(cluster, naming.CONDITION_PGBACKREST_RESTORE_PREVIEW) or {}
        return preview.get("status") == "True" and target in preview["message"]

    cluster = await cluster_where(kube, namespace, previewed, 120)
    print((condition(cluster, naming.CONDITION_PGBACKREST_RESTORE_PREVIEW) or {})["message"])
    started = time.monotonic()
    await kube.patch(
        CLUSTERS,
        "hippo",
        {"metadata": {"annotations": {naming.ANNOTATION_PGBACKREST_RESTORE: "pitr"}}},
        namespace=namespace,
    )
    # No scheduled backup starts while the instances are down for the restore.
    await wait_for(lambda: _schedule_suspended(kube, namespace, True), timeout=60, interval=0.5)
    cluster = await cluster_where(
        kube,
        namespace,
        lambda c: restore_entry(c).get("id") == "pitr" and restore_entry(c).get("succeeded"),
        600,
        control_plane,
    )
    await ready_cluster(kube, namespace, timeout=300)
    print(f"restore in place: Ready {time.monotonic() - started:.1f}s after the annotation")
    primary = await writable_primary(kube, namespace)
    assert await rows(kube, primary, namespace) == [1, 2, 3, 4, 5]
    assert await psql(kube, primary, namespace, "select count(*) from gone") == "0"
    assert await timeline(kube, primary, namespace) > timeline_before
    # Every instance is new; the old primary's data volume is kept, detached.
    pods = await instance_pods(kube, namespace)
    assert len(pods) == 2
    assert all(p["metadata"]["labels"][naming.LABEL_INSTANCE] != old_primary for p in pods)
    kept = await kube.get(PERSISTENT_VOLUME_CLAIMS, f"{old_primary}-pgdata", namespace)
    assert kept["metadata"]["labels"][naming.LABEL_ROLE] == "pgdata-before-restore"
    assert naming.LABEL_INSTANCE not in kept["metadata"]["labels"]
    # The replica follows the restored primary.
    await psql(kube, primary, namespace, "insert into things (n) values (100)")
    replica = next(p for p in pods if p["metadata"]["name"] != primary["metadata"]["name"])

    async def replicated() -> bool:
        return 100 in await rows(kube, replica, namespace)

    await wait_for(replicated, timeout=120, interval=0.5)
    # The schedule resumes once the restored cluster has its replica-create backup.
    await wait_for(lambda: _schedule_suspended(kube, namespace, False), timeout=300, interval=1)


async def _schedule_suspended(kube: Client, namespace: str, suspended: bool) -> bool:
    cron = await kube.get(CRON_JOBS, "hippo-repo1-full", namespace)
    return bool(cron["spec"].get("suspend")) == suspended


@pytest.mark.timeout(1200)
async def test_clone_from_the_cloud_repository_of_a_deleted_cluster(
    kube: Client, namespace: str, control_plane: ControlPlane, object_store: ObjectStore
) -> None:
    """PGO's `dataSource.pgbackrest`: the cluster whose backups these were is gone (its
    namespace too); a new one starts from its bucket, and backs up to a repository of its own."""
    async with other_namespace(kube, f"{namespace}-old") as old:
        source = hippo_s3(old)
        pgbackrest = source["spec"]["backups"]["pgbackrest"]
        pgbackrest["repos"][0]["s3"]["bucket"] = "restore-s3"
        pgbackrest["global"]["repo1-path"] = "/pgbackrest/old/hippo/repo1"
        await kube.create(SECRETS, credentials(old, object_store))
        await kube.create(CLUSTERS, source)

        def replica_create(cluster: JSON) -> bool:
            found = condition(cluster, naming.CONDITION_PGBACKREST_REPLICA_CREATE) or {}
            return found.get("status") == "True"

        await cluster_where(kube, old, replica_create, 600, control_plane)
        primary = await primary_pod(kube, old)
        await psql(
            kube,
            primary,
            old,
            "create table things (n int primary key); "
            "insert into things select generate_series(1, 5)",
        )
        await archived(kube, old)
        await kube.delete(CLUSTERS, "hippo", old)

        async def deleted() -> bool:
            try:
                await kube.get(CLUSTERS, "hippo", old)
            except NotFoundError:
                return True
            return False

        await wait_for(deleted, timeout=180, interval=0.5)
    await kube.create(SECRETS, credentials(namespace, object_store))
    cluster = hippo_with_backups(namespace)
    cluster["spec"]["dataSource"] = {
        "pgbackrest": {
            "stanza": "db",
            "configuration": [{"secret": {"name": "hippo-s3-creds"}}],
            "global": {
                "repo1-path": "/pgbackrest/old/hippo/repo1",
                "repo1-s3-uri-style": "path",
                "repo1-storage-ca-file": f"/etc/pgbackrest/conf.d/{CA_FILE}",
            },
            "repo": {"name": "repo1", "s3": pgbackrest["repos"][0]["s3"]},
        }
    }
    started = time.monotonic()
    await kube.create(CLUSTERS, cluster)
    ready = await ready_cluster(kube, namespace, timeout=300)
    print(f"clone from S3 Ready {time.monotonic() - started:.1f}s after it was created")
    initialized = condition(ready, naming.CONDITION_POSTGRES_DATA_INITIALIZED) or {}
    assert initialized.get("status") == "True", initialized
    primary = await writable_primary(kube, namespace)
    assert await rows(kube, primary, namespace) == [1, 2, 3, 4, 5]

    def own_stanza(cluster: JSON) -> bool:
        repos = ((cluster.get("status") or {}).get("pgbackrest") or {}).get("repos") or []
        return any(r.get("stanzaCreated") for r in repos)

    await cluster_where(kube, namespace, own_stanza, 180, control_plane)


# What PGO v4 left on its claims: a data directory in a directory of its own whose WAL is on a
# claim of its own (`pg_wal` links there), and a pgBackRest repository (stanza `db`, as v4's
# and ours) with a full backup of that data, in a directory of its own too.
LEGACY = """\
mkdir -p /backrestrepo/hippo-backrest-shared-repo
initdb --pgdata=/pgdata/hippo --waldir=/pgwal/hippo-wal --username=postgres --auth=trust \\
  > /dev/null
printf '%s\\n' '[global]' 'repo1-path=/backrestrepo/hippo-backrest-shared-repo' \\
  'log-path=/tmp' 'lock-path=/tmp' '[db]' 'pg1-path=/pgdata/hippo' 'pg1-socket-path=/tmp' \\
  > /tmp/pgbackrest.conf
export PGBACKREST_CONFIG=/tmp/pgbackrest.conf
printf '%s\\n' "listen_addresses = ''" "unix_socket_directories = '/tmp'" 'archive_mode = on' \\
  "archive_command = 'pgbackrest --stanza=db archive-push %p'" >> /pgdata/hippo/postgresql.conf
pg_ctl --pgdata=/pgdata/hippo --wait start > /dev/null
pgbackrest --stanza=db stanza-create
psql -h /tmp -U postgres -d postgres -c "create table legacy as select 42 as answer"
pgbackrest --stanza=db --type=full --start-fast backup
pg_ctl --pgdata=/pgdata/hippo --wait stop
"""
CLAIMS = {"legacy-pgdata": "/pgdata", "legacy-pgwal": "/pgwal", "legacy-repo": "/backrestrepo"}


async def test_the_volumes_of_a_pgo_v4_cluster_are_adopted(kube: Client, namespace: str) -> None:
    """PGO's migration path (`dataSource.volumes`): the data, WAL and repository claims keep
    their names and contents and become the first instance's and repo1's volumes; the cluster
    starts on the data with its WAL on the WAL claim, and the repository keeps the old backup
    beside the new one."""
    for name in CLAIMS:
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        await kube.create(PERSISTENT_VOLUME_CLAIMS, claim)
    image = images.related_images()[f"RELATED_IMAGE_POSTGRES_{images.POSTGRES_VERSION}"]
    legacy = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "legacy", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "fsGroup": 26,
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "legacy",
                    "image": image,
                    "command": ["bash", "-ceu", "--", LEGACY],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": name, "mountPath": path} for name, path in CLAIMS.items()
                    ],
                }
            ],
            "volumes": [
                {"name": name, "persistentVolumeClaim": {"claimName": name}} for name in CLAIMS
            ],
        },
    }
    await kube.create(PODS, legacy)

    async def written() -> bool:
        pod = await kube.get(PODS, "legacy", namespace)
        phase = (pod.get("status") or {}).get("phase")
        assert phase != "Failed", pod.get("status")
        return phase == "Succeeded"

    await wait_for(written, timeout=180, interval=0.5)
    await kube.delete(PODS, "legacy", namespace)
    cluster = hippo_with_backups(namespace)
    cluster["spec"]["instances"][0]["walVolumeClaimSpec"] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    cluster["spec"]["dataSource"] = {
        "volumes": {
            "pgDataVolume": {"pvcName": "legacy-pgdata", "directory": "hippo"},
            "pgWALVolume": {"pvcName": "legacy-pgwal", "directory": "hippo-wal"},
            "pgBackRestVolume": {
                "pvcName": "legacy-repo",
                "directory": "hippo-backrest-shared-repo",
            },
        }
    }
    await kube.create(CLUSTERS, cluster)
    ready = await ready_cluster(kube, namespace, timeout=300)
    initialized = condition(ready, naming.CONDITION_POSTGRES_DATA_INITIALIZED) or {}
    assert initialized.get("reason") == "PGDataVolumeAdopted", initialized
    primary = await writable_primary(kube, namespace)
    assert await psql(kube, primary, namespace, "select answer from legacy") == "42"
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in primary["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"legacy-pgdata", "legacy-pgwal"}
    link = await podexec.run(
        kube,
        namespace,
        primary["metadata"]["name"],
        "database",
        ["readlink", "/pgdata/pg15/pg_wal"],
    )
    assert link.stdout.decode().strip() == "/pgwal/pg15_wal"
    instance = primary["metadata"]["labels"][naming.LABEL_INSTANCE]
    for name, role in (("legacy-pgdata", "pgdata"), ("legacy-pgwal", "pgwal")):
        adopted = await kube.get(PERSISTENT_VOLUME_CLAIMS, name, namespace)
        assert adopted["metadata"]["labels"][naming.LABEL_INSTANCE] == instance
        assert adopted["metadata"]["labels"][naming.LABEL_ROLE] == role
        assert adopted["metadata"]["ownerReferences"][0]["name"] == "hippo"

    def replica_create(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_PGBACKREST_REPLICA_CREATE) or {}
        return found.get("status") == "True"

    await cluster_where(kube, namespace, replica_create, 300)
    host = await kube.get(PODS, "hippo-repo-host-0", namespace)
    (repo,) = (v for v in host["spec"]["volumes"] if v["name"] == "repo1")
    assert repo["persistentVolumeClaim"]["claimName"] == "legacy-repo"
    info = await podexec.run(
        kube,
        namespace,
        "hippo-repo-host-0",
        naming.CONTAINER_PGBACKREST,
        ["pgbackrest", "--stanza=db", "--output=json", "info"],
    )
    (stanza,) = json.loads(info.stdout)
    # The new backup (replica-create) is incremental on the old full one: one repository.
    assert [b["type"] for b in stanza["backup"]] == ["full", "incr"], stanza["backup"]
    for job in ("hippo-move-pgdata-dir", "hippo-move-pgwal-dir", "hippo-move-pgbackrest-repo-dir"):
        assert (await kube.get(JOBS, job, namespace))["status"].get("succeeded") == 1
