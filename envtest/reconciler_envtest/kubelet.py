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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from reconciler.runtime.client import JSON, ApiError, Client, ConflictError, NotFoundError
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
from reconciler_envtest import containers, images, network, services, volumes
from reconciler_envtest.containers import ContainerSpec, Mount

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
    finished_at: str | None = None
    last_terminated: JSON | None = None
    ready: bool = False
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    task: asyncio.Task[None] | None = None

    def status(self) -> JSON:
        """The container's entry of the pod status."""
        state: JSON
        if self.process is not None and self.exit_code is None:
            state = {"running": {"startedAt": self.started_at}}
        elif self.exit_code is not None and (self.init or self.waiting_reason == ""):
            state = {"terminated": self._terminated()}
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

    def _terminated(self) -> JSON:
        code = self.exit_code or 0
        return {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }


@dataclass
class PodState:
    """One pod on the node: its sandbox, volumes and containers."""

    pod: JSON
    directory: Path
    address: str
    sandbox: asyncio.subprocess.Process | None = None
    initialized: bool = False
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
    ) -> None:
        self.client = client
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

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the bridge, start the informers and the background loops."""
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        self.node_hosts.touch()
        # The run's own /etc/hosts (its mount namespace is private): the node's names.
        await network.run("mount", "--bind", str(self.node_hosts), "/etc/hosts")
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
            address = self._free.pop() if self._free else next(self._addresses)
            state = PodState(pod=pod, directory=self.run_dir / "pods" / uid, address=address)
            state.restarts_allowed.set()
            self.pods[uid] = state
            state.task = asyncio.create_task(self._run_pod(state))
            return
        state.pod = pod
        if pod["metadata"].get("deletionTimestamp") and not state.stopping:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            seconds = DEFAULT_GRACE_SECONDS if grace is None else int(grace)
            state.terminating = asyncio.create_task(self._terminate(state, seconds))

    async def _terminate(self, state: PodState, grace: int) -> None:
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
        # Logs outlive the pod, as under /var/log/pods of a node.
        log_dir = self.run_dir / "logs" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        log_dir.mkdir(parents=True, exist_ok=True)
        state.init = [ContainerState(spec=c, init=True) for c in spec.get("initContainers") or []]
        state.main = [ContainerState(spec=c) for c in spec["containers"]]
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
                except (volumes.VolumeError, ApiError, OSError) as error:
                    # A kubelet retries a failed mount until the pod goes.
                    await self._waiting(state, "ContainerCreating", str(error))
                    await asyncio.sleep(1.0)
            for container in state.init:
                await self._run_init(state, container, log_dir)
                if state.stopping:
                    return
            state.initialized = True
            for container in state.main:
                container.task = asyncio.create_task(self._keep_running(state, container, log_dir))
            await self._report_loop(state)
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

    async def _run_init(self, state: PodState, container: ContainerState, log_dir: Path) -> None:
        delay = BACKOFF_INITIAL
        while not state.stopping:
            code = await self._start_and_wait(state, container, log_dir)
            if code == 0:
                return
            container.restart_count += 1
            container.waiting_reason = "CrashLoopBackOff"
            await self._report(state)
            await self._sleep_unless_stopping(state, delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _keep_running(
        self, state: PodState, container: ContainerState, log_dir: Path
    ) -> None:
        delay = BACKOFF_INITIAL
        while not state.stopping:
            await self._start_and_wait(state, container, log_dir)
            if state.stopping:
                return
            if time.monotonic() - container.started_monotonic > BACKOFF_RESET_AFTER:
                delay = BACKOFF_INITIAL
            container.last_terminated = container._terminated()
            container.exit_code = None
            container.process = None
            container.restart_count += 1
            container.waiting_reason = "CrashLoopBackOff"
            state.changed.set()
            await self._sleep_unless_stopping(state, delay)
            await state.restarts_allowed.wait()
            delay = min(delay * 2, BACKOFF_MAX)

    async def _sleep_unless_stopping(self, state: PodState, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopped.wait(), seconds)

    async def _start_and_wait(
        self, state: PodState, container: ContainerState, log_dir: Path
    ) -> int:
        """Start one run of a container, probe it while it runs, and return its exit code."""
        assert state.sandbox is not None
        try:
            run_spec = self._container_spec(state, container.spec)
        except (images.UnknownImageError, volumes.VolumeError) as error:
            reason = (
                "ErrImagePull"
                if isinstance(error, images.UnknownImageError)
                else "CreateContainerConfigError"
            )
            container.waiting_reason, container.waiting_message = reason, str(error)
            state.changed.set()
            return -1
        name = container.spec["name"]
        run_dir = state.directory / "containers" / f"{name}-{container.restart_count}"
        shutil.rmtree(run_dir, ignore_errors=True)
        process, cgroup = await containers.start_container(
            run_spec,
            state.sandbox.pid,
            run_dir,
            self._hosts_file(state.pod),
            log_dir / f"{name}.log",
        )
        container.process, container.cgroup, container.run_spec = process, cgroup, run_spec
        container.started_at, container.started_monotonic = _now(), time.monotonic()
        container.exit_code, container.waiting_reason, container.waiting_message = None, "", ""
        container.ready = container.init is False and "readinessProbe" not in container.spec
        state.changed.set()
        probes = []
        if not container.init:
            probes = [
                asyncio.create_task(self._probe_loop(state, container, kind))
                for kind in ("readinessProbe", "livenessProbe")
                if kind in container.spec
            ]
        try:
            code = await process.wait()
        finally:
            for task in probes:
                task.cancel()
        await containers.remove_cgroup(cgroup)
        container.exit_code, container.finished_at, container.ready = code, _now(), False
        state.changed.set()
        return code

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
        mounts = []
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
            links=profile.links,
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
        directory.mkdir(parents=True, exist_ok=True)
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
                if state.volume_dirs and not state.stopping:
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
        while True:
            ok = await self._probe_once(state, container, probe)
            if ok:
                successes, failures = successes + 1, 0
            else:
                failures, successes = failures + 1, 0
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
                log.info(
                    "liveness probe failed; restarting",
                    pod=state.pod["metadata"]["name"],
                    container=container.spec["name"],
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

    async def _probe_once(self, state: PodState, container: ContainerState, probe: JSON) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            if container.process is None or container.run_spec is None:
                return False
            code, _ = await containers.exec_in(
                container.process.pid, container.run_spec, probe["exec"]["command"], timeout
            )
            return code == 0
        action = probe.get("httpGet") or probe.get("tcpSocket") or {}
        port = _port_number(container.spec, action.get("port"))
        host = action.get("host") or state.address
        try:
            if "tcpSocket" in probe:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True
            scheme = str(action.get("scheme", "HTTP")).lower()
            # Like a kubelet, an HTTPS probe does not verify the server's certificate.
            verify = scheme != "https"
            url = f"{scheme}://{host}:{port}{action.get('path', '/')}"
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url, ssl=verify, headers=headers) as response,
            ):
                return 200 <= response.status < 400
        except (OSError, TimeoutError, aiohttp.ClientError):
            return False

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
        all_started = state.initialized and all(
            c.process is not None and c.exit_code is None for c in state.main
        )
        ready = state.initialized and all(c.ready for c in state.main)

        def condition(kind: str, value: bool) -> JSON:
            text = "True" if value else "False"
            for old in previous.get("conditions") or []:
                if old["type"] == kind and old["status"] == text:
                    return {
                        "type": kind,
                        "status": text,
                        "lastTransitionTime": old.get("lastTransitionTime", now),
                    }
            return {"type": kind, "status": text, "lastTransitionTime": now}

        return {
            "phase": "Running" if all_started or (state.initialized and state.main) else "Pending",
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
        tasks = [c.task for c in state.main if c.task is not None]
        if state.task is not None:
            tasks.append(state.task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for container in [*state.init, *state.main]:
            if container.cgroup is not None:
                await containers.remove_cgroup(container.cgroup)
        if state.sandbox is not None and state.sandbox.returncode is None:
            state.sandbox.kill()
            await state.sandbox.wait()
        await network.detach(state.address)
        if self.pods.pop(state.uid, None) is not None:
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

    def release(self, pod_name: str, namespace: str) -> None:
        """Let the node restart the pod's containers again."""
        self._find(pod_name, namespace).restarts_allowed.set()

    def _find(self, pod_name: str, namespace: str) -> PodState:
        for state in self.pods.values():
            meta = state.pod["metadata"]
            if meta["name"] == pod_name and meta["namespace"] == namespace:
                return state
        raise LookupError(f"pod {namespace}/{pod_name} does not run on this node")

    async def exec(
        self, pod_name: str, namespace: str, container: str, argv: list[str], timeout: float = 30.0
    ) -> tuple[int, bytes]:
        """Run a command in a running container (`kubectl exec`)."""
        state = self._find(pod_name, namespace).container(container)
        if state.process is None or state.run_spec is None:
            raise LookupError(f"container {container} of pod {namespace}/{pod_name} is not running")
        return await containers.exec_in(state.process.pid, state.run_spec, argv, timeout)

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
            except (OSError, network.NetworkError) as error:
                log.warning("updating names and routes failed", error=str(error))
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


def _port_number(container: JSON, port: Any) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container {container['name']} declares no port {port!r}")
