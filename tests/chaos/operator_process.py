"""The operator as its own process (`reconciler run`), so that a scenario can `kill -9` it,
with its metrics read over HTTP: requests by method and resource, relists, leadership."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp
from reconciler_envtest import images
from reconciler_envtest.pytest_plugin import wait_for

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class OperatorProcess:
    """One operator process watching `namespace` only, electing its leader on a Lease there
    (or not at all), its log in `log_dir`."""

    def __init__(
        self, kubeconfig: Path, namespace: str, log_dir: Path, *, leader_elect: bool
    ) -> None:
        self.kubeconfig, self.namespace, self.log_dir = kubeconfig, namespace, log_dir
        self.leader_elect = leader_elect
        self.process: asyncio.subprocess.Process | None = None
        self.metrics_port = 0
        self.starts = 0

    async def start(self) -> None:
        """Start the process and wait until it serves its metrics."""
        self.metrics_port, health = _free_port(), _free_port()
        env = {
            **os.environ,
            **images.related_images(),
            "PGO_TARGET_NAMESPACE": self.namespace,
            "PGO_NAMESPACE": self.namespace,
            "PGO_WORKERS": "2",
        }
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"operator-{self.metrics_port}.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "reconciler", "run",
            "--kubeconfig", str(self.kubeconfig),
            "--health-probe-bind-address", f"127.0.0.1:{health}",
            "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
            "--leader-elect", str(self.leader_elect).lower(),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env,
        )  # fmt: skip
        log.close()

        async def serving() -> bool:
            try:
                await self.metrics()
            except (OSError, aiohttp.ClientError):
                return False
            return True

        await wait_for(serving, timeout=60, interval=0.2)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released, requests cut mid-flight."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None

    async def metrics(self) -> dict[str, float]:
        """Every sample of its /metrics, by name with labels as Prometheus writes them."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    async def writes(self, *, excluding: tuple[str, ...] = ("leases",)) -> float:
        """Write requests it sent (POST, PUT, PATCH, DELETE), apart from `excluding`."""
        total = 0.0
        for name, value in (await self.metrics()).items():
            if not name.startswith("rest_client_requests_total{"):
                continue
            method = name.split('method="', 1)[1].split('"', 1)[0]
            resource = name.split('resource="', 1)[1].split('"', 1)[0]
            if method in WRITES and not any(r in resource for r in excluding):
                total += value
        return total

    async def leading(self) -> bool:
        """Whether it holds its Lease (`leader_election_master_status`)."""
        samples = await self.metrics()
        return any(
            n.startswith("leader_election_master_status") and v == 1 for n, v in samples.items()
        )
