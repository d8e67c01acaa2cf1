"""`make demo`: a local control plane with a node, and a workload converging on it.

The control plane keeps running afterwards (`make down` stops it), so that you can look around
with `kubectl --kubeconfig .envtest/kubeconfig`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

from reconciler.envtest import daemon
from reconciler.runtime.client import JSON, Client, ConflictError
from reconciler.runtime.resources import NAMESPACES, PODS, STATEFUL_SETS

NAMESPACE = "demo"


def sample_statefulset() -> JSON:
    """A two-replica StatefulSet with a volume claim per replica."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "sample", "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "serviceName": "sample",
            "selector": {"matchLabels": {"app": "sample"}},
            "template": {
                "metadata": {"labels": {"app": "sample"}},
                "spec": {"containers": [{"name": "main", "image": "example/sample:1"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


async def _converge(kubeconfig: Path) -> list[JSON]:
    async with await Client.from_kubeconfig(str(kubeconfig), user_agent="reconciler-demo") as kube:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        for resource, obj in ((NAMESPACES, namespace), (STATEFUL_SETS, sample_statefulset())):
            with contextlib.suppress(ConflictError):
                await kube.create(resource, obj)
        deadline = time.monotonic() + 60
        while True:
            pods = (await kube.list(PODS, NAMESPACE, label_selector="app=sample")).items
            if sum(p.get("status", {}).get("phase") == "Running" for p in pods) == 2:
                return pods
            if time.monotonic() > deadline:
                raise TimeoutError("the sample StatefulSet's pods were not Running within 60s")
            await asyncio.sleep(0.2)


def main() -> None:
    """Start (or reuse) the control plane and show the sample's pods Running."""
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("--dir", default=".envtest")
    run_dir = Path(arguments.parse_args().dir)
    started = time.monotonic()
    kubeconfig = daemon.up(run_dir)
    print(f"control plane ready in {time.monotonic() - started:.1f}s; kubeconfig: {kubeconfig}")
    pods = asyncio.run(_converge(kubeconfig))
    print(f"\n{'POD':<12}{'PHASE':<10}{'IP':<14}NODE")
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        status = pod["status"]
        print(
            f"{pod['metadata']['name']:<12}{status['phase']:<10}{status['podIP']:<14}"
            f"{pod['spec']['nodeName']}"
        )
    print(f"\nexplore: kubectl --kubeconfig {kubeconfig} get all -A\nstop:    make down")


if __name__ == "__main__":
    main()
