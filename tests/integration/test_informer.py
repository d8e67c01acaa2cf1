"""The informer against a real API server: events, scoping, restarts and expired versions."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from reconciler_envtest.controlplane import ControlPlane
from reconciler_envtest.pytest_plugin import wait_for

from reconciler.runtime.client import JSON, Client
from reconciler.runtime.informer import Informer
from reconciler.runtime.resources import CONFIG_MAPS

# Every test object carries this label: the namespaces also hold kube-root-ca.crt.
TEST_LABELS = {"app": "t"}
SELECTOR = "app=t"


def config_map(namespace: str, name: str, labels: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or TEST_LABELS},
        "data": {"value": "1"},
    }


class Recorder:
    """A handler that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def __call__(self, old: JSON | None, new: JSON | None) -> None:
        kind = "add" if old is None else "delete" if new is None else "update"
        obj = new if new is not None else old
        assert obj is not None
        self.events.append((kind, obj["metadata"]["name"]))


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Informer]:
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.wait_synced(), 30)
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def names(informer: Informer) -> set[str]:
    return {o["metadata"]["name"] for o in informer.store.list()}


async def test_informer_sees_create_update_delete(kube: Client, namespace: str) -> None:
    await kube.create(CONFIG_MAPS, config_map(namespace, "before"))
    recorder = Recorder()
    informer = Informer(kube, CONFIG_MAPS, namespace=namespace, label_selector=SELECTOR)
    await informer.add_handler(recorder)
    async with running(informer):
        assert recorder.events == [("add", "before")]
        await kube.create(CONFIG_MAPS, config_map(namespace, "created"))
        await kube.patch(CONFIG_MAPS, "created", {"data": {"value": "2"}}, namespace=namespace)
        await kube.delete(CONFIG_MAPS, "before", namespace)
        await wait_for(lambda: _true(len(recorder.events) == 4), timeout=10)
        assert recorder.events[1:] == [
            ("add", "created"),
            ("update", "created"),
            ("delete", "before"),
        ]
        cached = informer.store.get(f"{namespace}/created")
        assert cached is not None
        assert cached["data"] == {"value": "2"}
        assert "managedFields" not in cached["metadata"]
        assert names(informer) == {"created"}


async def test_scoped_informer_holds_nothing_outside_its_selector(
    kube: Client, namespace: str
) -> None:
    inside = {"app": "in"}
    await kube.create(CONFIG_MAPS, config_map(namespace, "in-1", inside))
    await kube.create(CONFIG_MAPS, config_map(namespace, "out-1", {"app": "out"}))
    await kube.create(CONFIG_MAPS, config_map("default", f"{namespace}-in", inside))
    try:
        recorder = Recorder()
        informer = Informer(kube, CONFIG_MAPS, namespace=namespace, label_selector="app=in")
        await informer.add_handler(recorder)
        async with running(informer):
            assert names(informer) == {"in-1"}
            # An object that stops matching leaves the store (the server sends a deletion).
            await kube.patch(
                CONFIG_MAPS, "in-1", {"metadata": {"labels": {"app": "out"}}}, namespace=namespace
            )
            await kube.create(CONFIG_MAPS, config_map(namespace, "out-2", {"app": "out"}))
            await kube.create(CONFIG_MAPS, config_map(namespace, "in-2", inside))
            await wait_for(lambda: _true(names(informer) == {"in-2"}), timeout=10)
            assert recorder.events == [("add", "in-1"), ("delete", "in-1"), ("add", "in-2")]
            assert all(o["metadata"]["namespace"] == namespace for o in informer.store.list())
    finally:
        await kube.delete(CONFIG_MAPS, f"{namespace}-in", "default")


@pytest.mark.timeout(120)
async def test_informer_survives_an_apiserver_restart(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    for name in ("kept", "changed", "deleted"):
        await kube.create(CONFIG_MAPS, config_map(namespace, name))
    informer = Informer(kube, CONFIG_MAPS, namespace=namespace, label_selector=SELECTOR)
    async with running(informer):
        await control_plane.stop_apiserver()
        try:
            await asyncio.sleep(0)  # let the informer notice the broken watch
        finally:
            await control_plane.start_apiserver()
        await kube.patch(CONFIG_MAPS, "changed", {"data": {"value": "2"}}, namespace=namespace)
        await kube.delete(CONFIG_MAPS, "deleted", namespace)
        await kube.create(CONFIG_MAPS, config_map(namespace, "new"))
        expected = {"kept": "1", "changed": "2", "new": "1"}

        async def converged() -> bool:
            return {o["metadata"]["name"]: o["data"]["value"] for o in informer.store.list()} == (
                expected
            )

        await wait_for(converged, timeout=60)


@pytest.mark.timeout(120)
async def test_expired_version_after_compaction_relists_and_converges(
    kube: Client, namespace: str, control_plane: ControlPlane
) -> None:
    for name in ("kept", "changed", "deleted"):
        await kube.create(CONFIG_MAPS, config_map(namespace, name))
    recorder = Recorder()
    informer = Informer(kube, CONFIG_MAPS, namespace=namespace, label_selector=SELECTOR)
    await informer.add_handler(recorder)
    async with running(informer):
        pass  # synced at some version; now stopped, so it misses what follows
    assert informer.relists == 1
    await kube.patch(CONFIG_MAPS, "changed", {"data": {"value": "2"}}, namespace=namespace)
    await kube.delete(CONFIG_MAPS, "deleted", namespace)
    await kube.create(CONFIG_MAPS, config_map(namespace, "new"))
    await compact_etcd(control_plane.etcd_url)
    # The restarted apiserver's watch cache starts after the compaction: the informer's version
    # is gone from etcd and from the cache alike, so resuming the watch gets 410 Gone.
    await control_plane.stop_apiserver()
    await control_plane.start_apiserver()
    recorder.events.clear()
    async with running(informer):
        await wait_for(lambda: _true(informer.relists == 2), timeout=60)
        assert names(informer) == {"kept", "changed", "new"}
        assert sorted(recorder.events) == [
            ("add", "new"),
            ("delete", "deleted"),  # missed while away, delivered after the relist
            ("update", "changed"),
        ]


async def compact_etcd(etcd_url: str) -> None:
    """Compact etcd's history up to its current revision."""
    async with aiohttp.ClientSession() as session:
        key = base64.b64encode(b"/registry/namespaces/default").decode()
        async with session.post(f"{etcd_url}/v3/kv/range", json={"key": key}) as response:
            revision = (await response.json())["header"]["revision"]
        async with session.post(
            f"{etcd_url}/v3/kv/compaction", json={"revision": revision, "physical": True}
        ) as response:
            assert response.status == 200, await response.text()


async def _true(value: bool) -> bool:
    return value
