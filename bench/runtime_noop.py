"""Runtime benchmark: no-op reconciles per second over 10,000 keys, and memory per cached object.

    .venv/bin/python -m bench.runtime_noop [--keys 10000] [--objects 2000] [--workers 2]

Starts its own local control plane (reconciler_envtest). The reconcile rate goes through the
whole controller path (work queue, dedup sets, metrics, structlog context, reconcileID); the
memory figure is what an informer's store holds per ConfigMap (managedFields stripped), measured
with tracemalloc around the informer's LIST and watch.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

import structlog
from reconciler_envtest.controlplane import ControlPlane

from reconciler.runtime.cache import Cache
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.controller import Controller, Request, Result
from reconciler.runtime.informer import Informer
from reconciler.runtime.resources import CONFIG_MAPS, NAMESPACES


async def reconciles_per_second(client: Client, keys: int, workers: int) -> float:
    """Queue `keys` distinct requests and time a no-op reconcile of all of them."""
    done = asyncio.Event()
    count = 0

    async def reconcile(_: Request) -> Result | None:
        nonlocal count
        count += 1
        if count == keys:
            done.set()
        return None

    controller = Controller("bench-noop", reconcile, workers=workers)
    cache = Cache(client)
    for number in range(keys):
        controller.queue.add(Request("bench", f"object-{number}"))
    started = time.perf_counter()
    task = asyncio.create_task(controller.run(cache))
    await done.wait()
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return keys / elapsed


def config_map(namespace: str, number: int) -> JSON:
    """A typical small owned object: labels, an ownerReference-sized annotation, some data."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"cm-{number}",
            "namespace": namespace,
            "labels": {
                "postgres-operator.crunchydata.com/cluster": f"cluster-{number % 50}",
                "postgres-operator.crunchydata.com/role": "config",
            },
        },
        "data": {"config.yaml": f"key: value-{number}\n" * 8},
    }


async def bytes_per_object(client: Client, objects: int) -> tuple[float, int]:
    """Create `objects` ConfigMaps, cache them with one informer; return bytes per object."""
    namespace = "bench-memory"
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    for start in range(0, objects, 100):
        batch = range(start, min(start + 100, objects))
        await asyncio.gather(*(client.create(CONFIG_MAPS, config_map(namespace, n)) for n in batch))
    selector = "postgres-operator.crunchydata.com/role=config"
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    informer = Informer(client, CONFIG_MAPS, namespace=namespace, label_selector=selector)
    task = asyncio.create_task(informer.run())
    await informer.wait_synced()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return held / len(informer.store), len(informer.store)


async def main(keys: int, objects: int, workers: int) -> None:
    # Logging every reconcile's start would measure the log sink; keep warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        async with ControlPlane(Path(scratch)) as plane:
            client = await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench")
            async with client:
                rate = await reconciles_per_second(client, keys, workers)
                print(f"no-op reconciles: {keys} keys, {workers} workers: {rate:,.0f}/s")
                per_object, count = await bytes_per_object(client, objects)
                print(f"informer memory: {count} ConfigMaps, {per_object:,.0f} bytes per object")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.keys, args.objects, args.workers))
