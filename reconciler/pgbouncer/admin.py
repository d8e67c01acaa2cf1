"""pgBouncer's admin console, as the operator uses it: PAUSE every pool before the primary
moves, RESUME once the new primary takes writes.

While paused, pgBouncer lets running transactions finish, closes its server connections, and
holds new queries (clients stay connected and wait); on RESUME it opens connections to
whatever `<c>-primary` reaches then. With transaction pooling, clients see a delay and no
error. The console is reached on each pod's address with TLS verify-full: the certificate is
verified for the pgBouncer Service's name, the one it is issued for, whatever address the
connection went to. The login is `_crunchypgbouncer` (`admin_users`), with its password from
`<c>-pgbouncer`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from reconciler import naming
from reconciler.pgbouncer import config

log = structlog.get_logger(__name__)
CONNECT_TIMEOUT = 5.0
# What a connection to a server that is away, refuses, or breaks off raises.
CONNECTION_FAILURES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class _VerifiedAs(ssl.SSLContext):
    """Verifies the server's certificate for `expected`, not for the address connected to:
    clients (asyncpg here) pass the address they dialled as the server's name."""

    expected = ""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: Any = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.expected, session)


def console_tls(authority_pem: str, service_name: str) -> ssl.SSLContext:
    """TLS for the admin console of every pod behind the Service `service_name`."""
    context = _VerifiedAs(ssl.PROTOCOL_TLS_CLIENT)
    context.expected = service_name
    context.load_verify_locations(cadata=authority_pem)
    return context


@dataclass(frozen=True, slots=True)
class Consoles:
    """The admin consoles of a cluster's running pgBouncers."""

    addresses: Sequence[str]
    port: int
    password: str
    tls: ssl.SSLContext

    async def _command(self, address: str, command: str, timeout: float) -> bool:
        """Run `command` on one console; False (logged) when it failed or timed out."""
        try:
            db = await asyncpg.connect(
                host=address,
                port=self.port,
                user=naming.PGBOUNCER_USER,
                password=self.password,
                database=config.ADMIN_DATABASE,
                ssl=self.tls,
                timeout=CONNECT_TIMEOUT,
                statement_cache_size=0,
            )
        except CONNECTION_FAILURES as error:
            log.info("pgBouncer's console not reachable", address=address, error=repr(error))
            return False
        try:
            await db.execute(command, timeout=timeout)
        except CONNECTION_FAILURES as error:
            log.info("pgBouncer refused or timed out", command=command, error=repr(error))
            return False
        finally:
            db.terminate()
        return True

    async def pause(self, timeout: float) -> bool:
        """PAUSE every pgBouncer; True when all of them reported their pools paused within
        `timeout` (a long transaction holds PAUSE until it ends)."""
        done = await asyncio.gather(*(self._command(a, "PAUSE", timeout) for a in self.addresses))
        return all(done)

    async def resume(self) -> None:
        """RESUME every pgBouncer (one that was not paused refuses, harmlessly)."""
        await asyncio.gather(*(self._command(a, "RESUME", CONNECT_TIMEOUT) for a in self.addresses))
