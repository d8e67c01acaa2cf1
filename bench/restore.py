"""Recovery time on real processes: an in-place restore of a 1 GiB database, from PGO's
annotation to a Ready cluster whose data is checked.

    .venv/bin/reconciler-envtest isolated -- .venv/bin/python -m bench.restore   # --gib 1.0

Starts its own control plane with the process node (real PostgreSQL 15, Patroni, pgBackRest),
runs the operator in-process and applies the quick-start hippo with its volume repository.
After the first backup, loads `--gib` of random table data, takes a full backup by hand
(`--start-fast`), inserts one marked row, and asks for a point-in-time restore in place to just
before it. Reported: the restore Job's own duration (pgBackRest restore and WAL replay), and the
recovery time as a user sees it: from the annotation to `Ready` with every loaded row there and
the marked row gone, with the phases between (instances stopped, Job done, primary ready).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.backup import (
    full_backup_by_hand,
    hippo_now,
    load,
    primary_pod,
    quick_start,
    run,
    until,
)
from reconciler import naming
from reconciler.api import crd
from reconciler.runtime.client import Client
from reconciler.runtime.resources import JOBS, PODS

CLUSTERS = crd.POSTGRES_CLUSTERS.resource
NAMESPACE = "default"


async def _sql(kube: Client, query: str) -> str:
    return (await run(kube, await primary_pod(kube), "database", ["psql", "-Atqc", query])).strip()


async def main(gib: float) -> None:
    """Load, back up, restore in place; print the figures."""
    async with quick_start("bench-restore-", gib) as (kube, _, cluster):
        await kube.create(CLUSTERS, cluster)

        async def first_backup() -> bool:
            repos = ((await hippo_now(kube)).get("status") or {}).get("pgbackrest") or {}
            return any(r.get("replicaCreateBackupComplete") for r in repos.get("repos") or [])

        await until(first_backup, 900)
        await load(kube, gib)
        print(f"full backup by hand: {await full_backup_by_hand(kube):.1f} s")
        rows = await _sql(kube, "select count(*) from bench")
        target = await _sql(kube, "select clock_timestamp()")
        await _sql(kube, "create table marked as select 1 as n")
        await _sql(kube, "select pg_switch_wal()")

        asked = time.monotonic()
        marks: dict[str, float] = {}
        await kube.patch(
            CLUSTERS,
            "hippo",
            {
                "metadata": {"annotations": {naming.ANNOTATION_PGBACKREST_RESTORE: "r1"}},
                "spec": {
                    "backups": {
                        "pgbackrest": {
                            "restore": {
                                "enabled": True,
                                "repoName": "repo1",
                                "options": ["--type=time", f'--target="{target}"'],
                            }
                        }
                    }
                },
            },
            namespace=NAMESPACE,
        )

        async def ready() -> bool:
            now = time.monotonic() - asked
            selector = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_INSTANCE}"
            pods = (await kube.list(PODS, NAMESPACE, label_selector=selector)).items
            if not pods:
                marks.setdefault("instances stopped", now)
            job = (
                await kube.list(JOBS, NAMESPACE, label_selector=naming.LABEL_PGBACKREST_RESTORE)
            ).items
            if job and (job[0].get("status") or {}).get("succeeded"):
                marks.setdefault("restore Job complete", now)
            status = (await hippo_now(kube)).get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            done = (conditions.get("Ready") or {}).get("status") == "True" and (
                (status.get("pgbackrest") or {}).get("restore") or {}
            ).get("succeeded")
            return bool(done)

        await until(ready, 3600)
        seconds = time.monotonic() - asked
        restored = await _sql(kube, "select count(*) from bench")
        marked = await _sql(kube, "select count(*) from pg_tables where tablename = 'marked'")
        assert restored == rows, (restored, rows)
        assert marked == "0", marked
        (job,) = (
            await kube.list(JOBS, NAMESPACE, label_selector=naming.LABEL_PGBACKREST_RESTORE)
        ).items
        job_status = job["status"]
        print(
            f"restore Job: {job_status['startTime'][11:19]} "
            f"to {job_status['completionTime'][11:19]}"
        )
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in marks.items())
        print(f"in-place restore, annotation to Ready with data: {seconds:.1f} s ({phases})")
        print(f"rows checked: {restored}; the row after the target is gone")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="table data to restore")
    asyncio.run(main(parser.parse_args().gib))
