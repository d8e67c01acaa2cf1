"""pgBackRest with an S3 repository on the run's object store (SeaweedFS, over verified TLS),
as PGO's S3 example sets it up: the stanza, WAL archiving, backups run by the Jobs themselves
(no repository host), the schedules, and archiving that fails while the store is down, is
reported, and catches up when it returns."""

from __future__ import annotations

import json
import time

import pytest
from reconciler_envtest import objectstore
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.objectstore import ObjectStore

from reconciler import naming
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import EVENTS, SECRETS, STATEFUL_SETS
from tests.api_examples import hippo
from tests.e2e.cluster import CLUSTERS, primary_pod, psql
from tests.e2e.test_backups import cluster_where, condition, incremental_by_hand
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

CA_FILE = "objectstore-ca.crt"


def hippo_s3(namespace: str) -> JSON:
    """The quick-start hippo with PGO's S3 example's repository: the bucket's settings in the
    spec, the keys in a Secret projected as `s3.conf`, and (a private store) its CA file."""
    cluster = hippo()
    cluster["metadata"]["namespace"] = namespace
    spec = cluster["spec"]
    spec["postgresVersion"] = 15
    pgbackrest = spec["backups"]["pgbackrest"]
    pgbackrest["configuration"] = [{"secret": {"name": "hippo-s3-creds"}}]
    pgbackrest["global"] = {
        "start-fast": "y",
        "repo1-path": "/pgbackrest/postgres-operator/hippo-s3/repo1",
        "repo1-s3-uri-style": "path",
        "repo1-storage-ca-file": f"/etc/pgbackrest/conf.d/{CA_FILE}",
        "repo1-retention-full": "2",
    }
    pgbackrest["repos"] = [
        {
            "name": "repo1",
            "s3": {
                "bucket": "hippo-s3",
                "endpoint": objectstore.ENDPOINT,
                "region": objectstore.REGION,
            },
            "schedules": {"full": "0 1 * * 0", "incremental": "0 1 * * 1-6"},
        }
    ]
    return cluster


def credentials(namespace: str, store: ObjectStore) -> JSON:
    conf = f"[global]\nrepo1-s3-key={store.access_key}\nrepo1-s3-key-secret={store.secret_key}\n"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hippo-s3-creds", "namespace": namespace},
        "stringData": {"s3.conf": conf, CA_FILE: store.ca_pem.decode()},
    }


async def pgbackrest(kube: Client, namespace: str, *args: str) -> podexec.Completed:
    """pgBackRest in the primary's database container (the instance's configuration)."""
    primary = await primary_pod(kube, namespace)
    return await podexec.run(
        kube,
        namespace,
        primary["metadata"]["name"],
        "database",
        ["pgbackrest", "--stanza=db", *args],
    )


async def backup_types(kube: Client, namespace: str) -> list[str]:
    done = await pgbackrest(kube, namespace, "info", "--output=json")
    assert done.exit_code == 0, done.stderr
    (stanza,) = json.loads(done.stdout)
    return [b["type"] for b in stanza["backup"]]


async def switch_wal(kube: Client, namespace: str) -> int:
    """Write, then close the WAL segment; the archiver's count before. The write commits first:
    a switch with no WAL since the last one (a backup's own, say) closes no segment."""
    primary = await primary_pod(kube, namespace)
    count = await psql(kube, primary, namespace, "select archived_count from pg_stat_archiver")
    await psql(kube, primary, namespace, "create table if not exists marks (at timestamptz)")
    await psql(kube, primary, namespace, "insert into marks values (now())")
    await psql(kube, primary, namespace, "select pg_switch_wal()")
    return int(count)


async def archiver_state(kube: Client, namespace: str) -> str:
    """What the primary's archiver and pgBackRest's spool say, to tell why."""
    primary = await primary_pod(kube, namespace)
    query = (
        "select row_to_json(a) from pg_stat_archiver a union all "
        "select to_json(array_agg(f)) from pg_ls_dir('pg_wal/archive_status') f union all "
        "select to_json(array_agg(f)) from "
        "pg_ls_dir('/pgdata/pgbackrest-spool/archive/db/out', true, false) f"
    )
    return await psql(kube, primary, namespace, query)


# The first archive may wait for pgBackRest's asynchronous push to time out (see test_backups).
@pytest.mark.timeout(1200)
async def test_hippo_backs_up_to_s3_and_reports_archiving_while_the_store_is_down(
    kube: Client, namespace: str, control_plane: ControlPlane, object_store: ObjectStore
) -> None:
    await kube.create(SECRETS, credentials(namespace, object_store))
    await kube.create(CLUSTERS, hippo_s3(namespace))
    await ready_cluster(kube, namespace, timeout=120)
    await _backups_in_the_bucket(kube, namespace, control_plane)
    await _archiving_through_an_outage(kube, namespace, control_plane, object_store)


async def _backups_in_the_bucket(kube: Client, namespace: str, control_plane: ControlPlane) -> None:
    # The stanza in the bucket; no repository host without a volume repository.
    def stanza_created(cluster: JSON) -> bool:
        repos = ((cluster.get("status") or {}).get("pgbackrest") or {}).get("repos") or []
        return bool(repos) and bool(repos[0].get("stanzaCreated"))

    cluster = await cluster_where(kube, namespace, stanza_created, 120, control_plane)
    (repo,) = cluster["status"]["pgbackrest"]["repos"]
    assert repo["name"] == "repo1"
    assert repo["repoOptionsHash"]
    assert "volume" not in repo
    with pytest.raises(NotFoundError):
        await kube.get(STATEFUL_SETS, "hippo-repo-host", namespace)

    # The replica-create backup, run by its Job's own pgBackRest.
    def replica_create(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_PGBACKREST_REPLICA_CREATE) or {}
        return found.get("status") == "True"

    await cluster_where(kube, namespace, replica_create, 600, control_plane)
    assert await backup_types(kube, namespace) == ["full"]

    # The schedules, with PGO's names; an incremental backup started by hand from one.
    await incremental_by_hand(kube, namespace, control_plane)
    assert await backup_types(kube, namespace) == ["full", "incr"]


async def _archiving_through_an_outage(
    kube: Client, namespace: str, control_plane: ControlPlane, object_store: ObjectStore
) -> None:
    # The store goes down: archiving fails, and the operator says so within a minute or so.
    await object_store.stop()
    try:
        stopped = time.monotonic()
        await switch_wal(kube, namespace)

        def failing(cluster: JSON) -> bool:
            found = condition(cluster, naming.CONDITION_PGBACKREST_ARCHIVING) or {}
            return found.get("status") == "False"

        try:
            # A segment waiting 30 s with nothing archived counts (pgBackRest itself gives up
            # on the store only after its 60-s timeouts), and the operator looks every 30 s.
            cluster = await cluster_where(kube, namespace, failing, 150, control_plane)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{await archiver_state(kube, namespace)}") from None
        print(f"archiving failure reported {time.monotonic() - stopped:.0f} s after the stop")
        found = condition(cluster, naming.CONDITION_PGBACKREST_ARCHIVING)
        assert found is not None
        assert found["reason"] == "ArchiveCommandFailed"
        assert "segment(s) wait in pg_wal" in found["message"]
        events = (await kube.list(EVENTS, namespace)).items
        warned = [e for e in events if e["reason"] == "ArchiveCommandFailed"]
        assert warned, [e["reason"] for e in events]
        assert warned[0]["type"] == "Warning"
    finally:
        await object_store.start()

    # Back: the waiting segments are archived, the condition clears, the archive is whole.
    await switch_wal(kube, namespace)

    def archiving(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_PGBACKREST_ARCHIVING) or {}
        return found.get("status") == "True"

    back = time.monotonic()
    await cluster_where(kube, namespace, archiving, 300, control_plane)
    print(f"archiving reported working {time.monotonic() - back:.0f} s after the restart")
    checked = await pgbackrest(kube, namespace, "check")
    assert checked.exit_code == 0, checked.stderr
    events = (await kube.list(EVENTS, namespace)).items
    assert any(e["reason"] == "ArchivingResumed" for e in events)
