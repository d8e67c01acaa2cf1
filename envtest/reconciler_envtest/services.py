"""Service discovery and routing of the process node: hosts files for DNS, a proxy for ClusterIPs.

Names: instead of a DNS server, each namespace gets a hosts file, mounted at `/etc/hosts` in
its pods, with the names cluster DNS would answer there (`svc`, `svc.ns`, `svc.ns.svc`,
`svc.ns.svc.cluster.local`, and `host.subdomain...` for pods with a subdomain); the node's own
file (mounted over `/etc/hosts` of the whole e2e run) has the qualified forms only. Files are
rewritten in place, because a bind mount follows the inode.

Routing: each Service ClusterIP is an address of the node's services link; the node listens on
each of its ports and forwards connections to one ready endpoint address (kube-proxy's
userspace mode). Headless Services resolve to their endpoint addresses directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

JSON = dict[str, Any]
DOMAIN = "cluster.local"
# How long the proxy tries to reach an endpoint before it drops the client's connection.
CONNECT_TIMEOUT = 5.0


def _forms(name: str, namespace: str, *, local: bool) -> list[str]:
    qualified = [
        f"{name}.{namespace}.svc.{DOMAIN}",
        # The absolute name too (PGO writes pgBackRest's hosts so): DNS answers it like the
        # other, a hosts file only if it lists it.
        f"{name}.{namespace}.svc.{DOMAIN}.",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}",
    ]
    return [*qualified, name] if local else qualified


def endpoint_addresses(endpoints: JSON | None, *, ready_only: bool = True) -> list[JSON]:
    """The addresses of an Endpoints object (with their hostnames), ready ones by default."""
    found: list[JSON] = []
    for subset in (endpoints or {}).get("subsets") or []:
        found += subset.get("addresses") or []
        if not ready_only:
            found += subset.get("notReadyAddresses") or []
    return found


def hosts_entries(
    services: Iterable[JSON],
    endpoints: Mapping[tuple[str, str], JSON],
    pods: Iterable[JSON],
    namespace: str | None,
) -> list[tuple[str, str]]:
    """(address, name) pairs for a hosts file seen from `namespace` (None: the node's file)."""
    entries: list[tuple[str, str]] = []
    for service in services:
        meta, spec = service["metadata"], service.get("spec") or {}
        local = meta["namespace"] == namespace
        names = _forms(meta["name"], meta["namespace"], local=local)
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            entries += [(cluster_ip, name) for name in names]
            continue
        published = bool(spec.get("publishNotReadyAddresses"))
        found = endpoints.get((meta["namespace"], meta["name"]))
        for address in endpoint_addresses(found, ready_only=not published):
            entries += [(address["ip"], name) for name in names]
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or not spec.get("subdomain"):
            continue
        host = f"{spec.get('hostname') or meta['name']}.{spec['subdomain']}"
        local = meta["namespace"] == namespace
        entries += [(ip, name) for name in _forms(host, meta["namespace"], local=local)]
    return entries


def hosts_text(entries: Iterable[tuple[str, str]], own: tuple[str, str] | None = None) -> str:
    """A hosts file: localhost, the pod's own name, then one line per address."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if own is not None:
        lines.append(f"{own[0]}\t{own[1]}")
    by_address: dict[str, list[str]] = {}
    for address, name in entries:
        names = by_address.setdefault(address, [])
        if name not in names:
            names.append(name)
    lines += [f"{address}\t{' '.join(names)}" for address, names in sorted(by_address.items())]
    return "\n".join(lines) + "\n"


def write_in_place(path: Path, text: str) -> None:
    """Rewrite a (possibly bind-mounted) file without replacing its inode."""
    if path.exists() and path.read_text() == text:
        return
    with path.open("a+") as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(text)


class ServiceProxy:
    """Listens on every ClusterIP port and forwards each connection to a ready endpoint."""

    def __init__(self) -> None:
        self._servers: dict[tuple[str, int], asyncio.Server] = {}
        self._targets: dict[tuple[str, int], list[tuple[str, int]]] = {}
        self._turn = itertools.count()

    async def update(
        self, services: Iterable[JSON], endpoints: Mapping[tuple[str, str], JSON]
    ) -> None:
        """Listen for exactly the ports of `services`, routing to their current endpoints."""
        wanted: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for service in services:
            spec = service.get("spec") or {}
            ip = spec.get("clusterIP")
            if not ip or ip == "None":
                continue
            meta = service["metadata"]
            found = endpoints.get((meta["namespace"], meta["name"]))
            for port in spec.get("ports") or []:
                if port.get("protocol", "TCP") != "TCP":
                    continue
                wanted[(ip, int(port["port"]))] = _targets(found, port)
        self._targets = wanted
        for key in set(self._servers) - set(wanted):
            self._servers.pop(key).close()
        for key in set(wanted) - set(self._servers):
            try:
                self._servers[key] = await asyncio.start_server(self._forward(key), *key)
            except OSError as error:  # the address is not on the link yet: next update
                log.debug("service proxy cannot listen yet", address=key, error=str(error))

    async def close(self) -> None:
        """Stop listening."""
        for server in self._servers.values():
            server.close()
        self._servers.clear()

    def _forward(self, key: tuple[str, int]) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            targets = self._targets.get(key) or []
            if not targets:
                writer.close()
                return
            host, port = targets[next(self._turn) % len(targets)]
            try:
                # A cut-off pod's address drops SYNs: unbounded, each attempt would hold a
                # handler for the kernel's whole SYN retry time (about two minutes).
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout=CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                writer.close()
                return
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

        return handle


def _targets(endpoints: JSON | None, port: JSON) -> list[tuple[str, int]]:
    """The (address, port) pairs behind one Service port."""
    result: list[tuple[str, int]] = []
    target = port.get("targetPort", port["port"])
    for subset in (endpoints or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        number = next(
            (p["port"] for p in ports if p.get("name") == port.get("name") or len(ports) == 1),
            target if isinstance(target, int) else None,
        )
        if number is None:
            continue
        result += [(a["ip"], int(number)) for a in subset.get("addresses") or []]
    return result


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
