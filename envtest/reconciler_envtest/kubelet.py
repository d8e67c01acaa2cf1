"""The process node's kubelet: pods bound to the node run as real processes.

For each pod: a sandbox (network and UTS namespaces, an address on the bridge), its volumes
materialised under the run directory, init containers one after another, then the containers,
restarted with a kubelet's back-off when they exit, probed as the pod spec says; the pod's
status reports all of it. Deleting a pod sends SIGTERM to its containers, SIGKILL after the
grace period, then removes the pod object. ConfigMap and Secret changes reach mounted volumes
within `REFRESH_INTERVAL`, service-account tokens are renewed before they expire, and the hosts
files and Service proxy follow Services, Endpoints and pods (see `services`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import re
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from reconciler.runtime import quantity
from reconciler.runtime.client import JSON, ApiError, Client, ConflictError, NotFoundError
from reconciler.runtime.events import EventRecorder, EventType
from reconciler.runtime.informer import Informer
from reconciler.runtime.resources import (
    CONFIG_MAPS,
    ENDPOINTS,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
)
from reconciler_envtest import (
    container_logs,
    containers,
    disks,
    images,
    network,
    remotecommand,
    services,
    volumes,
)
from reconciler_envtest.containers import ContainerSpec, Mount, within_root

log = structlog.get_logger(__name__)

REFRESH_INTERVAL = 2.0
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0
DEFAULT_GRACE_SECONDS = 30
TOKEN_DEFAULT_SECONDS = 3607


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


def container_env(
    pod: JSON,
    container: JSON,
    base: dict[str, str],
    lookup: volumes.Lookup,
) -> dict[str, str]:
    """The environment of a container: the image's, the kubelet's, then the spec's, in order."""
    env = dict(base)
    namespace = pod["metadata"]["namespace"]
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                obj = lookup(kind, namespace, source[key]["name"])
                if obj is None:
                    if source[key].get("optional"):
                        continue
                    raise volumes.VolumeError(f'{kind.lower()} "{source[key]["name"]}" not found')
                data = volumes.key_data(obj, kind)
                env.update({prefix + k: v.decode() for k, v in data.items()})
    for item in container.get("env") or []:
        if "value" in item or "valueFrom" not in item:
            env[item["name"]] = expand(str(item.get("value", "")), env)
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            env[item["name"]] = volumes.field_value(pod, ref["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in ref:
            env[item["name"]] = volumes.resource_value(
                pod, ref["resourceFieldRef"], container["name"]
            )
        else:
            kind, key = (
                ("Secret", "secretKeyRef")
                if "secretKeyRef" in ref
                else ("ConfigMap", "configMapKeyRef")
            )
            selector = ref[key]
            obj = lookup(kind, namespace, selector["name"])
            data = volumes.key_data(obj, kind) if obj is not None else {}
            if selector["key"] in data:
                env[item["name"]] = data[selector["key"]].decode()
            elif not selector.get("optional"):
                raise volumes.VolumeError(
                    f'{kind.lower()} "{selector["name"]}" has no key "{selector["key"]}"'
                )
    return env


@dataclass
class ContainerState:
    """What the node knows of one container, as its status reports it."""

    spec: JSON
    init: bool = False
    process: asyncio.subprocess.Process | None = None
    cgroup: Path | None = None
    run_spec: ContainerSpec | None = None
    started_at: str | None = None
    started_monotonic: float = 0.0
    restart_count: int = 0
    exit_code: int | None = None
    # Set once the container exited for good (its pod's restartPolicy runs it no more).
    done: bool = False
    oom_killed: bool = False
    finished_at: str | None = None
    last_terminated: JSON | None = None
    ready: bool = False
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    task: asyncio.Task[int] | None = None
    stdio: containers.Stdio | None = None
    log: container_logs.LogWriter | None = None
    # Attached clients' output: one (stdout, stderr) pair of readers per `kubectl attach`.
    attached: set[tuple[asyncio.StreamReader, asyncio.StreamReader]] = field(default_factory=set)

    def status(self) -> JSON:
        """The container's entry of the pod status."""
        state: JSON
        if self.process is not None and self.exit_code is None:
            state = {"running": {"startedAt": self.started_at}}
        elif self.exit_code is not None and self.waiting_reason == "":
            state = {"terminated": self.terminated()}
        else:
            state = {"waiting": {"reason": self.waiting_reason}}
            if self.waiting_message:
                state["waiting"]["message"] = self.waiting_message
        result: JSON = {
            "name": self.spec["name"],
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": "running" in state,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.process is not None:
            result["containerID"] = f"envtest://{self.process.pid}"
        return result

    def terminated(self) -> JSON:
        """The `terminated` state of the container's last run."""
        code = self.exit_code or 0
        reason = "OOMKilled" if self.oom_killed else "Completed" if code == 0 else "Error"
        return {
            "exitCode": code,
            "reason": reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }


def restarts(policy: str, exit_code: int, *, init: bool) -> bool:
    """Whether a kubelet runs a container again after it exited with `exit_code`, under the
    pod's `restartPolicy`: init containers only ever rerun after a failure."""
    if init or policy == "OnFailure":
        return exit_code != 0 and policy != "Never"
    return policy == "Always"


def pod_phase(
    *, init_failed: bool, initialized: bool, started: list[bool], exit_codes: list[int | None]
) -> str:
    """The pod's phase from its app containers: `started` says, per container, whether it ever
    ran; `exit_codes` holds the code it finished with for good, or None while it runs or will
    run again. A pod stays Pending until each container ran once (an image not pulled yet)."""
    if init_failed:
        return "Failed"
    if not initialized or not all(started):
        return "Pending"
    if exit_codes and all(code is not None for code in exit_codes):
        return "Succeeded" if all(code == 0 for code in exit_codes) else "Failed"
    return "Running"


@dataclass
class PodState:
    """One pod on the node: its sandbox, volumes and containers."""

    pod: JSON
    directory: Path
    address: str
    sandbox: asyncio.subprocess.Process | None = None
    initialized: bool = False
    init_failed: bool = False
    # Set once the pod reached Succeeded or Failed: its sandbox is gone, its record stays.
    finished: bool = False
    released: bool = False
    init: list[ContainerState] = field(default_factory=list)
    main: list[ContainerState] = field(default_factory=list)
    volume_dirs: dict[str, Path] = field(default_factory=dict)
    # Held while the pod's volumes are written: setup and the refresh loop never overlap.
    volumes_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tokens: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    # Cleared while a test holds the pod's containers down (a lost node); set otherwise.
    restarts_allowed: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the pod is being stopped: wakes every wait of the pod at once.
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    terminating: asyncio.Task[None] | None = None
    task: asyncio.Task[None] | None = None
    last_status: JSON | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    def container(self, name: str) -> ContainerState:
        """A container by name."""
        return next(c for c in [*self.init, *self.main] if c.spec["name"] == name)


class Kubelet:
    """Runs the pods of one node as processes; see the module's docstring."""

    def __init__(
        self,
        client: Client,
        *,
        run_dir: Path,
        pod_network: network.PodNetwork,
        host_ip: str,
        node_name: str,
    ) -> None:
        self.client = client
        self.events = EventRecorder(client, "kubelet", instance=node_name, host=node_name)
        self._background: set[asyncio.Task[None]] = set()
        self.run_dir = run_dir
        self.network = pod_network
        self.host_ip = host_ip
        self.pods: dict[str, PodState] = {}
        self._addresses = pod_network.pod_addresses()
        self._free: list[str] = []
        self._informers = {
            kind: Informer(client, resource)
            for kind, resource in (
                ("ConfigMap", CONFIG_MAPS),
                ("Secret", SECRETS),
                ("Service", SERVICES),
                ("Endpoints", ENDPOINTS),
                ("PersistentVolumeClaim", PERSISTENT_VOLUME_CLAIMS),
                ("PersistentVolume", PERSISTENT_VOLUMES),
            )
        }
        self._names_dirty = asyncio.Event()
        self._service_ips: set[str] = set()
        self._proxy = services.ServiceProxy()
        self._tasks: list[asyncio.Task[None]] = []
        self.hosts_dir = run_dir / "hosts"
        self.node_hosts = self.hosts_dir / "node"
        self._image_mounts = images.image_mounts(run_dir / "images")
        # Names come from hosts files only (see `services`). A name missing from one, for the
        # moment the file is rewritten or before its pod exists, must fail at once, as cluster
        # DNS answers NXDOMAIN; the machine's nameserver is unreachable from the run and its
        # pods, and glibc would wait seconds for it (a pgBackRest push or the operator's
        # connection then hangs). Nothing listens on port 53 of any loopback here: refused.
        self.resolv_conf = self.hosts_dir / "resolv.conf"
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        self.resolv_conf.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self._image_mounts.append(Mount(str(self.resolv_conf), "/etc/resolv.conf", True))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the bridge, start the informers and the background loops."""
        self.node_hosts.touch()
        # The run's own /etc/hosts (its mount namespace is private): the node's names.
        await network.run("mount", "--bind", str(self.node_hosts), "/etc/hosts")
        await network.run("mount", "--bind", str(self.resolv_conf), within_root("/etc/resolv.conf"))
        await self.network.create_bridge()
        for kind in ("Service", "Endpoints"):
            await self._informers[kind].add_handler(self._names_changed)
        self._tasks = [asyncio.create_task(i.run()) for i in self._informers.values()]
        for informer in self._informers.values():
            await informer.wait_synced()
        self._tasks += [
            asyncio.create_task(self._names_loop()),
            asyncio.create_task(self._refresh_loop()),
        ]

    async def stop(self) -> None:
        """Stop every pod's processes (at once) and the loops."""
        for state in list(self.pods.values()):
            await self._stop_pod(state, grace=0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._proxy.close()
        with contextlib.suppress(network.NetworkError):
            await network.run("umount", "/etc/hosts")
            await network.run("umount", within_root("/etc/resolv.conf"))

    def lookup(self, kind: str, namespace: str, name: str) -> JSON | None:
        """A cached ConfigMap, Secret, Service, Endpoints, claim or volume."""
        return self._informers[kind].store.get(f"{namespace}/{name}" if namespace else name)

    # -- pod events -----------------------------------------------------------------------------

    async def on_pod(self, old: JSON | None, pod: JSON | None) -> None:
        """Handle a pod bound to this node: start it, follow deletion, forget it."""
        if pod is None:
            assert old is not None
            state = self.pods.get(old["metadata"]["uid"])
            if state is not None:
                await self._stop_pod(state, grace=0)
            self._names_dirty.set()
            return
        uid = pod["metadata"]["uid"]
        state = self.pods.get(uid)
        if state is None:
            if pod["metadata"].get("deletionTimestamp"):
                await self._delete_pod_object(pod)
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before this node (re)started: a kubelet never reruns it
            address = self._free.pop() if self._free else next(self._addresses)
            state = PodState(pod=pod, directory=self.run_dir / "pods" / uid, address=address)
            state.restarts_allowed.set()
            self.pods[uid] = state
            state.task = asyncio.create_task(self._run_pod(state))
            return
        state.pod = pod
        if pod["metadata"].get("deletionTimestamp") and state.finished:
            await self._stop_pod(state, grace=0)
            await self._delete_pod_object(pod)
        elif pod["metadata"].get("deletionTimestamp") and not state.stopping:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            seconds = DEFAULT_GRACE_SECONDS if grace is None else int(grace)
            state.terminating = asyncio.create_task(self._terminate(state, seconds))

    async def _terminate(self, state: PodState, grace: int) -> None:
        for container in state.main:
            if container.process is not None and container.exit_code is None:
                name = container.spec["name"]
                self._event(state, container, "Normal", "Killing", f"Stopping container {name}")
        await self._stop_pod(state, grace=grace)
        await self._delete_pod_object(state.pod)

    async def _delete_pod_object(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(NotFoundError, ConflictError):
            await self.client.delete(
                PODS, meta["name"], meta["namespace"], uid=meta["uid"], grace_period_seconds=0
            )

    # -- running a pod --------------------------------------------------------------------------

    async def _run_pod(self, state: PodState) -> None:
        pod = state.pod
        meta, spec = pod["metadata"], pod["spec"]
        state.directory.mkdir(parents=True, exist_ok=True)
        log_dir = self._log_dir(pod)
        log_dir.mkdir(parents=True, exist_ok=True)
        state.init = [ContainerState(spec=c, init=True) for c in spec.get("initContainers") or []]
        # App containers wait for the init containers under a kubelet's reason.
        waiting = "PodInitializing" if state.init else "ContainerCreating"
        state.main = [ContainerState(spec=c, waiting_reason=waiting) for c in spec["containers"]]
        try:
            hostname = spec.get("hostname") or meta["name"]
            state.sandbox = await containers.start_sandbox(hostname[:63], log_dir / "sandbox.log")
            await self.network.attach(state.sandbox.pid, state.address)
            await self._report(state, started=True)
            self._names_dirty.set()
            while not state.stopping:
                try:
                    await self._setup_volumes(state)
                    break
                except (volumes.VolumeError, disks.DiskError, ApiError, OSError) as error:
                    # A kubelet retries a failed mount until the pod goes.
                    self._event(state, None, "Warning", "FailedMount", f"MountVolume: {error}")
                    await self._waiting(state, "ContainerCreating", str(error))
                    await asyncio.sleep(1.0)
            policy = spec.get("restartPolicy") or "Always"
            for container in state.init:
                code = await self._run_container(state, container, log_dir, policy)
                if state.stopping:
                    return
                if code != 0:
                    state.init_failed = True
                    break
            else:
                state.initialized = True
                for container in state.main:
                    container.task = asyncio.create_task(
                        self._run_container(state, container, log_dir, policy)
                    )
            reports = asyncio.create_task(self._report_loop(state))
            try:
                await asyncio.gather(*(c.task for c in state.main if c.task is not None))
            finally:
                # Also when this pod's run is cancelled: a report loop left pending outlives
                # its node (asyncio's "Task was destroyed but it is pending").
                reports.cancel()
                await asyncio.gather(reports, return_exceptions=True)
            if not state.stopping:
                await self._finish(state)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("process node: pod failed", pod=meta["name"], error=str(error))
            await self._waiting(state, "CreateContainerError", str(error))

    async def _waiting(self, state: PodState, reason: str, message: str) -> None:
        for container in [*state.init, *state.main]:
            if container.process is None:
                container.waiting_reason, container.waiting_message = reason, message
        await self._report(state)

    async def _run_container(
        self, state: PodState, container: ContainerState, log_dir: Path, policy: str
    ) -> int:
        """Run a container, again after each exit with a kubelet's back-off while the pod's
        `restartPolicy` says so; its last exit code."""
        delay = BACKOFF_INITIAL
        while True:
            code = await self._start_and_wait(state, container, log_dir)
            if state.stopping:
                return code
            if not restarts(policy, code, init=container.init):
                container.done = True
                state.changed.set()
                return code
            if time.monotonic() - container.started_monotonic > BACKOFF_RESET_AFTER:
                delay = BACKOFF_INITIAL
            container.last_terminated = container.terminated()
            container.exit_code = None
            container.process = None
            container.restart_count += 1
            container.waiting_reason = "CrashLoopBackOff"
            meta = state.pod["metadata"]
            container.waiting_message = (
                f"back-off {delay:g}s restarting failed container={container.spec['name']} "
                f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"
            )
            self._event(
                state,
                container,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {container.spec['name']} in pod "
                f"{meta['name']}_{meta['namespace']}({meta['uid']})",
            )
            state.changed.set()
            await self._sleep_unless_stopping(state, delay)
            await state.restarts_allowed.wait()
            if state.stopping:
                return code
            delay = min(delay * 2, BACKOFF_MAX)

    async def _finish(self, state: PodState) -> None:
        """The pod reached Succeeded or Failed: report it, then free its sandbox as a kubelet
        does. Its record stays, so that later updates of the pod do not start it again."""
        state.finished = True
        await self._report(state)
        await self._release(state)

    async def _sleep_unless_stopping(self, state: PodState, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopped.wait(), seconds)

    async def _start_and_wait(
        self, state: PodState, container: ContainerState, log_dir: Path
    ) -> int:
        """Start one run of a container, probe it while it runs, and return its exit code."""
        assert state.sandbox is not None
        run_spec = await self._prepare(state, container)
        name = container.spec["name"]
        run_dir = state.directory / "containers" / f"{name}-{container.restart_count}"
        shutil.rmtree(run_dir, ignore_errors=True)
        process, cgroup, stdio = await containers.start_container(
            run_spec, state.sandbox.pid, run_dir, self._hosts_file(state.pod)
        )
        writer = container_logs.LogWriter(
            container_logs.log_path(log_dir, name, container.restart_count)
        )
        pumps = [asyncio.create_task(self._pump(container, stdio.stdout, "stdout", writer))]
        if stdio.stderr is not None:
            pumps.append(asyncio.create_task(self._pump(container, stdio.stderr, "stderr", writer)))
        self._event(state, container, "Normal", "Created", f"Created container: {name}")
        container.process, container.cgroup, container.run_spec = process, cgroup, run_spec
        container.stdio, container.log = stdio, writer
        container.started_at, container.started_monotonic = _now(), time.monotonic()
        container.exit_code, container.waiting_reason, container.waiting_message = None, "", ""
        container.oom_killed = False
        container.ready = container.init is False and "readinessProbe" not in container.spec
        self._event(state, container, "Normal", "Started", f"Started container {name}")
        state.changed.set()
        probes = []
        if not container.init:
            probes = [
                asyncio.create_task(self._probe_loop(state, container, kind))
                for kind in ("readinessProbe", "livenessProbe")
                if kind in container.spec
            ]
        try:
            code: int = await process.wait()
            if code < 0:  # killed by a signal: a container runtime reports 128 + its number
                code = 128 - code
            for task in probes:
                task.cancel()
            container.oom_killed = containers.oom_killed(cgroup)
            await containers.remove_cgroup(cgroup)
        finally:
            for task in probes:
                task.cancel()
            if process.returncode is None:  # cancelled: the node or the pod is going
                containers.kill_cgroup(cgroup)
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), 5.0)
            # Every process of the container is gone: its output ends; keep all of it.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*pumps)), 5.0)
            for task in pumps:
                task.cancel()
            writer.close()
            stdio.close()
        container.exit_code, container.finished_at, container.ready = code, _now(), False
        state.changed.set()
        return code

    async def _prepare(self, state: PodState, container: ContainerState) -> ContainerSpec:
        """What the container runs: its image's profile, environment and mounts. An unknown
        image or a missing ConfigMap or Secret key keeps it waiting, retried with back-off,
        as a kubelet's image pull and container config errors do."""
        delay = BACKOFF_INITIAL
        image = container.spec.get("image", "")
        while True:
            try:
                run_spec = self._container_spec(state, container.spec)
            except images.UnknownImageError as error:
                pulling = container.waiting_reason not in ("ErrImagePull", "ImagePullBackOff")
                failed = f'Failed to pull image "{image}": {error}'
                self._event(state, container, "Warning", "Failed", failed)
                reason = "ErrImagePull" if pulling else "ImagePullBackOff"
                self._event(state, container, "Warning", "Failed", f"Error: {reason}")
                if not pulling:
                    self._event(
                        state, container, "Normal", "BackOff", f'Back-off pulling image "{image}"'
                    )
                container.waiting_reason, container.waiting_message = reason, str(error)
            except volumes.VolumeError as error:
                self._event(state, container, "Warning", "Failed", f"Error: {error}")
                container.waiting_reason = "CreateContainerConfigError"
                container.waiting_message = str(error)
            else:
                self._event(
                    state,
                    container,
                    "Normal",
                    "Pulled",
                    f'Container image "{image}" already present on machine',
                )
                return run_spec
            state.changed.set()
            await self._sleep_unless_stopping(state, delay)
            if state.stopping:
                raise asyncio.CancelledError
            delay = min(delay * 2, BACKOFF_MAX)

    def _event(
        self,
        state: PodState,
        container: ContainerState | None,
        type_: EventType,
        reason: str,
        message: str,
    ) -> None:
        """Post an Event about the pod (one of its containers) in the background: a slow or
        unreachable API server never holds a container back."""
        field_path = ""
        if container is not None:
            kind = "initContainers" if container.init else "containers"
            field_path = f"spec.{kind}{{{container.spec['name']}}}"
        pod = {"apiVersion": "v1", "kind": "Pod", **state.pod}
        task = asyncio.create_task(
            self.events.event(pod, type_, reason, message, field_path=field_path)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _container_spec(self, state: PodState, container: JSON) -> ContainerSpec:
        pod = state.pod
        profile = images.profile(container.get("image", ""))
        uid, gid = profile.ids()
        security = {
            **(pod["spec"].get("securityContext") or {}),
            **(container.get("securityContext") or {}),
        }
        if "runAsUser" in security:
            uid = int(security["runAsUser"])
        if "runAsGroup" in security:
            gid = int(security["runAsGroup"])
        groups = [gid, *(security.get("supplementalGroups") or [])]
        if "fsGroup" in (pod["spec"].get("securityContext") or {}):
            groups.append(int(pod["spec"]["securityContext"]["fsGroup"]))
        base = {
            **profile.env,
            "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
            **self._kubernetes_service_env(),
        }
        env = container_env(pod, container, base, self.lookup)
        argv = [
            expand(a, env)
            for a in [*(container.get("command") or []), *(container.get("args") or [])]
        ]
        if not argv:
            raise volumes.VolumeError(
                f"container {container['name']} has no command: images here have no entrypoint"
            )
        mounts = list(self._image_mounts)
        for mount in container.get("volumeMounts") or []:
            source = state.volume_dirs.get(mount["name"])
            if source is None:
                raise volumes.VolumeError(f"volume {mount['name']!r} is not set up")
            if mount.get("subPath"):
                source = source / mount["subPath"]
            mounts.append(Mount(str(source), mount["mountPath"], bool(mount.get("readOnly"))))
        return ContainerSpec(
            name=container["name"],
            argv=argv,
            env=env,
            mounts=mounts,
            uid=uid,
            gid=gid,
            groups=sorted(set(groups)),
            working_dir=container.get("workingDir") or "/",
            read_only_root=bool(security.get("readOnlyRootFilesystem")),
            links={**images.IMAGE_LINKS, **profile.links},
            stdin=bool(container.get("stdin")),
            tty=bool(container.get("tty")),
            memory_limit=_memory_limit(container),
        )

    def _kubernetes_service_env(self) -> dict[str, str]:
        service = self.lookup("Service", "default", "kubernetes")
        if service is None:
            return {}
        ip = service["spec"]["clusterIP"]
        port = str(service["spec"]["ports"][0]["port"])
        return {
            "KUBERNETES_SERVICE_HOST": ip,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{ip}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{ip}:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": port,
            "KUBERNETES_PORT_443_TCP_ADDR": ip,
        }

    # -- volumes --------------------------------------------------------------------------------

    def _fs_group(self, pod: JSON) -> int:
        return int((pod["spec"].get("securityContext") or {}).get("fsGroup", 0))

    async def _setup_volumes(self, state: PodState) -> None:
        pod = state.pod
        fs_group = self._fs_group(pod)
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                state.volume_dirs[name] = self._claim_directory(pod, volume, fs_group)
            elif "emptyDir" in volume:
                if (volume["emptyDir"] or {}).get("medium") == "Memory":
                    state.volume_dirs[name] = Path("tmpfs")
                    continue
                directory = state.directory / "volumes" / name
                directory.mkdir(parents=True, exist_ok=True)
                directory.chmod(0o777)
                state.volume_dirs[name] = directory
            elif "hostPath" in volume:
                state.volume_dirs[name] = Path(volume["hostPath"]["path"])
        await self._refresh_volumes(state)

    def _claim_directory(self, pod: JSON, volume: JSON, fs_group: int) -> Path:
        namespace = pod["metadata"]["namespace"]
        claim_name = volume["persistentVolumeClaim"]["claimName"]
        claim = self.lookup("PersistentVolumeClaim", namespace, claim_name)
        if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
            raise volumes.VolumeError(f'persistentvolumeclaim "{claim_name}" is not bound')
        bound = self.lookup("PersistentVolume", "", claim["spec"]["volumeName"])
        if bound is None:
            raise volumes.VolumeError(f'persistentvolume "{claim["spec"]["volumeName"]}" not found')
        directory = Path(bound["spec"]["hostPath"]["path"])
        disks.stage(directory, bound["spec"]["capacity"]["storage"])
        stat = directory.stat()
        if fs_group and stat.st_gid != fs_group:  # fsGroupChangePolicy: OnRootMismatch
            for path in [directory, *directory.rglob("*")]:
                with contextlib.suppress(FileNotFoundError):
                    shutil.chown(path, group=fs_group)
            directory.chmod(0o2775)
        return directory

    async def _refresh_volumes(self, state: PodState) -> bool:
        """Rewrite projected volumes whose sources changed; True when something changed."""
        pod = state.pod
        fs_group = self._fs_group(pod)
        changed = False
        async with state.volumes_lock:
            for volume in pod["spec"].get("volumes") or []:
                tokens = await self._tokens(state, volume)
                lookup = functools.partial(_token, tokens)
                contents = volumes.files(volume, pod, self.lookup, lookup)
                if contents is None:
                    continue
                directory = state.directory / "volumes" / volume["name"]
                state.volume_dirs[volume["name"]] = directory
                changed |= await asyncio.to_thread(
                    volumes.write_atomically, directory, contents, uid=0, gid=fs_group
                )
        return changed

    async def _tokens(self, state: PodState, volume: JSON) -> dict[tuple[str, int], str]:
        found: dict[tuple[str, int], str] = {}
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" not in source:
                continue
            request = source["serviceAccountToken"]
            key = _token_key(request)
            cached = state.tokens.get(key)
            if cached is None or time.time() > cached[1]:
                cached = await self._request_token(state.pod, request)
                state.tokens[key] = cached
            found[key] = cached[0]
        return found

    async def _request_token(self, pod: JSON, request: JSON) -> tuple[str, float]:
        meta = pod["metadata"]
        seconds = int(request.get("expirationSeconds", TOKEN_DEFAULT_SECONDS))
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [request["audience"]] if request.get("audience") else [],
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        path = SERVICE_ACCOUNTS.path(
            meta["namespace"], pod["spec"].get("serviceAccountName", "default"), "token"
        )
        answer = await self.client.request(
            "POST", path, body=body, resource="serviceaccounts/token"
        )
        # Renew at 80% of the lifetime, as a kubelet does.
        return answer["status"]["token"], time.time() + 0.8 * seconds

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            for state in list(self.pods.values()):
                if state.volume_dirs and not (state.stopping or state.finished):
                    try:
                        await self._refresh_volumes(state)
                    except (volumes.VolumeError, ApiError, ConnectionError) as error:
                        log.debug(
                            "volume refresh failed",
                            pod=state.pod["metadata"]["name"],
                            error=str(error),
                        )

    # -- probes and status ----------------------------------------------------------------------

    async def _probe_loop(self, state: PodState, container: ContainerState, kind: str) -> None:
        probe = container.spec[kind]
        period = float(probe.get("periodSeconds", 10))
        failure_threshold = int(probe.get("failureThreshold", 3))
        success_threshold = int(probe.get("successThreshold", 1))
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        failures = successes = 0
        label = {"readinessProbe": "Readiness", "livenessProbe": "Liveness"}[kind]
        while True:
            ok, output = await self._probe_once(state, container, probe)
            if ok:
                successes, failures = successes + 1, 0
            else:
                failures, successes = failures + 1, 0
                message = f"{label} probe failed: {output}".rstrip(": ")
                self._event(state, container, "Warning", "Unhealthy", message)
            if kind == "readinessProbe":
                ready = container.ready
                if ok and successes >= success_threshold:
                    ready = True
                elif not ok and failures >= failure_threshold:
                    ready = False
                if ready != container.ready:
                    container.ready = ready
                    state.changed.set()
            elif not ok and failures >= failure_threshold and container.cgroup is not None:
                name = container.spec["name"]
                log.info("liveness probe failed; restarting", pod=state.pod["metadata"]["name"])
                self._event(
                    state,
                    container,
                    "Normal",
                    "Killing",
                    f"Container {name} failed liveness probe, will be restarted",
                )
                await self._stop_container(
                    container,
                    int(
                        state.pod["spec"].get(
                            "terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS
                        )
                    ),
                )
                return
            await asyncio.sleep(period)

    async def _probe_once(
        self, state: PodState, container: ContainerState, probe: JSON
    ) -> tuple[bool, str]:
        """One probe: whether it passed, and what a kubelet reports when it did not."""
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            if container.process is None or container.run_spec is None:
                return False, "container is not running"
            code, output = await containers.exec_in(
                container.process.pid, container.run_spec, probe["exec"]["command"], timeout
            )
            return code == 0, output.decode(errors="replace").strip()
        action = probe.get("httpGet") or probe.get("tcpSocket") or {}
        port = _port_number(container.spec, action.get("port"))
        host = action.get("host") or state.address
        try:
            if "tcpSocket" in probe:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True, ""
            scheme = str(action.get("scheme", "HTTP")).lower()
            # Like a kubelet, an HTTPS probe does not verify the server's certificate.
            verify = scheme != "https"
            url = f"{scheme}://{host}:{port}{action.get('path', '/')}"
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url, ssl=verify, headers=headers) as response,
            ):
                ok = 200 <= response.status < 400
                return ok, "" if ok else f"HTTP probe failed with statuscode: {response.status}"
        except TimeoutError:
            return False, f"Get {host}:{port}: context deadline exceeded (timeout {timeout:g}s)"
        except (OSError, aiohttp.ClientError) as error:
            return False, f"dial tcp {host}:{port}: {error}"

    async def _report_loop(self, state: PodState) -> None:
        while not state.stopping:
            await state.changed.wait()
            state.changed.clear()
            await self._report(state)

    async def _report(self, state: PodState, *, started: bool = False) -> None:
        status = self._status(state)
        if status == state.last_status or (state.stopping and not started):
            return
        meta = state.pod["metadata"]
        try:
            await self.client.patch(
                PODS,
                meta["name"],
                {"status": status},
                namespace=meta["namespace"],
                subresource="status",
            )
            state.last_status = status
        except (NotFoundError, ConflictError):
            pass
        except (ApiError, ConnectionError) as error:
            log.warning("pod status report failed", pod=meta["name"], error=str(error))
            await asyncio.sleep(1.0)  # then the report loop tries again
            state.changed.set()

    def _status(self, state: PodState) -> JSON:
        previous = state.pod.get("status") or {}
        now = _now()
        phase = pod_phase(
            init_failed=state.init_failed,
            initialized=state.initialized,
            started=[c.started_at is not None for c in state.main],
            exit_codes=[c.exit_code if c.done else None for c in state.main],
        )
        ready = phase == "Running" and all(c.ready for c in state.main)

        def condition(kind: str, value: bool) -> JSON:
            text = "True" if value else "False"
            result: JSON = {"type": kind, "status": text, "lastTransitionTime": now}
            if kind in ("Ready", "ContainersReady") and phase in ("Succeeded", "Failed"):
                result["reason"] = "PodCompleted"
            for old in previous.get("conditions") or []:
                if old["type"] == kind and old["status"] == text:
                    result["lastTransitionTime"] = old.get("lastTransitionTime", now)
            return result

        return {
            "phase": phase,
            "conditions": [
                condition("PodReadyToStartContainers", state.sandbox is not None),
                condition("Initialized", state.initialized),
                condition("ContainersReady", ready),
                condition("Ready", ready),
                condition("PodScheduled", True),
            ],
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "podIP": state.address,
            "podIPs": [{"ip": state.address}],
            "startTime": previous.get("startTime") or now,
            "initContainerStatuses": [c.status() for c in state.init],
            "containerStatuses": [c.status() for c in state.main],
        }

    # -- stopping -------------------------------------------------------------------------------

    async def _stop_container(self, container: ContainerState, grace: int) -> None:
        if container.cgroup is None or container.process is None:
            return
        process, cgroup = container.process, container.cgroup
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
        containers.kill_cgroup(cgroup)

    async def _stop_pod(self, state: PodState, *, grace: int) -> None:
        if state.stopping and grace > 0:
            return
        state.stopping = True
        state.stopped.set()
        state.restarts_allowed.set()
        await asyncio.gather(*(self._stop_container(c, grace) for c in [*state.init, *state.main]))
        tasks: list[asyncio.Task[Any]] = [c.task for c in state.main if c.task is not None]
        if state.task is not None:
            tasks.append(state.task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._release(state)
        self.pods.pop(state.uid, None)

    async def _release(self, state: PodState) -> None:
        """Free what the pod holds on the node: cgroups, sandbox, address, scratch files."""
        if state.released:
            return
        state.released = True
        for container in [*state.init, *state.main]:
            if container.cgroup is not None:
                await containers.remove_cgroup(container.cgroup)
        if state.sandbox is not None and state.sandbox.returncode is None:
            state.sandbox.kill()
            await state.sandbox.wait()
        await network.detach(state.address)
        self._free.append(state.address)
        # emptyDirs and projected files go with the pod; claims' directories stay.
        shutil.rmtree(state.directory, ignore_errors=True)
        self._names_dirty.set()

    def kill(self, pod_name: str, namespace: str, *, hold_restarts: bool) -> list[int]:
        """SIGKILL every process of a pod's containers (tests of failure); with
        `hold_restarts`, the node does not restart them until `release` (a lost node)."""
        state = self._find(pod_name, namespace)
        if hold_restarts:
            state.restarts_allowed.clear()
        killed: list[int] = []
        for container in state.main:
            if container.cgroup is not None:
                killed += containers.cgroup_pids(container.cgroup)
                containers.kill_cgroup(container.cgroup)
        return killed

    async def lose_pods(self, node_name: str) -> list[str]:
        """Stop the pods bound to `node_name` at once and report nothing more of them: what a
        node that is lost for good (power, disk) does to its pods. Their objects stay as they
        were; their addresses are not given to other pods while those objects may hold them.
        The names of the pods stopped."""
        lost = [s for s in self.pods.values() if s.pod["spec"].get("nodeName") == node_name]
        for state in lost:
            await self._stop_pod(state, grace=0)
            with contextlib.suppress(ValueError):
                self._free.remove(state.address)
        return [s.pod["metadata"]["name"] for s in lost]

    def release(self, pod_name: str, namespace: str) -> None:
        """Let the node restart the pod's containers again."""
        self._find(pod_name, namespace).restarts_allowed.set()

    def _find(self, pod_name: str, namespace: str) -> PodState:
        for state in self.pods.values():
            meta = state.pod["metadata"]
            if meta["name"] == pod_name and meta["namespace"] == namespace:
                return state
        raise LookupError(f"pod {namespace}/{pod_name} does not run on this node")

    async def _pump(
        self,
        container: ContainerState,
        reader: asyncio.StreamReader,
        stream: str,
        writer: container_logs.LogWriter,
    ) -> None:
        """Copy one output of the container to its log and to attached clients."""
        with contextlib.suppress(OSError):  # a terminal whose last process left reads EIO
            while data := await reader.read(64 * 1024):
                writer.write(stream, data)
                for stdout, stderr in container.attached:
                    (stdout if stream == "stdout" else stderr).feed_data(data)
        writer.flush()
        for stdout, stderr in container.attached:
            stdout.feed_eof()
            stderr.feed_eof()

    def _running(self, namespace: str, pod_name: str, container: str) -> ContainerState:
        state = self._find(pod_name, namespace)
        try:
            found = state.container(container)
        except StopIteration:
            raise LookupError(f"container {container} is not valid for pod {pod_name}") from None
        if found.process is None or found.exit_code is not None or found.run_spec is None:
            raise LookupError(f"container {container} of pod {namespace}/{pod_name} is not running")
        return found

    async def exec_session(
        self,
        namespace: str,
        pod_name: str,
        container: str,
        argv: list[str],
        options: remotecommand.Options,
    ) -> tuple[asyncio.subprocess.Process, containers.Stdio]:
        """Start `argv` in a running container, its streams held for the client (`exec`)."""
        found = self._running(namespace, pod_name, container)
        assert found.process is not None
        assert found.run_spec is not None
        return await containers.exec_session(
            found.process.pid, found.run_spec, argv, stdin=options.stdin, tty=options.tty
        )

    @contextlib.contextmanager
    def attach(
        self, namespace: str, pod_name: str, container: str
    ) -> Iterator[tuple[containers.Stdio, bool]]:
        """The running container's streams for one attached client (`attach`), and whether
        its standard input closes when that client leaves (`stdinOnce`)."""
        found = self._running(namespace, pod_name, container)
        assert found.stdio is not None
        stdout, stderr = asyncio.StreamReader(), asyncio.StreamReader()
        found.attached.add((stdout, stderr))
        stdio = containers.Stdio(stdout, stderr, found.stdio.stdin, found.stdio.terminal)
        try:
            yield stdio, bool(found.spec.get("stdinOnce"))
        finally:
            found.attached.discard((stdout, stderr))

    def log_files(
        self, namespace: str, pod_name: str, container: str, *, previous: bool
    ) -> tuple[list[Path], container_logs.LogWriter | None]:
        """The files of the container's current (or previous) instance, oldest first, and
        the writer still adding to them, if any. Pods that finished keep their logs."""
        state = next(
            (s for s in self.pods.values() if s.pod["metadata"]["name"] == pod_name
             and s.pod["metadata"]["namespace"] == namespace),
            None,
        )  # fmt: skip
        if state is None:
            raise LookupError(f'pod "{pod_name}" not found on this node')
        try:
            found = state.container(container)
        except StopIteration:
            raise LookupError(f"container {container} is not valid for pod {pod_name}") from None
        instance = found.restart_count - 1 if previous else found.restart_count
        if instance < 0 or (previous and found.last_terminated is None):
            raise LookupError(
                f'previous terminated container "{container}" in pod "{pod_name}" not found'
            )
        log_dir = self._log_dir(state.pod)
        current = container_logs.log_path(log_dir, container, instance)
        if not current.exists():
            raise LookupError(f'container "{container}" in pod "{pod_name}" has not started')
        live = found.log if not previous and found.log is not None else None
        return container_logs.instance_files(current), live

    def sandbox_pid(self, namespace: str, pod_name: str) -> int:
        """The process holding the pod's network namespace (`portForward`)."""
        state = self._find(pod_name, namespace)
        if state.sandbox is None or state.sandbox.returncode is not None:
            raise LookupError(f"pod {namespace}/{pod_name} is not running")
        return state.sandbox.pid

    def _log_dir(self, pod: JSON) -> Path:
        meta = pod["metadata"]
        # As /var/log/pods/<namespace>_<name>_<uid> of a node.
        return self.run_dir / "logs" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"

    # -- names and routing ----------------------------------------------------------------------

    def _hosts_file(self, pod: JSON) -> Path:
        path: Path = self.hosts_dir / pod["metadata"]["namespace"]
        if not path.exists():
            path.touch()
            self._names_dirty.set()
        return path

    async def _names_changed(self, _: JSON | None, __: JSON | None) -> None:
        self._names_dirty.set()

    async def _names_loop(self) -> None:
        while True:
            await self._names_dirty.wait()
            self._names_dirty.clear()
            try:
                await self._update_names()
            # Whatever failed, the loop goes on: routes that stop following their Endpoints
            # would look like a cluster that never fails over.
            except Exception:
                log.exception("updating names and routes failed; retrying")
                self._names_dirty.set()
                await asyncio.sleep(1)  # pacing of the retries, not synchronisation
            await asyncio.sleep(0.05)  # coalesce bursts of events

    async def _update_names(self) -> None:
        service_list = self._informers["Service"].store.list()
        endpoints = {
            (e["metadata"]["namespace"], e["metadata"]["name"]): e
            for e in self._informers["Endpoints"].store.list()
        }
        pods = [s.pod | {"status": {"podIP": s.address}} for s in self.pods.values()]
        cluster_ips = [
            s["spec"]["clusterIP"]
            for s in service_list
            if s["spec"].get("clusterIP") not in (None, "", "None")
        ]
        self._service_ips = await network.set_service_addresses(self._service_ips, cluster_ips)
        await self._proxy.update(service_list, endpoints)
        services.write_in_place(
            self.node_hosts,
            services.hosts_text(services.hosts_entries(service_list, endpoints, pods, None)),
        )
        for path in self.hosts_dir.iterdir():
            if path.name != "node":
                entries = services.hosts_entries(service_list, endpoints, pods, path.name)
                services.write_in_place(path, services.hosts_text(entries))


def _token(tokens: dict[tuple[str, int], str], source: JSON) -> str:
    return tokens[_token_key(source)]


def _token_key(source: JSON) -> tuple[str, int]:
    return str(source.get("audience", "")), int(
        source.get("expirationSeconds", TOKEN_DEFAULT_SECONDS)
    )


def _memory_limit(container: JSON) -> int | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    value = quantity.parse(str(limit)) if limit is not None else None
    return int(value) if value else None


def _port_number(container: JSON, port: Any) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container {container['name']} declares no port {port!r}")
