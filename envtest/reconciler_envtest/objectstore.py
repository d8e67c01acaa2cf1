"""An S3-compatible object store on the run's network, for backup tests: SeaweedFS (`weed
mini`: master, volume server, filer and S3 gateway in one process), built from its Go module.

It serves S3 over HTTPS on port 443 of the pod network's gateway, with a certificate of a CA of
its own (generated per store, as a user's private object store would have), for the name
`s3.objectstore.svc`; `publish` makes that name resolve in pods. Credentials are one access key
pair, generated per store. Buckets are created at start. `stop` and `start` take the store
away and bring it back with its data, for tests of a repository that goes down.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import secrets
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.pki import x509
from reconciler_envtest.binaries import ensure_object_store
from reconciler_envtest.process import Process

NAMESPACE = "objectstore"
SERVICE = "s3"
ENDPOINT = f"{SERVICE}.{NAMESPACE}.svc"
PORT = 443
REGION = "us-east-1"
START_TIMEOUT = 60.0
# `weed mini` names the Unix sockets between its parts after their ports, in /tmp, whatever
# network namespace it runs in: two stores on one machine (two test runs) must use other ports.
_PORT_BASES = {"master": 20000, "volume": 21000, "filer": 22000, "admin": 23000}
_S3_GRPC_BASE = 24000

JSON = dict[str, Any]


class ObjectStore:
    """One SeaweedFS process serving S3 at `ENDPOINT` (the gateway's address, port 443)."""

    def __init__(self, run_dir: Path, address: str, buckets: Sequence[str]) -> None:
        self.address = address
        self.buckets = list(buckets)
        self.directory = run_dir / "objectstore"
        self.access_key = "AK" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_urlsafe(30)
        lifetime = datetime.timedelta(days=1)
        self.authority = x509.new_authority("objectstore-ca", valid_for=lifetime)
        self._serving = x509.issue(
            self.authority,
            ENDPOINT,
            valid_for=lifetime,
            dns_names=[ENDPOINT, f"{ENDPOINT}.cluster.local"],
            ip_addresses=[address],
            server=True,
        )
        self._process: Process | None = None

    @property
    def ca_pem(self) -> bytes:
        """The certificate clients verify the store with."""
        return self.authority.certificate_pem

    async def start(self) -> None:
        """Start the store (again, with the data it had) and wait until S3 answers."""
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.directory / "tls.crt").write_bytes(self._serving.certificate_pem)
        key = self.directory / "tls.key"
        key.touch(mode=0o600)
        key.write_bytes(self._serving.key_pem)
        argv = [
            str(ensure_object_store()),
            "mini",
            f"-dir={data}",
            f"-ip={self.address}",
            f"-ip.bind={self.address}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",  # it would call out to the Internet
            f"-s3.port={PORT}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.cert.file={self.directory / 'tls.crt'}",
            f"-s3.key.file={key}",
            f"-bucket={','.join(self.buckets)}",
            *self._private_ports(),
        ]
        # `weed` makes an admin identity of the key pair in its environment.
        keys = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        self._process = Process("objectstore", argv, self.directory, env=keys)
        await self._process.start()
        await self._process.wait_healthy(self._answers, START_TIMEOUT, interval=0.5)

    def _private_ports(self) -> list[str]:
        """Ports of the store's inner services (their gRPC ports are 10000 above), and its
        sockets' paths, of this store alone: an offset taken from its directory."""
        digest = hashlib.sha256(str(self.directory.resolve()).encode()).digest()
        offset = int.from_bytes(digest[:4], "big") % 1000
        flags = [f"-{name}.port={base + offset}" for name, base in _PORT_BASES.items()]
        return [
            *flags,
            "-admin.port.legacy=0",
            f"-s3.port.grpc={_S3_GRPC_BASE + offset}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
        ]

    async def _answers(self) -> bool:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.address, PORT, ssl=context, server_hostname=ENDPOINT),
            timeout=5,
        )
        try:
            # Unsigned: S3 answers 403, which proves the gateway and its TLS are up.
            writer.write(
                f"GET / HTTP/1.1\r\nHost: {ENDPOINT}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), timeout=5)
        finally:
            writer.close()
        return status.startswith(b"HTTP/1.1 ") and int(status.split()[1]) < 500

    async def stop(self) -> None:
        """Stop the store; its data stays for the next `start`."""
        if self._process is not None:
            await self._process.stop()
            self._process = None

    def service(self) -> tuple[JSON, JSON]:
        """A headless Service and its Endpoints that make `ENDPOINT` resolve to the store."""
        meta = {"name": SERVICE, "namespace": NAMESPACE}
        service: JSON = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"clusterIP": "None", "ports": [{"name": "https", "port": PORT}]},
        }
        endpoints: JSON = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta,
            "subsets": [
                {
                    "addresses": [{"ip": self.address}],
                    "ports": [{"name": "https", "port": PORT}],
                }
            ],
        }
        return service, endpoints
