"""Backups on real processes: the operator's full backup against pgBackRest run by hand.

    .venv/bin/reconciler-envtest isolated -- .venv/bin/python -m bench.backup   # --gib 1.0

Starts its own control plane with the process node (real PostgreSQL 15, Patroni, pgBackRest),
runs the operator in-process on a client of its own (whose request counter is reported), and
applies the quick-start hippo with its volume repository. Reported:

1. time from the create to the first completed backup (the replica-create full backup);
2. with at least `--gib` of table data loaded (random text, so compression has work to do):
   a manual full backup asked for with PGO's annotation, from the annotation to
   `status.pgbackrest.manualBackup.finished`, and the requests the operator sent meanwhile;
3. `pgbackrest backup --type=full` run by hand in the repository host on the same data and
   repository, once before and once after the operator's (the first full backup after the load
   was seen to be the slower one), and the ratio to their mean.

Both full backups start with `--start-fast` (an immediate checkpoint): without it each waits for
PostgreSQL's next spread checkpoint, up to `checkpoint_timeout`, and the ratio measures that
wait (seen: 135 s against 338 s). The first backup is the example's, as users apply it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from reconciler_envtest import ControlPlane, images

from bench.hippo_requests import operator
from reconciler import naming
from reconciler.api import crd
from reconciler.config import Settings
from reconciler.runtime import podexec
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import JOBS, PODS
from tests.api_examples import hippo

CLUSTERS = crd.POSTGRES_CLUSTERS.resource
NAMESPACE = "default"
# One row is about 1 KiB of random hex text (30 MD5 digests and a key) plus PostgreSQL's
# overhead: 1,000,000 rows made a 0.96 GiB database.
ROWS_PER_GIB = 1_100_000


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def hippo_now(kube: Client) -> JSON:
    return await kube.get(CLUSTERS, "hippo", NAMESPACE)


async def run(kube: Client, pod: str, container: str, argv: list[str]) -> str:
    done = await podexec.run(kube, NAMESPACE, pod, container, argv, timeout=3600)
    if done.exit_code != 0:
        raise RuntimeError(f"{' '.join(argv)} in {pod}: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode()


async def primary_pod(kube: Client) -> str:
    """hippo's primary; waits while there is none (a Patroni loop under load, say)."""
    selector = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_ROLE}=master"
    found: list[str] = []

    async def primary() -> bool:
        pods = (await kube.list(PODS, NAMESPACE, label_selector=selector)).items
        found[:] = [p["metadata"]["name"] for p in pods]
        return len(found) == 1

    await until(primary, 300)
    return found[0]


async def full_backup_by_hand(kube: Client) -> float:
    """`pgbackrest backup --type=full` in the repository host, as an administrator runs it."""
    started = time.monotonic()
    argv = ["pgbackrest", "backup", "--stanza=db", "--repo=1", "--type=full", "--start-fast"]
    await run(kube, "hippo-repo-host-0", "pgbackrest", argv)
    return time.monotonic() - started


async def load(kube: Client, gib: float) -> None:
    """At least `gib` of random table data in hippo's primary, its WAL archived after."""
    primary = await primary_pod(kube)
    rows = int(gib * ROWS_PER_GIB)
    statement = (
        "create table bench as select g as id, "
        "(select string_agg(md5(random()::text || i::text || g::text), '') "
        " from generate_series(1, 30) i) as payload "
        f"from generate_series(1, {rows}) g; checkpoint;"
    )
    loaded = time.monotonic()
    await run(kube, primary, "database", ["psql", "-Atqc", statement])
    size = await run(
        kube, primary, "database", ["psql", "-Atqc", "select pg_database_size('postgres')"]
    )
    print(
        f"loaded {int(size) / 2**30:.2f} GiB (database size) in {time.monotonic() - loaded:.0f} s"
    )

    # The load's WAL is archived first: a backup ends by waiting for its last segment, which
    # would queue behind a gigabyte of pushes.
    waiting = "select count(*) from pg_ls_dir('pg_wal/archive_status') f where f like '%.ready'"

    async def archived() -> bool:
        count = await run(kube, primary, "database", ["psql", "-Atqc", waiting])
        return int(count) == 0

    caught_up = time.monotonic()
    await until(archived, 1800)
    print(f"WAL of the load archived {time.monotonic() - caught_up:.0f} s later")


async def _print_job_phases(kube: Client) -> None:
    """Where the manual backup's time went: the Job's and its pod's own timestamps."""
    selector = f"{naming.LABEL_PGBACKREST_BACKUP}=manual"
    (job,) = (await kube.list(JOBS, NAMESPACE, label_selector=selector)).items
    pods = await kube.list(PODS, NAMESPACE, label_selector=f"job-name={job['metadata']['name']}")
    marks = {"Job created": job["metadata"]["creationTimestamp"]}
    for pod in pods.items:
        marks["pod created"] = pod["metadata"]["creationTimestamp"]
        for status in pod["status"].get("containerStatuses") or []:
            terminated = status["state"].get("terminated") or {}
            marks["container started"] = terminated.get("startedAt", "")
            marks["container finished"] = terminated.get("finishedAt", "")
    marks["Job complete"] = job["status"].get("completionTime", "")
    print("  " + ", ".join(f"{k} {v[11:19]}" for k, v in marks.items()))


@contextlib.asynccontextmanager
async def quick_start(prefix: str, gib: float) -> AsyncIterator[tuple[Client, Client, JSON]]:
    """A control plane of its own with the process node, the CRDs, the operator in-process:
    (the bench's client, the operator's client, the quick-start hippo to create, its volumes
    sized for `gib` of table data)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        async with (
            ControlPlane(Path(scratch), process_node=True) as plane,
            await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench") as kube,
        ):
            await crd.install(kube, field_manager="bench")
            cluster = hippo()
            cluster["metadata"]["namespace"] = NAMESPACE
            cluster["spec"]["postgresVersion"] = images.POSTGRES_VERSION
            _size_volumes(cluster, gib)
            related = {
                k.removeprefix("RELATED_IMAGE_"): v for k, v in images.related_images().items()
            }
            async with operator(plane.kubeconfig, Settings(images=related, workers=2)) as client:
                yield kube, client, cluster


def _size_volumes(cluster: JSON, gib: float) -> None:
    """Room for `gib` of table data: the process node's volumes hold what they ask for (a tmpfs
    each), and the data volume takes the table and its WAL, the repository its backups and the
    archived WAL."""
    size = f"{math.ceil(gib * 5) + 1}Gi"
    cluster["spec"]["instances"][0]["dataVolumeClaimSpec"]["resources"]["requests"]["storage"] = (
        size
    )
    for repo in cluster["spec"]["backups"]["pgbackrest"]["repos"]:
        if "volume" in repo:
            repo["volume"]["volumeClaimSpec"]["resources"]["requests"]["storage"] = size


async def main(gib: float) -> None:
    """Run the three measurements and print them."""
    async with quick_start("bench-backup-", gib) as (kube, client, cluster):
        started = time.monotonic()
        await kube.create(CLUSTERS, cluster)

        async def first_backup() -> bool:
            repos = ((await hippo_now(kube)).get("status") or {}).get("pgbackrest") or {}
            return any(r.get("replicaCreateBackupComplete") for r in repos.get("repos") or [])

        await until(first_backup, 900)
        first = time.monotonic() - started
        print(f"create to first completed backup: {first:.1f} s")

        await load(kube, gib)
        first_by_hand = await full_backup_by_hand(kube)
        print(f"pgbackrest backup by hand, before the operator's: {first_by_hand:.1f} s")

        before = Counter(client.requests)
        asked = time.monotonic()
        await kube.patch(
            CLUSTERS,
            "hippo",
            {
                "metadata": {"annotations": {naming.ANNOTATION_PGBACKREST_BACKUP: "b1"}},
                "spec": {
                    "backups": {
                        "pgbackrest": {
                            "manual": {
                                "repoName": "repo1",
                                "options": ["--type=full"],
                            }
                        }
                    }
                },
            },
            namespace=NAMESPACE,
        )

        async def manual_done() -> bool:
            status = (await hippo_now(kube)).get("status") or {}
            manual = (status.get("pgbackrest") or {}).get("manualBackup") or {}
            return manual.get("id") == "b1" and bool(manual.get("finished"))

        await until(manual_done, 3600)
        operator_seconds = time.monotonic() - asked
        sent = client.requests - before
        print(f"operator-driven full backup: {operator_seconds:.1f} s")
        await _print_job_phases(kube)
        print(f"  requests sent meanwhile: {sum(sent.values())} {dict(sorted(sent.items()))}")

        second = await full_backup_by_hand(kube)
        print(f"pgbackrest backup by hand, after it: {second:.1f} s")
        hand_seconds = (first_by_hand + second) / 2
        print(f"ratio operator / by hand (mean): {operator_seconds / hand_seconds:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="table data to back up")
    asyncio.run(main(parser.parse_args().gib))
