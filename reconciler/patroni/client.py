"""A client of one Patroni member's REST API: mutual TLS, the calls the operator makes.

Patroni serves its API with the instance certificate and, with `verify_client: optional`,
demands a client certificate signed by the cluster's root for every call that changes
something; the operator mints one per client (`postgres.connection.client_tls`). The server is
verified against the same root, for the pod's name under `<c>-pods`.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

JSON = dict[str, Any]
TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)


class PatroniError(RuntimeError):
    """Patroni refused a request or could not be reached; the message says which member."""


class PatroniClient:
    """One member's API at `https://<host>:<port>`."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext) -> None:
        self.base = f"https://{host}:{port}"
        self.host = host
        self._tls = tls

    def member(self, host: str) -> PatroniClient:
        """A client of another member of the same cluster (same port and credentials)."""
        return PatroniClient(host, int(self.base.rsplit(":", 1)[1]), self._tls)

    async def _call(self, method: str, path: str, body: JSON | None = None) -> tuple[int, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as session,
                session.request(method, self.base + path, json=body, ssl=self._tls) as response,
            ):
                text = await response.text()
                try:
                    data: Any = await response.json(content_type=None)
                except ValueError:
                    data = text
                return response.status, data
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise PatroniError(f"Patroni at {self.host} is not reachable: {error!r}") from error

    async def cluster(self) -> JSON:
        """GET /cluster: members with their roles, states, timelines and pending restarts."""
        status, data = await self._call("GET", "/cluster")
        if status != 200 or not isinstance(data, dict):
            raise PatroniError(f"Patroni at {self.host}: GET /cluster answered {status}: {data}")
        return data

    async def status(self) -> JSON:
        """GET /patroni: this member's role, state, timeline and WAL positions (`xlog`)."""
        status, data = await self._call("GET", "/patroni")
        if status not in (200, 503) or not isinstance(data, dict):
            raise PatroniError(f"Patroni at {self.host}: GET /patroni answered {status}: {data}")
        return data

    async def config(self) -> JSON:
        """GET /config: the dynamic configuration in the DCS."""
        status, data = await self._call("GET", "/config")
        if status != 200 or not isinstance(data, dict):
            raise PatroniError(f"Patroni at {self.host}: GET /config answered {status}: {data}")
        return data

    async def patch_config(self, patch: JSON) -> JSON:
        """PATCH /config: merge `patch` into the dynamic configuration (null removes a key)."""
        status, data = await self._call("PATCH", "/config", patch)
        if status != 200 or not isinstance(data, dict):
            raise PatroniError(f"Patroni at {self.host}: PATCH /config answered {status}: {data}")
        return data

    async def switchover(self, leader: str, candidate: str | None) -> str:
        """POST /switchover from `leader` (to `candidate`, or Patroni's choice)."""
        body: JSON = {"leader": leader}
        if candidate:
            body["candidate"] = candidate
        return await self._action("/switchover", body)

    async def failover(self, candidate: str) -> str:
        """POST /failover to `candidate`, with or without a healthy leader."""
        return await self._action("/failover", {"candidate": candidate})

    async def restart(self) -> str:
        """POST /restart of this member's PostgreSQL."""
        return await self._action("/restart", {})

    async def _action(self, path: str, body: JSON) -> str:
        status, data = await self._call("POST", path, body)
        if status not in (200, 202):
            raise PatroniError(f"Patroni at {self.host}: POST {path} answered {status}: {data}")
        return str(data)
