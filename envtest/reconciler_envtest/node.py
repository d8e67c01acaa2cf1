"""A node for the local control plane: a Node that stays Ready, pods that run, volumes that bind.

This plays the parts a kubelet and a CSI driver play in a real cluster. Claims of the default
StorageClass get a directory-backed volume. Pods bound to the node are, by default, only
reported Running and Ready (Job pods Succeeded) without running anything: the integration tier.
Given a `Kubelet` (the e2e tier), they run for real as processes (see `kubelet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from reconciler.postgrescluster.node_loss import HOSTNAME_LABEL, volume_node
from reconciler.runtime import quantity
from reconciler.runtime.client import JSON, ApiError, Client, ConflictError, NotFoundError
from reconciler.runtime.informer import Informer
from reconciler.runtime.resources import (
    LEASES,
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
)
from reconciler_envtest import disks
from reconciler_envtest.binaries import KUBERNETES_VERSION
from reconciler_envtest.kubelet import Kubelet
from reconciler_envtest.kubelet_api import KubeletAPI

log = structlog.get_logger(__name__)

STORAGE_CLASS = "local"
PROVISIONER = "envtest.reconciler.dev/local"
# Volumes on one node's disk, as local-path-provisioner makes them: the claim waits for its
# first pod to be scheduled, the volume is made on that pod's node and binds every later pod
# of the claim to it (`spec.nodeAffinity`). Only the nodes added with `ControlPlane.add_node`
# (tests of node loss) make them; the default class above stays node-less.
NODE_LOCAL_STORAGE_CLASS = "local-node"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
# A Job's pod exits 0 unless the pod carries this annotation with another exit code.
EXIT_CODE_ANNOTATION = "envtest.reconciler.dev/exit-code"
LEASE_DURATION_SECONDS = 40
RENEW_INTERVAL = 10.0
_MANAGER = "envtest-node"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _microtime() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PodAddresses:
    """Hands out pod IPs from a loopback range, one per pod UID, reused after deletion."""

    def __init__(self, network: str) -> None:
        self._hosts: Iterator[ipaddress.IPv4Address] = ipaddress.IPv4Network(network).hosts()
        self._free: list[str] = []
        self._by_uid: dict[str, str] = {}

    def get(self, uid: str) -> str:
        """The address of the pod, allocating one on first use."""
        if uid not in self._by_uid:
            self._by_uid[uid] = self._free.pop() if self._free else str(next(self._hosts))
        return self._by_uid[uid]

    def release(self, uid: str) -> None:
        """Return the pod's address to the pool."""
        if (address := self._by_uid.pop(uid, None)) is not None:
            self._free.append(address)


def node_object(name: str, labels: dict[str, str] | None = None) -> JSON:
    """The Node as a kubelet would register it, Ready, with room for many pods."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                **(labels or {}),
                HOSTNAME_LABEL: name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": "local",
            },
        },
        "spec": {},
    }


def node_status(address: str, kubelet_port: int = 0) -> JSON:
    """The Node's status: Ready, with capacity for the benchmarks' thousands of pods, and
    where the API server reaches its kubelet API (the process node's only)."""
    now = _now()
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "5000", "ephemeral-storage": "1Ti"}
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    return {
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": address}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for kind, status, reason in conditions
            ],
            "nodeInfo": {
                "kubeletVersion": f"v{KUBERNETES_VERSION}",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "envtest://1",
                "kernelVersion": "",
                "osImage": "envtest",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }


def storage_class() -> JSON:
    """The default StorageClass, provisioned by this node's directory-backed volumes."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
    }


def node_local_storage_class() -> JSON:
    """The StorageClass of node-bound volumes (`NODE_LOCAL_STORAGE_CLASS`)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": NODE_LOCAL_STORAGE_CLASS},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


def _is_job_pod(pod: JSON) -> bool:
    owners = pod["metadata"].get("ownerReferences") or []
    return any(o.get("kind") == "Job" and o.get("controller") for o in owners)


def pod_status(pod: JSON, pod_ip: str, host_ip: str) -> JSON:
    """The status a kubelet reports for the pod once its containers started (or finished)."""
    now = _now()
    spec = pod["spec"]
    finished = _is_job_pod(pod)
    annotations = pod["metadata"].get("annotations") or {}
    exit_code = int(annotations.get(EXIT_CODE_ANNOTATION, "0")) if finished else 0
    ready = "False" if finished else "True"

    def container_status(container: JSON, *, done: bool, code: int = 0) -> JSON:
        state: JSON
        if done:
            state = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
        else:
            state = {"running": {"startedAt": now}}
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": f"envtest://{pod['metadata']['uid']}/{container['name']}",
            "ready": not done,
            "started": not done,
            "restartCount": 0,
            "state": state,
        }

    condition_names = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]
    conditions += [
        {
            "type": name,
            "status": ready if name in ("ContainersReady", "Ready") else "True",
            "lastTransitionTime": now,
        }
        for name in condition_names
    ]
    phase = ("Succeeded" if exit_code == 0 else "Failed") if finished else "Running"
    return {
        "status": {
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "initContainerStatuses": [
                container_status(c, done=True) for c in spec.get("initContainers") or []
            ],
            "containerStatuses": [
                container_status(c, done=finished, code=exit_code) for c in spec["containers"]
            ],
        }
    }


def persistent_volume(claim: JSON, volumes_dir: Path, node: str | None = None) -> JSON:
    """A directory-backed volume bound in advance to `claim`; on `node`'s disk alone when given."""
    meta = claim["metadata"]
    name = f"pvc-{meta['uid']}"
    spec = claim["spec"]
    volume: JSON = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName") or STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "hostPath": {"path": str(volumes_dir / name), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    if node is not None:
        term = {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}
        volume["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
    return volume


class NodeAgent:
    """Runs the node's loops: heartbeat, pod lifecycle and volume provisioning."""

    def __init__(
        self,
        client: Client,
        *,
        name: str,
        volumes_dir: Path,
        host_ip: str = "127.0.0.1",
        pod_network: str = "127.1.0.0/16",
        kubelet: Kubelet | None = None,
        kubelet_api: KubeletAPI | None = None,
        labels: dict[str, str] | None = None,
        node_local_only: bool = False,
    ) -> None:
        """`node_local_only`: a node added beside the first (`ControlPlane.add_node`): it
        shares the first node's kubelet (started and stopped by that node), and provisions
        only the node-bound volumes of the claims scheduled onto it."""
        self.client = client
        self.kubelet = kubelet
        self.kubelet_api = kubelet_api
        self.labels = labels or {}
        self.node_local_only = node_local_only
        self.name = name
        self.volumes_dir = volumes_dir
        self.host_ip = host_ip
        self.addresses = PodAddresses(pod_network)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Register the node and its StorageClass, then start the loops."""
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        if self.kubelet is not None and not self.node_local_only:
            await self.kubelet.start()  # first: the API listens on the bridge it creates
        if self.kubelet_api is not None and not self.node_local_only:
            await self.kubelet_api.start()
        with contextlib.suppress(ConflictError):
            await self.client.create(NODES, node_object(self.name, self.labels))
        await self._report_status()
        with contextlib.suppress(ConflictError):
            await self.client.create(
                STORAGE_CLASSES,
                node_local_storage_class() if self.node_local_only else storage_class(),
            )
        pods = Informer(self.client, PODS, field_selector=f"spec.nodeName={self.name}")
        claims = Informer(self.client, PERSISTENT_VOLUME_CLAIMS)
        volumes = Informer(self.client, PERSISTENT_VOLUMES)
        await pods.add_handler(self.kubelet.on_pod if self.kubelet else self._on_pod)
        await claims.add_handler(self._on_claim)
        await volumes.add_handler(self._on_volume)
        loops = [self._heartbeat(), pods.run(), claims.run(), volumes.run()]
        self._tasks = [asyncio.create_task(loop) for loop in loops]

    async def stop(self) -> None:
        """Stop the loops; the Node stays registered (it simply stops renewing its Lease)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.kubelet is not None and self.node_local_only:
            await self.kubelet.lose_pods(self.name)
        if self.kubelet_api is not None and not self.node_local_only:
            await self.kubelet_api.stop()
        if self.kubelet is not None and not self.node_local_only:
            await self.kubelet.stop()
        # The volumes' filesystems (tmpfs in the e2e tier) go with the node: mounted, the run
        # directory could not be removed.
        if self.volumes_dir.exists():
            for directory in self.volumes_dir.iterdir():
                with contextlib.suppress(disks.DiskError):
                    disks.unstage(directory)

    async def _report_status(self) -> None:
        port = self.kubelet_api.port if self.kubelet_api is not None else 0
        status = node_status(self.host_ip, port)
        await self.client.patch(NODES, self.name, status, subresource="status")

    async def _heartbeat(self) -> None:
        status_every = 6  # a full status report every minute, a Lease renewal every 10 s
        beat = 0
        while True:
            try:
                await self._renew_lease()
                if beat % status_every == 0:
                    await self._report_status()
            except (ApiError, ConnectionError) as error:
                log.debug("envtest node heartbeat failed", error=repr(error))
            beat += 1
            await asyncio.sleep(RENEW_INTERVAL)

    async def _renew_lease(self) -> None:
        lease: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": _microtime(),
            },
        }
        await self.client.apply(LEASES, lease, field_manager=_MANAGER)

    async def _on_pod(self, old: JSON | None, pod: JSON | None) -> None:
        if pod is None:
            assert old is not None
            self.addresses.release(old["metadata"]["uid"])
            return
        meta = pod["metadata"]
        try:
            if meta.get("deletionTimestamp"):
                # The containers "stop" at once; then the kubelet's final delete.
                await self.client.delete(
                    PODS, meta["name"], meta["namespace"], uid=meta["uid"], grace_period_seconds=0
                )
            elif not (pod.get("status") or {}).get("startTime"):
                status = pod_status(pod, self.addresses.get(meta["uid"]), self.host_ip)
                await self.client.patch(
                    PODS, meta["name"], status, namespace=meta["namespace"], subresource="status"
                )
        except (NotFoundError, ConflictError):
            pass  # deleted or replaced meanwhile; the watch brings the next state

    async def _on_claim(self, _: JSON | None, claim: JSON | None) -> None:
        if claim is None or not self._serves(claim):
            return
        phase = (claim.get("status") or {}).get("phase")
        if phase == "Bound":
            await self._expand(claim)
            return
        spec = claim["spec"]
        if phase != "Pending" or spec.get("volumeName"):
            return
        if not self.node_local_only and spec.get("storageClassName") != STORAGE_CLASS:
            return
        node = self.name if self.node_local_only else None
        volume = persistent_volume(claim, self.volumes_dir, node)
        with contextlib.suppress(ConflictError):
            await self.client.create(PERSISTENT_VOLUMES, volume)

    def _serves(self, claim: JSON) -> bool:
        """Whether this node provisions and expands the claim's volume: the first node those
        of every class but the node-bound one, an added node those scheduled onto it."""
        node_local = claim["spec"].get("storageClassName") == NODE_LOCAL_STORAGE_CLASS
        if not self.node_local_only:
            return not node_local
        selected = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE_ANNOTATION)
        return node_local and selected == self.name

    async def _expand(self, claim: JSON) -> None:
        """Act as the CSI resizer: a bound claim asking for more gets it. With a kubelet (the
        e2e tier) the volume's filesystem grows first, online (`disks`); without one there is
        no filesystem, so only the capacity on the volume and the claim changes."""
        requested = claim["spec"]["resources"]["requests"]["storage"]
        capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage", "0")
        wanted, current = quantity.parse(requested), quantity.parse(capacity)
        if wanted is None or current is None or wanted <= current:
            return
        meta = claim["metadata"]
        if self.kubelet is not None:
            volume = self.kubelet.lookup("PersistentVolume", "", claim["spec"]["volumeName"])
            if volume is None:
                return  # not cached yet: the claim's next event tries again
            disks.expand(Path(volume["spec"]["hostPath"]["path"]), requested)
        with contextlib.suppress(NotFoundError, ConflictError):
            await self.client.patch(
                PERSISTENT_VOLUMES,
                claim["spec"]["volumeName"],
                {"spec": {"capacity": {"storage": requested}}},
            )
            await self.client.patch(
                PERSISTENT_VOLUME_CLAIMS,
                meta["name"],
                {"status": {"capacity": {"storage": requested}}},
                namespace=meta["namespace"],
                subresource="status",
            )

    async def _on_volume(self, _: JSON | None, volume: JSON | None) -> None:
        if volume is None:
            return
        annotations = volume["metadata"].get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            return
        # Each node deletes the volumes on its own disk: those of a lost node stay Released.
        if volume_node(volume) != (self.name if self.node_local_only else None):
            return
        phase = (volume.get("status") or {}).get("phase")
        if phase == "Released":
            if self.kubelet is not None:
                disks.unstage(Path(volume["spec"]["hostPath"]["path"]))
            shutil.rmtree(volume["spec"]["hostPath"]["path"], ignore_errors=True)
            with contextlib.suppress(NotFoundError):
                await self.client.delete(PERSISTENT_VOLUMES, volume["metadata"]["name"])
