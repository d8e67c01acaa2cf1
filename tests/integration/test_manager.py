"""Controllers, the manager's probes and metrics, and leader election, on the real API server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.process import free_port
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.controller import Controller, Request, Result
from reconciler.runtime.events import EventRecorder
from reconciler.runtime.leader import LeaderElector, LeadershipLost, LeaseTimings
from reconciler.runtime.manager import Manager
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    EVENTS,
    LEASES,
    SECRETS,
    Resource,
)

LOCAL = "127.0.0.1:0"
SELECTOR = "app=t"


@contextlib.asynccontextmanager
async def started(manager: Manager) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(manager.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def parent(namespace: str, name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "t"}},
    }


async def test_owns_reconciles_the_owner_when_a_child_is_deleted(
    kube: Client, namespace: str
) -> None:
    """A ConfigMap 'owns' a Secret; the reconcile recreates the Secret when it is missing."""
    manager = Manager(kube, namespaces=(namespace,), health_address="0", metrics_address="0")
    reconciled: list[Request] = []

    async def reconcile(request: Request) -> Result | None:
        reconciled.append(request)
        owner = manager.cache.get(
            CONFIG_MAPS, request.name, request.namespace, label_selector=SELECTOR
        )
        if owner is None:
            return None
        if manager.cache.get(SECRETS, request.name, request.namespace, label_selector=SELECTOR):
            return None
        meta = owner["metadata"]
        child = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "labels": {"app": "t"},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
        }
        await kube.apply(SECRETS, child, field_manager="test-controller")
        return None

    controller = (
        Controller("owner-test", reconcile, workers=2)
        .for_(CONFIG_MAPS, label_selector=SELECTOR)
        .owns(SECRETS, label_selector=SELECTOR)
    )
    await manager.add(controller)
    async with started(manager):
        await kube.create(CONFIG_MAPS, parent(namespace, "owner"))
        first = await wait_for(lambda: kube.get(SECRETS, "owner", namespace), timeout=15)
        reconciled.clear()
        await kube.delete(SECRETS, "owner", namespace)
        second = await wait_for(lambda: kube.get(SECRETS, "owner", namespace), timeout=15)
        assert second["metadata"]["uid"] != first["metadata"]["uid"]
        assert Request(namespace, "owner") in reconciled


async def test_errors_requeue_with_backoff_and_requeue_after_reconciles_again(
    kube: Client, namespace: str
) -> None:
    manager = Manager(kube, namespaces=(namespace,), health_address="0", metrics_address="0")
    calls: list[str] = []

    async def reconcile(request: Request) -> Result | None:
        calls.append(request.name)
        if request.name == "flaky" and calls.count("flaky") < 3:
            raise RuntimeError("not yet")
        if request.name == "periodic" and calls.count("periodic") < 3:
            return Result(requeue_after=0.2)
        return None

    await manager.add(
        Controller("retry-test", reconcile).for_(CONFIG_MAPS, label_selector=SELECTOR)
    )
    async with started(manager):
        await kube.create(CONFIG_MAPS, parent(namespace, "flaky"))
        await kube.create(CONFIG_MAPS, parent(namespace, "periodic"))

        async def settled() -> bool:
            return calls.count("flaky") == 3 and calls.count("periodic") == 3

        await wait_for(settled, timeout=15)


async def test_readyz_is_503_until_the_informers_sync_then_200_and_metrics_are_served(
    kube: Client, namespace: str
) -> None:
    # The watched kind does not exist yet, as when the operator starts before its CRDs.
    group = f"t{uuid.uuid4().hex[:8]}.reconciler.dev"
    widgets = Resource(group, "v1", "widgets", "Widget")
    manager = Manager(kube, namespaces=(namespace,), health_address=LOCAL, metrics_address=LOCAL)
    seen: list[Request] = []

    async def reconcile(request: Request) -> None:
        seen.append(request)

    await manager.add(Controller("widget-test", reconcile).for_(widgets))
    try:
        async with started(manager):
            health = await wait_for(lambda: _port(manager, "health"), timeout=10)
            status, _ = await http_get(f"http://127.0.0.1:{health}/readyz")
            assert status == 503
            assert (await http_get(f"http://127.0.0.1:{health}/healthz"))[0] == 200
            await kube.create(CUSTOM_RESOURCE_DEFINITIONS, _crd(group))

            async def ready() -> bool:
                return (await http_get(f"http://127.0.0.1:{health}/readyz"))[0] == 200

            await wait_for(ready, timeout=30)
            widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
            await wait_for(lambda: kube.create(widgets, widget, namespace), timeout=10)
            await wait_for(lambda: _true(Request(namespace, "w") in seen), timeout=10)

            status, text = await http_get(f"http://127.0.0.1:{manager.port('metrics')}/metrics")
            assert status == 200
            for name in (
                "controller_runtime_reconcile_total",
                "controller_runtime_reconcile_time_seconds_bucket",
                "workqueue_depth",
                "workqueue_adds_total",
                "workqueue_queue_duration_seconds_bucket",
                "workqueue_work_duration_seconds_bucket",
                "rest_client_requests_total",
                "rest_client_request_duration_seconds_bucket",
                "leader_election_master_status",
            ):
                assert name in text, name  # an election-less manager has no sample, only HELP
            assert (
                'controller_runtime_reconcile_total{controller="widget-test",result="success"}'
                in text
            )
    finally:
        await kube.delete(CUSTOM_RESOURCE_DEFINITIONS, f"widgets.{group}")


@pytest.mark.timeout(90)
async def test_one_manager_leads_and_the_other_takes_over_when_it_dies(
    kube: Client, namespace: str
) -> None:
    def elector(identity: str, *, release: bool) -> LeaderElector:
        return LeaderElector(
            kube, namespace=namespace, name="lease", identity=identity, release_on_cancel=release
        )

    first_election = elector("first", release=False)  # it will "crash": no release
    second_election = elector("second", release=True)
    first = Manager(kube, election=first_election, health_address="0", metrics_address="0")
    second = Manager(kube, election=second_election, health_address="0", metrics_address="0")

    async def holder() -> str:
        lease = await kube.get(LEASES, "lease", namespace)
        return str(lease["spec"].get("holderIdentity") or "")

    first_task = asyncio.create_task(first.run())
    try:
        await wait_for(lambda: _true(first_election.is_leader), timeout=10)
        async with started(second):
            for _ in range(3):  # the second stays a follower while the first renews
                await wait_for(
                    lambda: _true(second_election._observed_spec is not None), timeout=10
                )
                assert first_election.is_leader
                assert not second_election.is_leader
                assert await holder() == "first"
                await asyncio.sleep(second_election.timings.retry_period)
            first_task.cancel()
            killed = time.monotonic()
            await wait_for(lambda: _true(second_election.is_leader), timeout=25)
            assert time.monotonic() - killed < 20
            assert await holder() == "second"
        assert await holder() == "", "a clean shutdown releases the lease"
    finally:
        first_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first_task


async def test_losing_the_lease_cancels_every_controller(kube: Client, namespace: str) -> None:
    election = LeaderElector(
        kube,
        namespace=namespace,
        name="lease",
        identity="leader",
        timings=LeaseTimings(lease_duration=4, renew_deadline=2, retry_period=0.5),
    )
    manager = Manager(
        kube,
        namespaces=(namespace,),
        election=election,
        health_address="0",
        metrics_address="0",
    )
    in_progress = asyncio.Event()
    cancelled: list[Request] = []

    async def reconcile(request: Request) -> None:
        in_progress.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(request)
            raise

    await manager.add(Controller("stuck", reconcile).for_(CONFIG_MAPS, label_selector=SELECTOR))
    await kube.create(CONFIG_MAPS, parent(namespace, "busy"))
    task = asyncio.create_task(manager.run())
    try:
        await asyncio.wait_for(in_progress.wait(), 15)
        # Another candidate takes the Lease over (as after a partition): renewals now fail.
        await kube.patch(
            LEASES, "lease", {"spec": {"holderIdentity": "usurper"}}, namespace=namespace
        )
        with pytest.raises(LeadershipLost):
            await asyncio.wait_for(task, 15)
        assert cancelled == [Request(namespace, "busy")]
        assert not election.is_leader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, LeadershipLost):
            await task


async def test_events_are_recorded_and_repeats_aggregated(kube: Client, namespace: str) -> None:
    target = await kube.create(CONFIG_MAPS, parent(namespace, "target"))
    recorder = EventRecorder(kube, "test-controller")
    await recorder.event(target, "Warning", "SomethingOdd", "it happened")
    await recorder.event(target, "Warning", "SomethingOdd", "it happened")
    await recorder.event(target, "Normal", "Fine", "all good")
    events = (await kube.list(EVENTS, namespace)).items
    by_reason = {e["reason"]: e for e in events}
    assert len(events) == 2
    assert by_reason["SomethingOdd"]["count"] == 2
    assert by_reason["SomethingOdd"]["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert by_reason["Fine"]["type"] == "Normal"


@pytest.mark.timeout(90)
async def test_reconciler_run_elects_serves_and_stops_cleanly_on_sigterm(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    health, metrics_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler",
        "run",
        f"--kubeconfig={control_plane.kubeconfig}",
        f"--health-probe-bind-address=127.0.0.1:{health}",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        env={**os.environ, "PGO_NAMESPACE": namespace, "PGO_CONTROLLER_LEASE_NAME": "run-test"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def ready() -> bool:
            return (await http_get(f"http://127.0.0.1:{health}/readyz"))[0] == 200

        await wait_for(ready, timeout=30)
        lease = await wait_for(lambda: kube.get(LEASES, "run-test", namespace), timeout=15)
        assert lease["spec"]["holderIdentity"]
        status, text = await http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert 'leader_election_master_status{name="run-test"} 1.0' in text
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
        assert process.returncode == 0, stderr.decode()
        assert b'"acquired the lease"' in stderr, "logs are JSON lines when not on a terminal"
        lease = await kube.get(LEASES, "run-test", namespace)
        assert not lease["spec"].get("holderIdentity"), "the lease is released on SIGTERM"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_reconciler_run_rejects_an_invalid_setting(control_plane: ControlPlane) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler",
        "run",
        f"--kubeconfig={control_plane.kubeconfig}",
        env={**os.environ, "PGO_WORKERS": "zero"},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "PGO_WORKERS='zero'" in lines[0]
    assert "an integer greater than 0" in lines[0]


def _crd(group: str) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "listKind": "WidgetList",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


async def _port(manager: Manager, server: str) -> int | None:
    with contextlib.suppress(KeyError):
        return manager.port(server)
    return None


async def _true(value: bool) -> bool:
    return value
