"""pgBouncer against the primary straight: write throughput and connection set-up rate.

    .venv/bin/reconciler-envtest isolated -- .venv/bin/python -m bench.pgbouncer   # --seconds 15

Starts its own control plane with the process node (real PostgreSQL 15, Patroni, pgBouncer
1.18), runs the operator in-process, and applies hippo without backups, with one pgBouncer
(transaction pooling, its default pool of 20 server connections) and the user `hippo` of
database `zoo`. Clients connect by pod address to both, so that the process node's userspace
Service proxy (Python) stays out of both paths; pgBouncer reaches the primary by its pod name
too, hence `server_tls_sslmode: verify-ca` (the server certificate names the Services only), and
the clients verify the chain the same way. Reported, each path run twice, alternating, means:

1. writes per second: `--clients` connections, each inserting one row per transaction
   (autocommit) for `--seconds`;
2. connections per second: `--clients` loops of connect (TLS, SCRAM), `select 1`, close.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from reconciler_envtest import ControlPlane, images

from bench.hippo_requests import operator
from reconciler import naming
from reconciler.api import crd
from reconciler.config import Settings
from reconciler.runtime.client import JSON, Client
from reconciler.runtime.resources import PODS, SECRETS
from tests.api_examples import hippo

CLUSTERS = crd.POSTGRES_CLUSTERS.resource
NAMESPACE = "default"
Connect = Callable[[], Awaitable[asyncpg.Connection]]


async def _until(check: Callable[[], Awaitable[object]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except (OSError, TimeoutError, asyncpg.PostgresError, KeyError, IndexError):
            pass  # not there yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def _pod_ip(kube: Client, labels: str) -> str:
    pods = (await kube.list(PODS, NAMESPACE, label_selector=labels)).items
    return str(pods[0]["status"]["podIP"])


async def _writes(connect: Connect, clients: int, seconds: float) -> float:
    """Autocommitted single-row inserts per second over `clients` connections."""
    deadline = time.monotonic() + seconds

    async def client() -> int:
        db, done = await connect(), 0
        while time.monotonic() < deadline:
            await db.execute("insert into bench (v) values (1)")
            done += 1
        await db.close()
        return done

    return sum(await asyncio.gather(*(client() for _ in range(clients)))) / seconds


async def _connections(connect: Connect, clients: int, seconds: float) -> float:
    """Connect, `select 1`, close, per second, over `clients` loops."""
    deadline = time.monotonic() + seconds

    async def client() -> int:
        done = 0
        while time.monotonic() < deadline:
            db = await connect()
            await db.execute("select 1")
            await db.close()
            done += 1
        return done

    return sum(await asyncio.gather(*(client() for _ in range(clients)))) / seconds


def _cluster() -> JSON:
    cluster = hippo()
    cluster["metadata"]["namespace"] = NAMESPACE
    spec = cluster["spec"]
    spec["postgresVersion"] = images.POSTGRES_VERSION
    del spec["backups"]
    spec["users"] = [{"name": "hippo", "databases": ["zoo"]}]
    settings = {"pool_mode": "transaction", "server_tls_sslmode": "verify-ca"}
    spec["proxy"] = {"pgBouncer": {"config": {"global": settings}}}
    return cluster


async def main(seconds: float, clients: int) -> None:
    """Measure both paths and print them."""
    with tempfile.TemporaryDirectory(prefix="bench-pgbouncer-") as scratch:
        async with (
            ControlPlane(Path(scratch), process_node=True) as plane,
            await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench") as kube,
        ):
            await crd.install(kube, field_manager="bench")
            related = {
                k.removeprefix("RELATED_IMAGE_"): v for k, v in images.related_images().items()
            }
            async with operator(plane.kubeconfig, Settings(images=related, workers=2)):
                await kube.create(CLUSTERS, _cluster())
                primary = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_ROLE}=master"
                await _until(lambda: _pod_ip(kube, primary), 300)
                # pgBouncer to the primary's pod name: no Service proxy on its side either.
                pod = (await kube.list(PODS, NAMESPACE, label_selector=primary)).items[0]
                host = f"{pod['metadata']['name']}.{naming.cluster_pod_service('hippo')}"
                databases = {"zoo": f"host={host} port=5432 dbname=zoo"}
                patch = {"spec": {"proxy": {"pgBouncer": {"config": {"databases": databases}}}}}
                await kube.patch(CLUSTERS, "hippo", patch, namespace=NAMESPACE)
                secret = (await kube.get(SECRETS, "hippo-pguser-hippo", NAMESPACE))["data"]
                password = base64.b64decode(secret["password"]).decode()
                root = (await kube.get(SECRETS, "pgo-root-cacert", NAMESPACE))["data"]
                tls = ssl.create_default_context(cadata=base64.b64decode(root["root.crt"]).decode())
                tls.check_hostname = False  # by address: the chain is verified, not the name
                bouncer = f"{naming.LABEL_CLUSTER}=hippo,{naming.LABEL_ROLE}=pgbouncer"

                def connect(address: str) -> Connect:
                    return lambda: asyncpg.connect(
                        host=address,
                        port=5432,
                        user="hippo",
                        password=password,
                        database="zoo",
                        ssl=tls,
                        statement_cache_size=0,
                        timeout=10,
                    )

                direct = connect(await _pod_ip(kube, primary))

                async def setup() -> bool:
                    db = await direct()
                    await db.execute("create table if not exists bench (id bigserial, v int)")
                    await db.close()
                    return True

                await _until(setup, 300)
                pooled = connect(await _pod_ip(kube, bouncer))

                async def through() -> bool:
                    db = await pooled()
                    await db.execute("select 1 from bench limit 1")
                    await db.close()
                    return True

                await _until(through, 300)
                paths = {"straight to the primary": direct, "through pgBouncer": pooled}
                for name, measure in (("writes/s", _writes), ("connections/s", _connections)):
                    rates: dict[str, list[float]] = {path: [] for path in paths}
                    for _ in range(2):
                        for path, connector in paths.items():
                            rates[path].append(await measure(connector, clients, seconds))
                    means = {path: sum(r) / len(r) for path, r in rates.items()}
                    for path, values in rates.items():
                        shown = ", ".join(f"{v:,.0f}" for v in values)
                        print(f"{name} {path}: {shown} (mean {means[path]:,.0f})")
                    ratio = means["through pgBouncer"] / means["straight to the primary"]
                    print(f"{name}: pgBouncer / primary = {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.seconds, arguments.clients))
