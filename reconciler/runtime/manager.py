"""The manager: runs the shared cache, elects a leader, runs controllers while leading, and
serves `/healthz`, `/readyz` (ready once every informer has synced) and `/metrics`.

Informers run on every replica, so a standby is warm and ready; controllers run only on the
leader, and all of them are cancelled when leadership is lost (`run` then raises
`LeadershipLost`, and the process should exit, as controller-runtime's does).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from reconciler.runtime import metrics
from reconciler.runtime.cache import Cache
from reconciler.runtime.client import Client
from reconciler.runtime.controller import Controller
from reconciler.runtime.leader import LeaderElector, LeadershipLost
from reconciler.runtime.workqueue import Clock

log = structlog.get_logger(__name__)


def parse_address(address: str) -> tuple[str | None, int]:
    """`host:port` or `:port` (every interface) as controller-runtime's flags take them."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{address!r} is not [host]:port")
    return (host.strip("[]") or None), int(port)


class Manager:
    """Owns the cache, the controllers, the leader election and the probe/metrics servers."""

    def __init__(
        self,
        client: Client,
        *,
        namespaces: tuple[str, ...] = (),
        election: LeaderElector | None = None,
        health_address: str = ":8081",
        metrics_address: str = ":8080",
        clock: Clock = time.monotonic,
    ) -> None:
        self.client = client
        self.cache = Cache(client, namespaces=namespaces, clock=clock)
        self.election = election
        self.controllers: list[Controller] = []
        self._addresses = {"health": health_address, "metrics": metrics_address}
        self._runners: dict[str, web.AppRunner] = {}

    async def add(self, controller: Controller) -> None:
        """Register a controller: its watches join the shared cache now; it runs when leading."""
        await controller.bind(self.cache)
        self.controllers.append(controller)

    @property
    def ready(self) -> bool:
        """Whether every informer of the cache has synced."""
        return self.cache.synced

    def port(self, server: str) -> int:
        """The port the `health` or `metrics` server listens on (useful with port 0)."""
        host_port = self._runners[server].addresses[0]
        return int(host_port[1])

    async def run(self) -> None:
        """Serve, cache, elect and reconcile until cancelled or leadership is lost."""
        try:
            await self._serve()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.cache.run(), name="cache")
                if self.election is None:
                    group.create_task(self._lead(), name="controllers")
                else:
                    group.create_task(self.election.run(self._lead), name="leader-election")
        except BaseExceptionGroup as errors:
            lost = errors.subgroup(LeadershipLost)
            if lost is not None:
                raise lost.exceptions[0] from None
            raise
        finally:
            for runner in self._runners.values():
                await runner.cleanup()
            self._runners.clear()
            log.info("manager stopped")

    async def _lead(self) -> None:
        log.info("starting controllers", controllers=[c.name for c in self.controllers])
        async with asyncio.TaskGroup() as group:
            for controller in self.controllers:
                group.create_task(controller.run(self.cache), name=controller.name)
            # With no controller registered, hold leadership until cancelled all the same.
            group.create_task(asyncio.Event().wait(), name="hold")

    async def _serve(self) -> None:
        health = web.Application()
        health.router.add_get("/healthz", self._healthz)
        health.router.add_get("/readyz", self._readyz)
        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", self._metrics)
        for name, app in (("health", health), ("metrics", metrics_app)):
            address = self._addresses[name]
            if address == "0":  # "0" turns the server off, as in controller-runtime
                continue
            host, port = parse_address(address)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            self._runners[name] = runner
            await web.TCPSite(runner, host, port).start()
            log.info("serving", server=name, address=runner.addresses[0])

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="ok")
        return web.Response(status=503, text="informers have not synced")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
