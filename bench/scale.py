"""Convergence at scale, the raw-request limit, steady state, memory and reaction latency.

    .venv/bin/python -m bench.scale --quick        # N = 10, 100; about 3 minutes
    .venv/bin/python -m bench.scale                # N = 10, 100, 500, 1000
    .venv/bin/python -m bench.scale --sizes 1000 --profile /tmp/p.txt   # py-spy, largest N

Everything runs against a local control plane (pods from the simulated node; no PostgreSQL).
The operator runs as its own process (`reconciler run`), so its RSS is its own and its requests
are read from its `/metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from reconciler_envtest import ControlPlane
from reconciler_envtest.process import free_port

from reconciler.api import crd
from reconciler.runtime.client import JSON, Client, ConflictError, NotFoundError
from reconciler.runtime.informer import Informer
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    ENDPOINTS,
    NAMESPACES,
    PERSISTENT_VOLUME_CLAIMS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFUL_SETS,
    Resource,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "hippo.yaml"
CLUSTERS = crd.POSTGRES_CLUSTERS.resource
LABEL = "postgres-operator.crunchydata.com/cluster"
CONCURRENCY = 50
KINDS: tuple[Resource, ...] = (
    SECRETS,
    CONFIG_MAPS,
    SERVICES,
    ENDPOINTS,
    SERVICE_ACCOUNTS,
    ROLES,
    ROLE_BINDINGS,
    PERSISTENT_VOLUME_CLAIMS,
    STATEFUL_SETS,
)
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Operator:
    """`reconciler run` as a child process, with its metrics and RSS."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the operator."""
        env = {
            **os.environ,
            "RELATED_IMAGE_POSTGRES_17": "example/postgres:17",
            "PGO_NAMESPACE": "default",
            "PGO_WORKERS": "2",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "reconciler", "run",
                    f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                    f"--metrics-bind-address=127.0.0.1:{self.metrics_port}",
                    "--health-probe-bind-address=0",
                ],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def profile(self, output: Path) -> subprocess.Popen[bytes]:
        """Sample the operator with py-spy (collapsed stacks) until the returned process is
        interrupted."""
        assert self.process is not None
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.process.pid),
             "--format", "raw", "--rate", "50", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None

    def rss_mib(self) -> float:
        """The operator's resident memory."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    async def metric_samples(self) -> dict[str, float]:
        """`name{labels}` -> value of the operator's metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    async def requests_by_verb(self) -> dict[str, float]:
        """Requests sent so far, by HTTP method (WATCH counted apart)."""
        verbs: dict[str, float] = {}
        for name, value in (await self.metric_samples()).items():
            if name.startswith("rest_client_requests_total{"):
                method = name.split('method="', 1)[1].split('"', 1)[0]
                verbs[method] = verbs.get(method, 0) + value
        return verbs

    async def reconciles(self) -> float:
        """Reconciles finished so far."""
        return sum(
            v
            for k, v in (await self.metric_samples()).items()
            if k.startswith("controller_runtime_reconcile_total{")
        )

    async def wait_ready(self) -> None:
        """Until its metrics answer."""
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                await self.metric_samples()
                return
            await asyncio.sleep(0.1)

    async def wait_idle(self, quiet: float = 3.0) -> None:
        """Until no reconcile finished for `quiet` seconds."""
        last, since = await self.reconciles(), time.monotonic()
        while time.monotonic() - since < quiet:
            await asyncio.sleep(0.25)
            now = await self.reconciles()
            if now != last:
                last, since = now, time.monotonic()


def _cluster(namespace: str, name: str) -> JSON:
    cluster: JSON = yaml.safe_load(EXAMPLE.read_text())
    cluster["metadata"].update(name=name, namespace=namespace)
    del cluster["spec"]["backups"]  # no pgBackRest yet: keep the object set the same for both
    return cluster


async def _bounded(jobs: list[Callable[[], Awaitable[Any]]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def _namespace(kube: Client, name: str) -> None:
    with contextlib.suppress(ConflictError):
        await kube.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )


@contextlib.asynccontextmanager
async def _watching(kube: Client, resource: Resource, namespace: str) -> AsyncIterator[Informer]:
    informer = Informer(kube, resource, namespace=namespace)
    task = asyncio.create_task(informer.run())
    await informer.wait_synced()
    try:
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _converged(cluster: JSON) -> bool:
    status = cluster.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    return (
        status.get("observedGeneration") == cluster["metadata"].get("generation")
        and bool(ready)
        and ready[0]["status"] == "True"
    )


async def converge(kube: Client, n: int) -> dict[str, float]:
    """Create `n` clusters at once; time until each is Ready at its current generation."""
    namespace = f"scale-{n}"
    await _namespace(kube, namespace)
    created: dict[str, float] = {}
    done: dict[str, float] = {}
    finished = asyncio.Event()

    async def observe(_: JSON | None, new: JSON | None) -> None:
        if new is not None and _converged(new):
            name = new["metadata"]["name"]
            done.setdefault(name, time.monotonic())
            if len(done) == n:
                finished.set()

    async with _watching(kube, CLUSTERS, namespace) as informer:
        await informer.add_handler(observe)
        started = time.monotonic()

        async def create(name: str) -> None:
            created[name] = time.monotonic()
            await kube.create(CLUSTERS, _cluster(namespace, name))

        await _bounded([functools.partial(create, f"c{i:04d}") for i in range(n)])
        await asyncio.wait_for(finished.wait(), timeout=1800)
        elapsed = max(done.values()) - started
    latencies = [done[name] - created[name] for name in created]
    return {
        "n": n,
        "seconds": elapsed,
        "clusters_per_second": n / elapsed,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
    }


def _strip(obj: JSON, namespace: str) -> JSON:
    fresh = copy.deepcopy(obj)
    meta = fresh["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "ownerReferences", "managedFields",
                "generation", "finalizers", "annotations"):  # fmt: skip
        meta.pop(key, None)
    meta["namespace"] = namespace
    fresh.pop("status", None)
    spec = fresh.get("spec") or {}
    for key in ("clusterIPs", "volumeName", "ipFamilyPolicy", "ipFamilies"):
        spec.pop(key, None)
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
    return fresh


async def limit(kube: Client, n: int, template_namespace: str) -> float:
    """Seconds to create, with raw concurrent requests, what the operator made for n clusters."""
    objects: list[tuple[Resource, JSON]] = []
    for resource in KINDS:
        listed = await kube.list(resource, template_namespace, label_selector=f"{LABEL}=c0000")
        # Only what the operator made: Kubernetes adds Endpoints of its own for some Services.
        objects += [(resource, o) for o in listed.items if o["metadata"].get("ownerReferences")]
    # The PostgresCluster objects themselves are left out: the operator would reconcile them.
    namespace = f"limit-{n}"
    await _namespace(kube, namespace)
    jobs: list[Callable[[], Awaitable[Any]]] = []
    for i in range(n):
        for resource, obj in objects:
            text = json.dumps(_strip(obj, namespace)).replace('"c0000', f'"c{i:04d}')
            jobs.append(functools.partial(kube.create, resource, json.loads(text)))
    started = time.monotonic()
    await _bounded(jobs)
    elapsed = time.monotonic() - started
    # The copies carry our labels, so the operator caches them: remove them before memory and
    # latency are measured, or those would count objects that no cluster manages.
    await _delete_namespace(kube, namespace)
    return elapsed


async def _delete_namespace(kube: Client, name: str, timeout: float = 900) -> None:
    """Delete a namespace and wait until the namespace controller has emptied and removed it."""
    await kube.delete(NAMESPACES, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await kube.get(NAMESPACES, name)
        except NotFoundError:
            return
        await asyncio.sleep(1)
    raise TimeoutError(f"namespace {name} still exists after {timeout:.0f} s")


async def reaction(kube: Client, namespace: str, samples: int, first: int) -> dict[str, float]:
    """Time from replicas 1 -> 2 to the operator's new StatefulSet, for `samples` clusters."""
    latencies: list[float] = []
    created: dict[str, asyncio.Event] = {}

    async def observe(old: JSON | None, new: JSON | None) -> None:
        if old is None and new is not None:
            cluster = new["metadata"]["labels"].get(LABEL, "")
            if cluster in created:
                created[cluster].set()

    async with _watching(kube, STATEFUL_SETS, namespace) as informer:
        await informer.add_handler(observe)
        for i in range(first, first + samples):
            name = f"c{i:04d}"
            created[name] = asyncio.Event()
            started = time.monotonic()
            await kube.patch(
                CLUSTERS,
                name,
                [{"op": "replace", "path": "/spec/instances/0/replicas", "value": 2}],
                namespace=namespace,
                patch_type="json",
            )
            await asyncio.wait_for(created[name].wait(), timeout=60)
            latencies.append(time.monotonic() - started)
    return {
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
    }


async def _print_reaction(
    kube: Client, namespace: str, *, samples: int, first: int, when: str
) -> None:
    latency = await reaction(kube, namespace, samples, first=first)
    print(
        f"reaction, {when}: p50 {latency['p50'] * 1000:.0f} ms "
        f"p99 {latency['p99'] * 1000:.0f} ms max {latency['max'] * 1000:.0f} ms"
    )


async def unrelated(kube: Client, namespace: str, count: int) -> None:
    """`count` Secrets and ConfigMaps without our labels, half each."""
    jobs: list[Callable[[], Awaitable[Any]]] = []
    for i in range(count // 2):
        secret = (SECRETS, "Secret", {"data": {"k": "dmFsdWUK" * 64}})
        config_map = (CONFIG_MAPS, "ConfigMap", {"data": {"k": "value" * 100}})
        for resource, kind, body in (secret, config_map):
            obj = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": f"u{i}", "namespace": namespace},
                **body,
            }
            jobs.append(functools.partial(kube.create, resource, obj))
    await _bounded(jobs)


def hot_spots(collapsed: Path, top: int = 15) -> list[tuple[str, float]]:
    """The functions with the largest share of samples including their callees, from py-spy's
    collapsed stacks (`frame;frame;... count`); asyncio's own loop frames are left out."""
    total = 0
    inclusive: dict[str, int] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in set(stack.split(";")):
            if "asyncio/" not in frame and "<module>" not in frame:
                inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])[:top]
    return [(frame, count / total) for frame, count in ranked]


def _difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


async def main(quick: bool, sizes: list[int] | None = None, profile: Path | None = None) -> None:
    """Run every measurement and print a summary."""
    sizes = sizes or ([10, 100] if quick else [10, 100, 500, 1000])
    steady_seconds = 30 if quick else 300
    unrelated_count = 2000 if quick else 10000
    samples = 20 if quick else 50
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        async with (
            ControlPlane(Path(scratch) / "plane") as plane,
            await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="bench") as kube,
        ):
            await crd.install(kube, field_manager="bench")
            operator = Operator(plane.kubeconfig, Path(scratch) / "operator.log")
            operator.start()
            try:
                await operator.wait_ready()
                await operator.wait_idle()
                rss = {0: operator.rss_mib()}
                print(f"RSS at N=0: {rss[0]:.1f} MiB")
                managed = 0
                for n in sizes:
                    sampler = operator.profile(profile) if profile and n == sizes[-1] else None
                    result = await converge(kube, n)
                    if sampler is not None:
                        sampler.send_signal(signal.SIGINT)
                        sampler.wait(60)
                    await operator.wait_idle()
                    managed += n
                    rss[managed] = operator.rss_mib()
                    raw = await limit(kube, n, f"scale-{n}")
                    print(
                        f"N={n}: converged in {result['seconds']:.1f}s "
                        f"({result['clusters_per_second']:.1f} clusters/s), per cluster "
                        f"p50 {result['p50']:.2f}s p99 {result['p99']:.2f}s; raw-request limit "
                        f"{raw:.1f}s; ratio {result['seconds'] / raw:.2f}; "
                        f"RSS {rss[managed]:.1f} MiB with {managed} clusters"
                    )
                biggest = f"scale-{sizes[-1]}"
                await _print_reaction(
                    kube, biggest, samples=samples, first=0, when=f"{managed} clusters"
                )
                await operator.wait_idle()  # the new instances' pods settle first
                before = await operator.requests_by_verb()
                await asyncio.sleep(steady_seconds)  # the measured interval itself, not a wait
                during = _difference(await operator.requests_by_verb(), before)
                operator.stop()
                operator.start()  # a forced full resync: a fresh cache, every cluster reconciled
                await operator.wait_ready()
                await operator.wait_idle(quiet=5.0)
                resync = await operator.requests_by_verb()
                print(
                    f"steady state, {steady_seconds}s: {during or 'no requests'}; "
                    f"restart + full resync of {managed} clusters: {resync}; "
                    f"RSS after the resync {operator.rss_mib():.1f} MiB"
                )
                if profile is not None:
                    print(f"profile of convergence at N={sizes[-1]} (share of samples):")
                    for frame, share in hot_spots(profile):
                        print(f"  {share:6.1%}  {frame}")
                await _print_reaction(
                    kube, biggest, samples=samples, first=samples, when="after the restart"
                )
                await operator.wait_idle()
                base = operator.rss_mib()
                await unrelated(kube, biggest, unrelated_count)
                await asyncio.sleep(5)  # let any (wrongly) watching informer ingest them
                print(
                    f"RSS with {unrelated_count} unrelated Secrets/ConfigMaps: "
                    f"{operator.rss_mib():.1f} MiB (was {base:.1f})"
                )
            finally:
                operator.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", help="cluster counts to create in turn")
    parser.add_argument("--profile", type=Path, help="py-spy's samples of the largest convergence")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.sizes, arguments.profile))
