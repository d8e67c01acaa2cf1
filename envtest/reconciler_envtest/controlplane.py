"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and a node, all on 127.0.0.1.

    async with ControlPlane(run_dir) as plane:
        client = await Client.from_kubeconfig(str(plane.kubeconfig), user_agent="tests")
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import aiohttp
import yaml

from reconciler.pki import x509
from reconciler.runtime.client import Client, NotFoundError
from reconciler.runtime.resources import NAMESPACES, NODES, SERVICE_ACCOUNTS
from reconciler_envtest import binaries, isolation, network
from reconciler_envtest.kubelet import Kubelet
from reconciler_envtest.kubelet_api import API_SERVER_CLIENT, KubeletAPI, tls_context
from reconciler_envtest.node import NodeAgent
from reconciler_envtest.process import Process, free_port

# Service ClusterIPs are allocated from here. Nothing on this machine sends traffic to them in
# the integration tier; the e2e tier routes them inside its own network namespace.
SERVICE_NETWORK = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
NODE_NAME = "envtest-node"
START_TIMEOUT = 60.0
_CERT_LIFETIME = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Ports:
    """The loopback ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @classmethod
    def allocate(cls) -> Self:
        """Free ports, chosen now."""
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())


def _kubeconfig(server: str, ca: Path, credentials: dict[str, str], user: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "envtest", "cluster": {"server": server, "certificate-authority": str(ca)}}
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
            "current-context": "envtest",
        }
    )


class ControlPlane:
    """Starts and stops the control plane's processes and the node, in a run directory."""

    def __init__(
        self, run_dir: Path, *, node_name: str = NODE_NAME, process_node: bool = False
    ) -> None:
        """`process_node`: pods run as real processes on a pod network (the e2e tier); only
        inside a network namespace of the run's own (`reconciler-envtest isolated`)."""
        self.run_dir = run_dir
        self.node_name = node_name
        self.pod_network = network.PodNetwork() if process_node else None
        self.pki_dir = run_dir / "pki"
        self.kubeconfig = run_dir / "kubeconfig"
        self._ports: Ports | None = None
        self._etcd: Process | None = None
        self._apiserver: Process | None = None
        self._components: list[Process] = []
        self._node: NodeAgent | None = None
        self._added: dict[str, NodeAgent] = {}
        self._client: Client | None = None

    @property
    def ports(self) -> Ports:
        """The ports in use; only after `start()`."""
        assert self._ports is not None, "the control plane is not started"
        return self._ports

    @property
    def server(self) -> str:
        """The kube-apiserver's URL."""
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        """etcd's client URL (tests use it to compact history)."""
        return f"http://127.0.0.1:{self.ports.etcd_client}"

    @property
    def processes(self) -> list[Process]:
        """Every child process, in start order."""
        return [p for p in (self._etcd, self._apiserver, *self._components) if p is not None]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build or find the binaries, then start everything and wait for a Ready node."""
        bin_dir = await asyncio.to_thread(binaries.ensure)
        if self.pod_network is not None:
            isolation.require()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._ports = Ports.allocate()
        self._write_pki()
        try:
            await self._start_etcd(bin_dir)
            self._apiserver = Process("kube-apiserver", self._apiserver_argv(bin_dir), self.run_dir)
            await self.start_apiserver()
            self._kubeconfig_for("admin")
            self._client = await Client.from_kubeconfig(
                str(self.kubeconfig), user_agent="reconciler-envtest"
            )
            await self._start_components(bin_dir)
            self._node = self._node_agent(self._client)
            await self._node.start()
            await self._wait_ready(self._client)
        except BaseException:
            await self.stop()
            raise
        (self.run_dir / "endpoints.json").write_text(
            json.dumps(
                {"server": self.server, "etcd": self.etcd_url, "kubeconfig": str(self.kubeconfig)}
            )
        )

    @property
    def kubelet(self) -> Kubelet:
        """The process node's kubelet (e2e tier only)."""
        kubelet = self._node.kubelet if self._node is not None else None
        if kubelet is None:
            raise RuntimeError("this control plane has no process node (process_node=False)")
        return kubelet

    def _node_agent(self, client: Client) -> NodeAgent:
        volumes = self.run_dir / "volumes"
        if self.pod_network is None:
            return NodeAgent(client, name=self.node_name, volumes_dir=volumes)
        gateway = self.pod_network.gateway
        kubelet = Kubelet(
            client,
            run_dir=self.run_dir,
            pod_network=self.pod_network,
            host_ip=gateway,
            node_name=self.node_name,
        )
        pki = self.pki_dir
        api = KubeletAPI(
            kubelet,
            host=gateway,
            tls=tls_context(pki / "kubelet.crt", pki / "kubelet.key", pki / "ca.crt"),
        )
        return NodeAgent(
            client,
            name=self.node_name,
            volumes_dir=volumes,
            host_ip=gateway,
            kubelet=kubelet,
            kubelet_api=api,
        )

    # -- more nodes (tests of node loss) ---------------------------------------------------------

    async def add_node(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Register another node, Ready, whose pods run on the process node's kubelet and
        whose claims of the `local-node` StorageClass get volumes bound to it (node affinity,
        as local-path-provisioner's). The default single node is unchanged: only pods that
        may run on `name` (a nodeSelector on `labels`, or the scheduler's choice) go there."""
        if self._client is None or self._node is None:
            raise RuntimeError("the control plane is not running: start it first")
        agent = NodeAgent(
            self._client,
            name=name,
            volumes_dir=self.run_dir / "nodes" / name / "volumes",
            host_ip=self._node.host_ip,
            kubelet=self._node.kubelet,
            kubelet_api=self._node.kubelet_api,
            labels=labels,
            node_local_only=True,
        )
        await agent.start()
        self._added[name] = agent

    async def lose_node(self, name: str) -> None:
        """The node added as `name` is lost for good: its pods' processes die at once, its
        volumes' filesystems go, it reports nothing more (no Lease renewal, no pod status),
        so kube-controller-manager's node lifecycle marks it NotReady after its grace period.
        The Node object stays, as a cluster's does until someone deletes it."""
        agent = self._added.pop(name)
        await agent.stop()

    async def remove_nodes(self, names: list[str]) -> None:
        """Lose the added nodes `names` (those not lost yet) and delete their Node objects
        (a test's clean-up)."""
        for name in names:
            if name in self._added:
                await self.lose_node(name)
            if self._client is not None:
                with contextlib.suppress(NotFoundError):
                    await self._client.delete(NODES, name)

    async def stop(self) -> None:
        """Stop the node and every process (last started, first stopped)."""
        for agent in self._added.values():
            await agent.stop()
        self._added = {}
        if self._node is not None:
            await self._node.stop()
            self._node = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        for process in reversed(self.processes):
            await process.stop()
        self._components = []
        self._apiserver = self._etcd = None

    async def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone (tests of reconnection); `start_apiserver` brings it back."""
        assert self._apiserver is not None
        await self._apiserver.stop()

    async def start_apiserver(self) -> None:
        """Start kube-apiserver (again) on the same port and wait until it is ready."""
        assert self._apiserver is not None
        await self._apiserver.start()
        await self._apiserver.wait_healthy(self._apiserver_ready, START_TIMEOUT)

    # -- certificates ---------------------------------------------------------------------------

    def _write_pki(self) -> None:
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        authority = x509.new_authority("envtest-ca", valid_for=_CERT_LIFETIME)
        self._write("ca", authority)
        serving = x509.issue(
            authority,
            "kube-apiserver",
            valid_for=_CERT_LIFETIME,
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=[
                "127.0.0.1",
                KUBERNETES_SERVICE_IP,
                *([self.pod_network.gateway] if self.pod_network else []),
            ],
            server=True,
        )
        self._write("apiserver", serving)
        # Service-account tokens are signed with a key of their own, as in a real cluster.
        self._write(
            "service-account", x509.new_authority("service-accounts", valid_for=_CERT_LIFETIME)
        )
        kubelet_addresses = ["127.0.0.1", *([self.pod_network.gateway] if self.pod_network else [])]
        self._write(
            "kubelet",
            x509.issue(
                authority,
                self.node_name,
                valid_for=_CERT_LIFETIME,
                dns_names=[self.node_name],
                ip_addresses=kubelet_addresses,
                server=True,
            ),
        )
        users = {
            "admin": ("envtest-admin", ["system:masters"]),
            "apiserver-kubelet-client": (API_SERVER_CLIENT, []),
            "controller-manager": ("system:kube-controller-manager", []),
            "scheduler": ("system:kube-scheduler", []),
        }
        for file_name, (user, groups) in users.items():
            client_cert = x509.issue(
                authority, user, valid_for=_CERT_LIFETIME, organizations=groups, client=True
            )
            self._write(file_name, client_cert)

    def _write(self, name: str, pair: x509.Certificate) -> None:
        (self.pki_dir / f"{name}.crt").write_bytes(pair.certificate_pem)
        key = self.pki_dir / f"{name}.key"
        key.write_bytes(pair.key_pem)
        key.chmod(0o600)

    def _kubeconfig_for(self, user: str) -> Path:
        path = self.kubeconfig if user == "admin" else self.run_dir / f"{user}.kubeconfig"
        path.write_text(
            _kubeconfig(
                self.server,
                self.pki_dir / "ca.crt",
                {
                    "client-certificate": str(self.pki_dir / f"{user}.crt"),
                    "client-key": str(self.pki_dir / f"{user}.key"),
                },
                user,
            )
        )
        return path

    async def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig that authenticates as ServiceAccount `namespace/name` with a token from
        the TokenRequest API (valid a day): what a pod of that account holds in a cluster."""
        if self._client is None:
            raise RuntimeError("the control plane is not running: start it first")
        token = await self._client.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400},
            },
        )
        path = self.run_dir / f"serviceaccount-{namespace}-{name}.kubeconfig"
        credentials = {"token": token["status"]["token"]}
        path.write_text(
            _kubeconfig(self.server, self.pki_dir / "ca.crt", credentials, f"{namespace}:{name}")
        )
        return path

    # -- processes ------------------------------------------------------------------------------

    async def _start_etcd(self, bin_dir: Path) -> None:
        client_url = self.etcd_url
        peer_url = f"http://127.0.0.1:{self.ports.etcd_peer}"
        self._etcd = Process(
            "etcd",
            [
                str(bin_dir / "etcd"),
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",  # test data; fsync would dominate start-up time
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
            self.run_dir,
        )
        await self._etcd.start()
        await self._etcd.wait_healthy(self._etcd_healthy, START_TIMEOUT)

    def _apiserver_argv(self, bin_dir: Path) -> list[str]:
        pki = self.pki_dir
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.ports.apiserver}",
            *self._apiserver_address_flags(),
            f"--service-cluster-ip-range={SERVICE_NETWORK}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'service-account.crt'}",
            f"--service-account-signing-key-file={pki / 'service-account.key'}",
            # The kubelet API (logs, exec, attach, port-forward) with mutual TLS: the node
            # proves itself with a certificate of the run's CA and accepts only this client.
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--profiling=false",
            "--v=1",
        ]

    def _apiserver_address_flags(self) -> list[str]:
        if self.pod_network is None:
            return [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # Endpoints may not hold loopback addresses: the `kubernetes` Service gets none.
                "--endpoint-reconciler-type=none",
            ]
        # Pods reach the API server through the `kubernetes` Service, routed by the node to
        # the address advertised here; the namespace of the run is the only one it listens in.
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={self.pod_network.gateway}",
            "--endpoint-reconciler-type=lease",
        ]

    async def _start_components(self, bin_dir: Path) -> None:
        controller_manager_config = self._kubeconfig_for("controller-manager")
        scheduler_config = self._kubeconfig_for("scheduler")
        pki = self.pki_dir
        shared = ["--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false", "--v=1"]
        self._components = [
            Process(
                "kube-controller-manager",
                [
                    str(bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={controller_manager_config}",
                    f"--authentication-kubeconfig={controller_manager_config}",
                    f"--authorization-kubeconfig={controller_manager_config}",
                    f"--secure-port={self.ports.controller_manager}",
                    f"--service-account-private-key-file={pki / 'service-account.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    "--use-service-account-credentials=true",
                    f"--service-cluster-ip-range={SERVICE_NETWORK}",
                    "--allocate-node-cidrs=false",
                    # Faster than the defaults (20/30) so that benchmarks measure the operator,
                    # not the rate limits of the StatefulSet controller.
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                    *shared,
                ],
                self.run_dir,
            ),
            Process(
                "kube-scheduler",
                [
                    str(bin_dir / "kube-scheduler"),
                    f"--kubeconfig={scheduler_config}",
                    f"--authentication-kubeconfig={scheduler_config}",
                    f"--authorization-kubeconfig={scheduler_config}",
                    f"--secure-port={self.ports.scheduler}",
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                    *shared,
                ],
                self.run_dir,
            ),
        ]
        for process, port in zip(
            self._components, (self.ports.controller_manager, self.ports.scheduler), strict=True
        ):
            await process.start()
            await process.wait_healthy(self._component_healthy(port), START_TIMEOUT)

    # -- health ---------------------------------------------------------------------------------

    def _tls(self, client_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        if client_cert:
            context.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return context

    async def _etcd_healthy(self) -> bool:
        async with aiohttp.ClientSession() as session, session.get(f"{self.etcd_url}/health") as r:
            return r.status == 200 and json.loads(await r.text()).get("health") == "true"

    async def _apiserver_ready(self) -> bool:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.server}/readyz", ssl=self._tls(client_cert=True)) as response,
        ):
            return response.status == 200

    def _component_healthy(self, port: int) -> _HealthCheck:
        return _HealthCheck(f"https://127.0.0.1:{port}/healthz")

    async def _wait_ready(self, client: Client) -> None:
        """Wait for what tests rely on: the Ready node and the `default` ServiceAccount."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while True:
            try:
                node = await client.get(NODES, self.node_name)
                await client.get(NAMESPACES, "default")
                await client.get(SERVICE_ACCOUNTS, "default", "default")
            except NotFoundError:
                node = None
            conditions = (node or {}).get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"the node {self.node_name} was not Ready in {START_TIMEOUT}s")
            await asyncio.sleep(0.1)


class _HealthCheck:
    """GET a component's /healthz; its serving certificate is self-signed, so skip verification."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __call__(self) -> bool:
        async with aiohttp.ClientSession() as session, session.get(self.url, ssl=False) as r:
            return r.status == 200
