"""The pod network of the process node: a bridge, and a network namespace per pod.

Everything here happens inside the network namespace the e2e harness runs in (`isolated`): the
bridge is that namespace's, so pods reach each other, the control plane and the node's Service
proxy, and nothing else. A pod's namespace is held by its sandbox process (a kubelet's "pause"
container): killing it releases the namespace with its veth.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

POD_NETWORK = "10.244.0.0/16"
BRIDGE = "envtest0"
# ClusterIPs are held by the loopback link: local to the node, reachable from pods through the
# bridge (a Linux host accepts packets for any of its addresses on any link).
SERVICES_LINK = "lo"


class NetworkError(RuntimeError):
    """A command setting up the pod network failed."""


async def run(*argv: str) -> str:
    """Run one command; its output, or `NetworkError` with its stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
    return out.decode()


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """The bridge's network: the gateway (the node itself) and the pods' addresses."""

    cidr: str = POD_NETWORK

    @property
    def gateway(self) -> str:
        """The node's address on the bridge: pods reach the API server and Services here."""
        return str(next(ipaddress.IPv4Network(self.cidr).hosts()))

    @property
    def prefix(self) -> int:
        """The network's prefix length."""
        return ipaddress.IPv4Network(self.cidr).prefixlen

    def pod_addresses(self) -> Iterator[str]:
        """Every pod address, after the gateway's."""
        hosts = ipaddress.IPv4Network(self.cidr).hosts()
        next(hosts)
        return (str(address) for address in hosts)

    async def create_bridge(self) -> None:
        """The bridge with the gateway address."""
        await run("ip", "link", "set", "lo", "up")
        await run("ip", "link", "add", BRIDGE, "type", "bridge")
        await run("ip", "addr", "add", f"{self.gateway}/{self.prefix}", "dev", BRIDGE)
        await run("ip", "link", "set", BRIDGE, "up")

    async def attach(self, sandbox_pid: int, address: str) -> None:
        """Give the sandbox's namespace an `eth0` on the bridge with `address`."""
        host_end = host_link(address)
        # A namespace goes away asynchronously: the link of the address's last pod may linger.
        await detach(address)
        await run(
            "ip", "link", "add", host_end, "type", "veth",
            "peer", "name", "eth0", "netns", str(sandbox_pid),
        )  # fmt: skip
        await run("ip", "link", "set", host_end, "master", BRIDGE, "up")
        inside = ("nsenter", f"--net=/proc/{sandbox_pid}/ns/net", "ip")
        await run(*inside, "link", "set", "lo", "up")
        await run(*inside, "addr", "add", f"{address}/{self.prefix}", "dev", "eth0")
        await run(*inside, "link", "set", "eth0", "up")
        await run(*inside, "route", "add", "default", "via", self.gateway)


async def set_service_addresses(current: set[str], wanted: Sequence[str]) -> set[str]:
    """Hold exactly `wanted` ClusterIPs on the services link; returns the new set.

    Both directions are idempotent (`replace`; a missing address is not an error): after an
    update that failed half-way, the next one must not fail again on what the first did."""
    for address in set(wanted) - current:
        await run("ip", "addr", "replace", f"{address}/32", "dev", SERVICES_LINK)
    for address in current - set(wanted):
        with contextlib.suppress(NetworkError):
            await run("ip", "addr", "del", f"{address}/32", "dev", SERVICES_LINK)
    return set(wanted)


def host_link(address: str) -> str:
    """The node's end of the veth of the pod with `address` (at most 15 characters)."""
    return "vp" + ipaddress.IPv4Address(address).packed.hex()


async def detach(address: str) -> None:
    """Remove the veth of the pod with `address` (both ends), if it is still there."""
    with contextlib.suppress(NetworkError):
        await run("ip", "link", "del", host_link(address))
