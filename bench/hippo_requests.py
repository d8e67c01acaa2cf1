"""API requests the operator sends to converge hippo from nothing, and for a no-op resync.

    .venv/bin/python -m bench.hippo_requests

Starts its own local control plane, installs the CRDs, runs the PostgresCluster controller
in-process on a client of its own (whose request counter is what is reported), applies the
quick-start example and waits until it is Ready and the controller is idle. Then a second,
fresh operator (a restart: empty cache, every object reconciled again) runs against the same
cluster; its requests are the cost of a full resync of a converged cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import yaml
from reconciler_envtest import ControlPlane

from reconciler.api import crd
from reconciler.config import Settings
from reconciler.postgrescluster import controller
from reconciler.runtime import metrics
from reconciler.runtime.client import Client
from reconciler.runtime.manager import Manager

EXAMPLE = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "hippo.yaml"
IMAGES = {"POSTGRES_17": "example/postgres:17", "PGBACKREST": "example/pgbackrest:2"}
QUIET = 2.0  # seconds without a reconcile that count as idle


@contextlib.asynccontextmanager
async def operator(kubeconfig: Path, settings: Settings) -> AsyncIterator[Client]:
    """The PostgresCluster controller running in-process on a client of its own (whose
    `requests` counter the benchmarks report)."""
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="bench") as client:
        manager = Manager(client, health_address="0", metrics_address="0")
        await controller.setup(manager, settings)
        task = asyncio.create_task(manager.run())
        try:
            yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _reconciles() -> float:
    return sum(
        metrics.REGISTRY.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": controller.NAME, "result": r}
        )
        or 0.0
        for r in ("success", "error", "requeue_after")
    )


async def _idle() -> None:
    """Wait until no reconcile happened for QUIET seconds."""
    last, since = _reconciles(), time.monotonic()
    while time.monotonic() - since < QUIET:
        await asyncio.sleep(0.1)
        if (now := _reconciles()) != last:
            last, since = now, time.monotonic()


async def _ready(kube: Client) -> None:
    while True:
        cluster = await kube.get(crd.POSTGRES_CLUSTERS.resource, "hippo", "default")
        conditions = (cluster.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return
        await asyncio.sleep(0.05)


def _by_verb(requests: Counter[tuple[str, str]]) -> dict[str, int]:
    verbs: Counter[str] = Counter()
    for (method, _), count in requests.items():
        verbs[method] += count
    return dict(sorted(verbs.items()))


async def main() -> None:
    """Run both measurements and print them as table rows."""
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        async with (
            ControlPlane(Path(scratch)) as plane,
            await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench") as kube,
        ):
            await crd.install(kube, field_manager="bench")
            hippo = yaml.safe_load(EXAMPLE.read_text())
            hippo["metadata"]["namespace"] = "default"
            async with operator(plane.kubeconfig, Settings(images=IMAGES)) as client:
                await _idle()
                before = Counter(client.requests)
                started = time.monotonic()
                await kube.create(crd.POSTGRES_CLUSTERS.resource, hippo)
                await _ready(kube)
                ready_after = time.monotonic() - started
                await _idle()
                converge = client.requests - before
            async with operator(plane.kubeconfig, Settings(images=IMAGES)) as client:
                await _idle()
                resync = client.requests
            print(f"converge hippo (Ready after {ready_after:.2f}s): {_by_verb(converge)}")
            print("  by resource:", dict(sorted(converge.items())))
            print(f"restart + full resync of converged hippo: {_by_verb(resync)}")


if __name__ == "__main__":
    asyncio.run(main())
