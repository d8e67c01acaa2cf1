"""Standby clusters (`spec.standby`) on the process node: a standby that replays the primary
cluster's WAL from a shared S3 repository, its promotion, and the way back (the former primary
re-created as a standby of the new one); a streaming standby with certificates of one CA, whose
former primary rejoins by pg_rewind; bad input."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.objectstore import ObjectStore
from reconciler_envtest.pytest_plugin import wait_for

from reconciler import naming
from reconciler.pki import authority, x509
from reconciler.runtime.client import JSON, Client, NotFoundError
from reconciler.runtime.resources import EVENTS, JOBS, PODS, SECRETS
from tests.e2e.cluster import CLUSTERS, PREFIX, e2e_hippo, psql, timeline, user_credentials
from tests.e2e.test_backups import cluster_where, condition
from tests.e2e.test_s3_backups import credentials, hippo_s3
from tests.operator import ready_cluster

pytestmark = pytest.mark.usefixtures("operator")

BUCKET = "hippo-standby"


def primary_s3(namespace: str, name: str = "hippo", **standby: Any) -> JSON:
    """hippo with its repository in the standby tests' bucket, at a path of the namespace's
    that every cluster of the test shares (PGO's way to feed a standby: the same bucket and
    path)."""
    cluster = hippo_s3(namespace)
    cluster["metadata"]["name"] = name
    pgbackrest = cluster["spec"]["backups"]["pgbackrest"]
    pgbackrest["repos"][0]["s3"]["bucket"] = BUCKET
    pgbackrest["repos"][0].pop("schedules")
    pgbackrest["global"]["repo1-path"] = f"/pgbackrest/{namespace}/repo1"
    if standby:
        cluster["spec"]["standby"] = standby
    return cluster


async def leader(kube: Client, namespace: str, cluster: str) -> JSON:
    """The one pod Patroni labelled `master` in `cluster` (primary or standby leader), ready."""

    async def probe() -> JSON | None:
        selector = f"{PREFIX}cluster={cluster},{PREFIX}role=master"
        pods = (await kube.list(PODS, namespace, label_selector=selector)).items
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        return ready[0] if len(ready) == 1 else None

    return await wait_for(probe, timeout=300, interval=0.5)


async def sql(
    kube: Client, namespace: str, cluster: str, query: str, database: str = "postgres"
) -> str:
    """`query` in the leader of `cluster`, as `postgres`."""
    return await psql(kube, await leader(kube, namespace, cluster), namespace, query, database)


async def rows_appear(kube: Client, namespace: str, cluster: str, count: int) -> None:
    """Until table `t` of `cluster` holds `count` rows (WAL replays asynchronously)."""

    async def probe() -> bool:
        return int(await sql(kube, namespace, cluster, "select count(*) from t")) == count

    await wait_for(probe, timeout=300, interval=1)


async def write_and_archive(kube: Client, namespace: str, cluster: str, numbers: range) -> None:
    """Insert `numbers` into `t` on the primary of `cluster`, then close the WAL segment so
    the archiver ships it (a standby fed by the repository sees only archived WAL). The
    switch comes after the commit: psql runs one `-c` string as one transaction."""
    await sql(
        kube,
        namespace,
        cluster,
        "create table if not exists t (n int primary key, at timestamptz default now());"
        f"insert into t (n) select generate_series({numbers.start}, {numbers.stop - 1})",
    )
    await sql(kube, namespace, cluster, "select pg_switch_wal()")


async def promote(kube: Client, namespace: str, cluster: str) -> None:
    """`standby.enabled: false`, then until the leader of `cluster` takes a write (row 1001)."""
    patch = {"spec": {"standby": {"enabled": False}}}
    await kube.patch(CLUSTERS, cluster, patch, namespace=namespace)

    async def writable() -> bool:
        await sql(kube, namespace, cluster, "insert into t (n) values (1001)")
        return True

    await wait_for(writable, timeout=180, interval=0.2)


# How long the client commits before the primary is lost (longer than archive_timeout, so
# that at least one segment closed by it reaches the repository).
RPO_WINDOW = 90.0


class CommitClock:
    """Commits numbered rows through the primary Service, one at a time, recording when each
    acknowledged commit happened (the server's clock, the machine's, as the standby's), until
    the first failure."""

    def __init__(self, uri: str, tls: ssl.SSLContext) -> None:
        self.uri, self.tls = uri, tls
        self.database = urllib.parse.urlparse(uri).path.lstrip("/")  # the user's (zoo)
        self.table = "rpo"
        self.acknowledged: list[tuple[int, float]] = []
        self.started = time.monotonic()

    async def run(self) -> None:
        """Commit until the first failure (the table `rpo` in the user's database)."""
        connection = await asyncpg.connect(self.uri, ssl=self.tls, timeout=5)
        await connection.execute("create table rpo (n int primary key, at timestamptz)")
        # In the user's schema when the operator made one (AutoCreateUserSchema).
        self.table = await connection.fetchval(
            "select format('%I.%I', nspname, relname) from pg_class c"
            " join pg_namespace n on n.oid = relnamespace where c.oid = 'rpo'::regclass"
        )
        self.started = time.monotonic()
        n = 0
        try:
            while True:
                n += 1
                at = await connection.fetchval(
                    "insert into rpo values ($1, clock_timestamp())"
                    " returning extract(epoch from at)",
                    n,
                    timeout=5,
                )
                self.acknowledged.append((n, float(at)))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()

    async def ran_for(self, seconds: float) -> bool:
        """Whether the client has committed for `seconds`."""
        return bool(self.acknowledged) and time.monotonic() - self.started >= seconds


async def events(kube: Client, namespace: str, cluster: str, reason: str) -> list[JSON]:
    """The Events of `reason` about `cluster`."""
    return [
        e
        for e in (await kube.list(EVENTS, namespace)).items
        if e.get("reason") == reason and e["involvedObject"].get("name") == cluster
    ]


async def status_of(kube: Client, namespace: str, name: str, test: Any, timeout: float) -> JSON:
    """The cluster `name` once `test` holds."""

    async def probe() -> JSON | None:
        cluster = await kube.get(CLUSTERS, name, namespace)
        return cluster if test(cluster) else None

    return await wait_for(probe, timeout=timeout, interval=0.5)


async def gone(kube: Client, namespace: str, name: str) -> None:
    async def probe() -> bool:
        try:
            await kube.get(CLUSTERS, name, namespace)
        except NotFoundError:
            return True
        return False

    await wait_for(probe, timeout=180, interval=0.5)


async def standby_pair(
    kube: Client, namespace: str, plane: ControlPlane, parameters: JSON | None = None
) -> None:
    """hippo with its S3 repository (its backup taken, rows 1..200 in `t`, archived) and
    hippo-dr, its standby from that repository, which replayed them; `parameters` for both."""
    primary = primary_s3(namespace)
    primary["spec"]["config"] = {"parameters": parameters or {}}
    await kube.create(CLUSTERS, primary)
    await ready_cluster(kube, namespace, timeout=180)

    def backed_up(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_PGBACKREST_REPLICA_CREATE) or {}
        return found.get("status") == "True"

    # The standby restores the primary cluster's backup, then replays its archived WAL.
    await cluster_where(kube, namespace, backed_up, 600, plane)
    await write_and_archive(kube, namespace, "hippo", range(1, 101))
    standby = primary_s3(namespace, "hippo-dr", enabled=True, repoName="repo1")
    standby["spec"]["config"] = primary["spec"]["config"]
    await kube.create(CLUSTERS, standby)
    await ready_cluster(kube, namespace, "hippo-dr", timeout=300)
    await rows_appear(kube, namespace, "hippo-dr", 100)
    await write_and_archive(kube, namespace, "hippo", range(101, 201))
    await rows_appear(kube, namespace, "hippo-dr", 200)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a promoted standby kept of what a client committed on the lost primary."""

    rpo: float  # seconds between the last acknowledged commit and the newest one kept
    lost: int  # acknowledged commits missing
    committed: int  # acknowledged commits in all
    promotion: float  # seconds from `enabled: false` to the first write on the new primary

    def __str__(self) -> str:
        return (
            f"RPO {self.rpo:.1f}s ({self.lost} of {self.committed} acknowledged commits lost), "
            f"promotion {self.promotion:.1f}s from the patch to the first write"
        )


async def disaster(kube: Client, namespace: str, plane: ControlPlane, window: float) -> Recovery:
    """A client commits to hippo for `window` seconds; then hippo's only instance is lost (its
    processes killed, none restarted) and hippo-dr is promoted: what it kept (a prefix of the
    acknowledged commits, checked)."""
    clock = CommitClock(*await user_credentials(kube, namespace))
    writing = asyncio.create_task(clock.run())

    async def committed_long_enough() -> bool:
        if writing.done():
            writing.result()  # the client's error, reported on time-out
            raise AssertionError("the client stopped committing before the primary was lost")
        return await clock.ran_for(window)

    await wait_for(committed_long_enough, timeout=window + 60)
    lost = (await leader(kube, namespace, "hippo"))["metadata"]["name"]
    assert plane.kubelet.kill(lost, namespace, hold_restarts=True)
    await writing
    started = time.monotonic()
    await promote(kube, namespace, "hippo-dr")
    promotion = time.monotonic() - started
    newest = await sql(
        kube,
        namespace,
        "hippo-dr",
        "select count(*) || ' ' || coalesce(max(n), 0) || ' ' ||"
        f" coalesce(extract(epoch from max(at)), 0) from {clock.table}",
        clock.database,
    )
    count, kept, kept_at = (float(v) for v in newest.split())
    assert count == kept  # no gap: rows 1..kept
    last, last_at = clock.acknowledged[-1]
    since = kept_at if kept else clock.acknowledged[0][1]
    return Recovery(last_at - since, last - int(kept), last, promotion)


@pytest.mark.timeout(1800)
async def test_standby_from_s3_follows_is_promoted_and_the_former_primary_follows_it(
    kube: Client, namespace: str, control_plane: ControlPlane, object_store: ObjectStore
) -> None:
    await kube.create(SECRETS, credentials(namespace, object_store))
    await standby_pair(kube, namespace, control_plane)
    assert await sql(kube, namespace, "hippo-dr", "select pg_is_in_recovery()") == "t"

    # The status says what the standby leader replayed; the standby takes no backup and
    # creates no stanza: the repository is the primary cluster's.
    def replaying(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_STANDBY) or {}
        return found.get("status") == "True" and "replayed up to" in found.get("message", "")

    cluster = await status_of(kube, namespace, "hippo-dr", replaying, 120)
    message = condition(cluster, naming.CONDITION_STANDBY)["message"]  # type: ignore[index]
    print(f"\nstandby status: {message}")
    assert "the last replayed transaction committed at" in message
    assert not cluster["status"]["pgbackrest"]["repos"][0]["stanzaCreated"]
    selector = f"{PREFIX}cluster=hippo-dr,{PREFIX}pgbackrest-backup"
    assert not (await kube.list(JOBS, namespace, label_selector=selector)).items

    # Disaster: the primary is lost while a client commits; the standby is promoted and takes
    # writes, on a new timeline, with what was archived (PGO's archive_timeout is 60 s).
    recovery = await disaster(kube, namespace, control_plane, RPO_WINDOW)
    print(f"\nstandby from S3, primary lost after {RPO_WINDOW:.0f}s of commits: {recovery}")
    assert await sql(kube, namespace, "hippo-dr", "select count(*) from t") == "201"
    assert await timeline(kube, await leader(kube, namespace, "hippo-dr"), namespace) == 2

    def promoted(cluster: JSON) -> bool:
        return condition(cluster, naming.CONDITION_STANDBY) is None

    await status_of(kube, namespace, "hippo-dr", promoted, 120)
    assert await events(kube, namespace, "hippo-dr", "StandbyPromoted")

    # The way back: the former primary's data went past the promotion (its shutdown
    # checkpoint at least), and a repository holds nothing to rewind from; it is re-created
    # as a standby of the new primary, from the shared repository.
    await kube.delete(CLUSTERS, "hippo", namespace)  # its lost pod goes with it
    await gone(kube, namespace, "hippo")
    await kube.create(CLUSTERS, primary_s3(namespace, enabled=True, repoName="repo1"))
    await ready_cluster(kube, namespace, timeout=300)
    await write_and_archive(kube, namespace, "hippo-dr", range(2001, 2101))
    await rows_appear(kube, namespace, "hippo", 301)
    assert await sql(kube, namespace, "hippo", "select max(n) from t") == "2100"


def tls_secret(namespace: str, name: str, root: x509.Certificate, leaf: x509.Certificate) -> JSON:
    """A Secret with `tls.crt`, `tls.key` and `ca.crt`, as PGO's custom TLS Secrets have."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {
            "tls.crt": leaf.certificate_pem.decode(),
            "tls.key": leaf.key_pem.decode(),
            "ca.crt": root.certificate_pem.decode(),
        },
    }


async def custom_certificates(
    kube: Client, namespace: str, root: x509.Certificate, name: str
) -> JSON:
    """PGO's documented set-up of clusters that replicate across: the server certificate and
    the `_crunchyrepl` client certificate of each cluster issued by one CA the user holds."""
    names = [
        dns
        for service in (naming.cluster_primary_service(name), naming.cluster_replica_service(name))
        for dns in naming.certificate_dns_names(service, namespace)
    ]
    now = datetime.datetime.now(datetime.UTC)
    server = authority.issue_leaf(root, naming.cluster_primary_service(name), names, now)
    client = authority.issue_leaf(root, naming.REPLICATION_USER, [naming.REPLICATION_USER], now)
    await kube.create(SECRETS, tls_secret(namespace, f"{name}-tls", root, server))
    await kube.create(SECRETS, tls_secret(namespace, f"{name}-replication-tls", root, client))
    return {
        "customTLSSecret": {"name": f"{name}-tls"},
        "customReplicationTLSSecret": {"name": f"{name}-replication-tls"},
    }


async def in_recovery(kube: Client, namespace: str, cluster: str) -> None:
    async def probe() -> bool:
        return await sql(kube, namespace, cluster, "select pg_is_in_recovery()") == "t"

    await wait_for(probe, timeout=300, interval=1)


@pytest.mark.timeout(1200)
async def test_streaming_standby_with_custom_certificates_and_the_way_back_by_rewind(
    kube: Client, namespace: str
) -> None:
    root = x509.new_authority("disaster-recovery-ca", valid_for=datetime.timedelta(days=30))
    primary = e2e_hippo(namespace, **await custom_certificates(kube, namespace, root, "hippo"))
    await kube.create(CLUSTERS, primary)
    await ready_cluster(kube, namespace, timeout=180)
    await write_and_archive(kube, namespace, "hippo", range(1, 101))

    # The standby copies the primary with pg_basebackup, then streams: no repository at all.
    host = naming.service_dns(naming.cluster_primary_service("hippo"), namespace)
    standby = e2e_hippo(namespace, **await custom_certificates(kube, namespace, root, "hippo-dr"))
    standby["metadata"]["name"] = "hippo-dr"
    standby["spec"]["standby"] = {"enabled": True, "host": host, "port": 5432}
    await kube.create(CLUSTERS, standby)
    await ready_cluster(kube, namespace, "hippo-dr", timeout=300)
    await rows_appear(kube, namespace, "hippo-dr", 100)
    await sql(kube, namespace, "hippo", "insert into t (n) select generate_series(101, 200)")
    await rows_appear(kube, namespace, "hippo-dr", 200)
    senders = await sql(
        kube, namespace, "hippo", "select usename || ' ' || state from pg_stat_replication"
    )
    assert f"{naming.REPLICATION_USER} streaming" in senders.splitlines()

    def replaying(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_STANDBY) or {}
        return found.get("status") == "True" and "replayed up to" in found.get("message", "")

    await status_of(kube, namespace, "hippo-dr", replaying, 120)

    # Promotion while the former primary still runs (it is cut off from its clients in a
    # real disaster); then the former primary follows the new one: its WAL went past the
    # promotion, so Patroni rewinds it from the new primary (pg_rewind, same certificate).
    await promote(kube, namespace, "hippo-dr")
    await sql(kube, namespace, "hippo", "insert into t (n) values (666)")  # lost on purpose
    back = naming.service_dns(naming.cluster_primary_service("hippo-dr"), namespace)
    patch = {"spec": {"standby": {"enabled": True, "host": back, "port": 5432}}}
    await kube.patch(CLUSTERS, "hippo", patch, namespace=namespace)
    await in_recovery(kube, namespace, "hippo")
    await sql(kube, namespace, "hippo-dr", "insert into t (n) values (1002)")
    await rows_appear(kube, namespace, "hippo", 202)
    numbers = await sql(kube, namespace, "hippo", "select n from t where n > 200 order by n")
    assert numbers.splitlines() == ["1001", "1002"]


async def test_bad_standby_input_gives_a_condition_and_an_event(
    kube: Client, namespace: str
) -> None:
    # Neither a repository nor a host: nothing runs (it would start as a primary of its own).
    cluster = primary_s3(namespace, "nowhere", enabled=True)
    await kube.create(CLUSTERS, cluster)

    def refused(reason_text: str) -> Any:
        def test(cluster: JSON) -> bool:
            found = condition(cluster, naming.CONDITION_READY) or {}
            return found.get(
                "reason"
            ) == naming.REASON_INVALID_STANDBY and reason_text in found.get("message", "")

        return test

    await status_of(kube, namespace, "nowhere", refused("requires a host or repoName"), 60)
    found = await wait_for(
        lambda: events(kube, namespace, "nowhere", naming.REASON_INVALID_STANDBY), timeout=30
    )
    assert found[0]["type"] == "Warning"
    selector = f"{PREFIX}cluster=nowhere,{PREFIX}instance"
    assert not (await kube.list(PODS, namespace, label_selector=selector)).items

    # A repository the spec does not declare.
    patch = {"spec": {"standby": {"repoName": "repo3"}}}
    await kube.patch(CLUSTERS, "nowhere", patch, namespace=namespace)
    await status_of(kube, namespace, "nowhere", refused('"repo3" is not a repository'), 60)

    async def two_events() -> bool:
        return len(await events(kube, namespace, "nowhere", naming.REASON_INVALID_STANDBY)) >= 2

    await wait_for(two_events, timeout=30)
    assert not (await kube.list(PODS, namespace, label_selector=selector)).items

    # A host that cannot be reached is no input error: the cluster runs, and says so.
    host = f"elsewhere-primary.{namespace}.svc"
    standby: JSON = {"repoName": None, "host": host, "port": 5432}
    await kube.patch(CLUSTERS, "nowhere", {"spec": {"standby": standby}}, namespace=namespace)

    def unreachable(cluster: JSON) -> bool:
        found = condition(cluster, naming.CONDITION_STANDBY) or {}
        return found.get("reason") == "StandbySourceUnreachable" and host in found["message"]

    await status_of(kube, namespace, "nowhere", unreachable, 120)
    assert await wait_for(
        lambda: events(kube, namespace, "nowhere", "StandbySourceUnreachable"), timeout=30
    )
