"""`reconciler run`: the operator process. Builds the manager, registers the controllers,
and runs until SIGTERM (or SIGINT), shutting down within 20 seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable

import structlog

from reconciler import __version__
from reconciler.config import Settings
from reconciler.pgupgrade import controller as pgupgrade
from reconciler.postgrescluster import controller as postgrescluster
from reconciler.runtime import events, heap, leader, rbac
from reconciler.runtime.client import Client
from reconciler.runtime.leader import LeaderElector
from reconciler.runtime.manager import Manager

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT = 20.0

Setup = Callable[[Manager, Settings], Awaitable[None]]
# The operator's controllers: each entry registers one controller with the manager
# (`await manager.add(Controller(...).for_(...))`). Append the setup of a new controller here.
CONTROLLERS: list[Setup] = [postgrescluster.setup, pgupgrade.setup]
# Every permission the process needs: the runtime's, then each controller's.
RULES = (*leader.RULES, *events.RULES, *postgrescluster.RULES, *pgupgrade.RULES)
CLUSTER_ROLE = "postgres-operator"


def cluster_role_yaml() -> str:
    """`manifests/rbac/base/role.yaml`: the operator's ClusterRole, rendered from `RULES`."""
    header = (
        "Generated from the RULES the code declares (`reconciler rbac --write FILE`); do not\n"
        "edit. The namespaced installation (../namespaced) turns it into a Role."
    )
    return rbac.role_yaml(CLUSTER_ROLE, RULES, header)


async def run(
    settings: Settings,
    *,
    kubeconfig: str | None,
    health_address: str,
    metrics_address: str,
) -> int:
    """Run the operator until a signal; return the process exit code."""
    async with await Client.from_kubeconfig(
        kubeconfig, user_agent=f"reconciler/{__version__}"
    ) as client:
        election = None
        if settings.leader_elect:
            election = LeaderElector(
                client,
                namespace=settings.namespace,
                name=settings.lease_name,
                identity=f"{socket.gethostname()}_{uuid.uuid4()}",
            )
        manager = Manager(
            client,
            namespaces=settings.target_namespaces,
            election=election,
            health_address=health_address,
            metrics_address=metrics_address,
        )
        for setup in CONTROLLERS:
            await setup(manager, settings)
        collector = asyncio.create_task(heap.keep_frozen(), name="heap")
        try:
            return await _until_signal(manager)
        finally:
            collector.cancel()


async def _until_signal(manager: Manager) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    main = asyncio.create_task(manager.run(), name="manager")
    stopping = asyncio.create_task(stop.wait(), name="signal")
    try:
        await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            log.info("signal received; shutting down", pid=os.getpid())
            main.cancel()
            done, _ = await asyncio.wait({main}, timeout=SHUTDOWN_TIMEOUT)
            if not done:
                log.error("shutdown did not finish in time", seconds=SHUTDOWN_TIMEOUT)
                return 1
            return 0
        main.result()  # raises what stopped the manager (leadership lost, a crash)
        return 0
    finally:
        stopping.cancel()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)
