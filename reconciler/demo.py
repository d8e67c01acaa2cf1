"""`make demo`: a local control plane, the operator, and the hippo cluster converging.

The control plane and the operator keep running afterwards (`make down` stops both), so that
you can look around with `kubectl --kubeconfig .envtest/kubeconfig`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import yaml

from reconciler.api import crd
from reconciler.envtest import daemon
from reconciler.envtest.process import free_port
from reconciler.runtime.client import JSON, Client, ConflictError
from reconciler.runtime.resources import (
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICES,
    STATEFUL_SETS,
)

NAMESPACE = "postgres-operator"
EXAMPLE = Path(__file__).resolve().parent.parent / "manifests" / "examples" / "hippo.yaml"
# The images PGO's installer names; nothing pulls them in this tier (pods run no containers).
_REGISTRY = "registry.developers.crunchydata.com/crunchydata"
IMAGES = {
    "RELATED_IMAGE_POSTGRES_16": f"{_REGISTRY}/crunchy-postgres:ubi9-16.9-2520",
    "RELATED_IMAGE_POSTGRES_17": f"{_REGISTRY}/crunchy-postgres:ubi9-17.5-2520",
    "RELATED_IMAGE_PGBACKREST": f"{_REGISTRY}/crunchy-pgbackrest:ubi9-2.54.2-2520",
}
CLUSTERS = crd.POSTGRES_CLUSTERS.resource
TIMEOUT = 60.0
T = TypeVar("T")


def start_operator(run_dir: Path, kubeconfig: Path) -> tuple[int, int]:
    """Start `reconciler run` in the background (pid file in the run directory, so `envtest
    down` stops it too); return its health and metrics ports."""
    pid_file = run_dir / "operator.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), 0)
            ports = (run_dir / "operator.ports").read_text().split()
            return int(ports[0]), int(ports[1])
    health, metrics = free_port(), free_port()
    env = {**os.environ, **IMAGES, "PGO_NAMESPACE": NAMESPACE}
    with (run_dir / "operator.log").open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "reconciler", "run",
                f"--kubeconfig={kubeconfig}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
                f"--metrics-bind-address=127.0.0.1:{metrics}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    pid_file.write_text(str(process.pid))
    (run_dir / "operator.ports").write_text(f"{health} {metrics}")
    return health, metrics


async def _install_crds(kubeconfig: Path) -> None:
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:
        await crd.install(kube, field_manager="reconciler-demo")


async def _converge(kubeconfig: Path) -> JSON:
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        with contextlib.suppress(ConflictError):
            await kube.create(NAMESPACES, namespace)
        hippo = yaml.safe_load(EXAMPLE.read_text())
        hippo["metadata"]["namespace"] = NAMESPACE
        await kube.apply(CLUSTERS, hippo, field_manager="kubectl")
        cluster: JSON = await _until(lambda: _ready(kube), "hippo to become Ready")
        await _show(kube, cluster)
        return cluster


async def _ready(kube: Client) -> JSON | None:
    cluster = await kube.get(CLUSTERS, "hippo", NAMESPACE)
    status = cluster.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    return cluster if ready and ready[0]["status"] == "True" else None


async def _until(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {TIMEOUT:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def _show(kube: Client, cluster: JSON) -> None:
    ready = next(c for c in cluster["status"]["conditions"] if c["type"] == "Ready")
    print(f"\npostgrescluster/hippo: Ready={ready['status']} ({ready['message']})")
    selector = "postgres-operator.crunchydata.com/cluster=hippo"
    for resource in (STATEFUL_SETS, PODS, SERVICES, SECRETS):
        names = [
            o["metadata"]["name"]
            for o in (await kube.list(resource, NAMESPACE, label_selector=selector)).items
        ]
        print(f"  {resource.plural:<14} {', '.join(sorted(names))}")


def main() -> None:
    """Start (or reuse) the control plane and the operator, then apply hippo."""
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("--dir", default=".envtest")
    run_dir = Path(arguments.parse_args().dir).resolve()
    started = time.monotonic()
    kubeconfig = daemon.up(run_dir)
    print(f"control plane ready in {time.monotonic() - started:.1f}s; kubeconfig: {kubeconfig}")
    asyncio.run(_install_crds(kubeconfig))
    health, metrics = start_operator(run_dir, kubeconfig)
    print(
        f"operator running: log {run_dir / 'operator.log'}, "
        f"http://127.0.0.1:{health}/readyz, http://127.0.0.1:{metrics}/metrics"
    )
    applied = time.monotonic()
    asyncio.run(_converge(kubeconfig))
    print(f"\nhippo Ready {time.monotonic() - applied:.1f}s after it was applied")
    print(f"explore: kubectl --kubeconfig {kubeconfig} -n {NAMESPACE} get postgrescluster,all")
    print("stop:    make down")


if __name__ == "__main__":
    main()
