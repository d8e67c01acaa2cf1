"""Exporter scrape time per cluster: pgMonitor's queries through postgres_exporter.

    .venv/bin/reconciler-envtest isolated -- .venv/bin/python -m bench.monitoring   # --scrapes 50

Starts its own control plane with the process node (real PostgreSQL 15, Patroni, pgBackRest,
Debian's postgres_exporter 0.11), runs the operator in-process, and applies hippo as written
(one instance, its volume repository) with `spec.monitoring.pgmonitor.exporter`. Once the
replica-create backup is done and the exporter serves pgMonitor's queries, it scrapes the
instance's exporter by pod address, one scrape at a time, and reports:

1. steady scrapes: p50, p95 and max of `--scrapes` GET /metrics, the series and bytes served;
2. a scrape that asks pgBackRest (`monitor.pgbackrest_backups()` refreshes its answer at most
   every 10 minutes; the answer is cleared first), the most a scrape costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from reconciler_envtest import ControlPlane, images
from reconciler_envtest.pytest_plugin import wait_for

from bench.hippo_requests import operator
from reconciler import naming
from reconciler.api import crd
from reconciler.config import Settings
from reconciler.runtime.client import Client
from reconciler.runtime.resources import PODS
from tests.api_examples import hippo
from tests.e2e.cluster import psql

CLUSTERS = crd.POSTGRES_CLUSTERS.resource
NAMESPACE = "default"
BACKUP_METRIC = "ccp_backrest_last_full_backup_time_since_completion_seconds"


async def _scrape(session: aiohttp.ClientSession, url: str) -> tuple[float, str]:
    """One scrape: its seconds and its body."""
    started = time.perf_counter()
    async with session.get(url) as response:
        response.raise_for_status()
        body = await response.text()
    return time.perf_counter() - started, body


async def main(scrapes: int) -> None:
    """Measure and print."""
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as scratch:
        async with (
            ControlPlane(Path(scratch), process_node=True) as plane,
            await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench") as kube,
            aiohttp.ClientSession() as session,
        ):
            await crd.install(kube, field_manager="bench")
            related = {
                k.removeprefix("RELATED_IMAGE_"): v for k, v in images.related_images().items()
            }
            cluster = hippo()
            cluster["metadata"]["namespace"] = NAMESPACE
            cluster["spec"]["postgresVersion"] = images.POSTGRES_VERSION
            cluster["spec"]["backups"]["pgbackrest"]["global"] = {"start-fast": "y"}
            cluster["spec"]["monitoring"] = {"pgmonitor": {"exporter": {}}}
            async with operator(plane.kubeconfig, Settings(images=related, workers=2)):
                await kube.create(CLUSTERS, cluster)
                primary = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_ROLE}=master"

                async def backed_up() -> bool:
                    found = await kube.get(CLUSTERS, "hippo", NAMESPACE)
                    conditions = (found.get("status") or {}).get("conditions") or []
                    return any(
                        c["type"] == "PGBackRestReplicaCreate" and c["status"] == "True"
                        for c in conditions
                    )

                await wait_for(backed_up, timeout=900, interval=2)
                pod = (await kube.list(PODS, NAMESPACE, label_selector=primary)).items[0]
                url = f"http://{pod['status']['podIP']}:9187/metrics"

                # A scrape before the backup stored pgBackRest's answer for 10 minutes: ask again.
                async def cleared() -> bool:
                    await psql(kube, pod, NAMESPACE, "truncate monitor.pgbackrest_info")
                    return True

                await wait_for(cleared, timeout=300, interval=2)

                async def serving() -> bool:
                    _, body = await _scrape(session, url)
                    return BACKUP_METRIC in body

                await wait_for(serving, timeout=300, interval=2)
                seconds, bodies = [], []
                for _ in range(scrapes):
                    took, body = await _scrape(session, url)
                    seconds.append(took)
                    bodies.append(body)
                series = sum(1 for line in bodies[-1].splitlines() if not line.startswith("#"))
                await psql(kube, pod, NAMESPACE, "truncate monitor.pgbackrest_info")
                cold, body = await _scrape(session, url)
                assert BACKUP_METRIC in body, "the scrape that asked pgBackRest lost its answer"
                ranked = sorted(seconds)
                print(
                    f"steady scrape of one instance ({scrapes} scrapes): "
                    f"p50 {statistics.median(ranked) * 1000:.0f} ms, "
                    f"p95 {ranked[int(0.95 * (len(ranked) - 1))] * 1000:.0f} ms, "
                    f"max {ranked[-1] * 1000:.0f} ms; {series} series, {len(bodies[-1]):,} bytes"
                )
                print(f"scrape asking pgBackRest: {cold * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=50, help="steady scrapes to time")
    asyncio.run(main(parser.parse_args().scrapes))
