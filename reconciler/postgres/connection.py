"""The operator's connection to a cluster's primary: TLS verify-full, a certificate, no password.

The operator mints a short-lived client certificate for the `postgres` superuser from the
namespace's root CA (whose key only it holds) for each connection; PostgreSQL accepts it through
the pg_hba rule `hostssl all "postgres" all "cert"` (see `postgres.hba`). The server
is verified against the same root, for the primary Service's name.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

from reconciler.pki import x509

SUPERUSER = "postgres"
CLIENT_CERTIFICATE_LIFETIME = datetime.timedelta(hours=1)
CONNECT_TIMEOUT = 10.0
# The operator's statements carry password verifiers (ALTER ROLE ... PASSWORD): the server must
# never log their text, whatever the cluster's logging settings (log_statement = 'all', slow
# statements) and when one fails (log_min_error_statement adds the statement to an ERROR's
# line; a primary still read-only after a promotion fails them). Its errors are still logged.
# These settings are the superuser's to change, for this session only.
UNLOGGED_STATEMENTS = {
    "log_statement": "none",
    "log_min_error_statement": "panic",
    "log_min_duration_statement": "-1",
}
# Sampled slow statements exist from PostgreSQL 13 on (the CRD admits 11 and 12, which refuse
# an unknown setting at connection time): set after connecting, where the server has it.
SAMPLED_SLOW_STATEMENTS_SINCE = 13


@contextlib.contextmanager
def client_files(root: x509.Certificate) -> Iterator[Path]:
    """A private directory holding a fresh superuser certificate (`tls.crt`, `tls.key`) and
    `root` (`ca.crt`), removed afterwards: for clients that read them from files only."""
    client = x509.issue(root, SUPERUSER, valid_for=CLIENT_CERTIFICATE_LIFETIME)
    with tempfile.TemporaryDirectory(prefix="reconciler-tls-") as directory:
        path = Path(directory)
        (path / "tls.crt").write_bytes(client.certificate_pem)
        (path / "tls.key").touch(mode=0o600)
        (path / "tls.key").write_bytes(client.key_pem)
        (path / "ca.crt").write_bytes(root.certificate_pem)
        yield path


def client_tls(root: x509.Certificate) -> ssl.SSLContext:
    """Verify-full against `root`, presenting a fresh certificate for the superuser."""
    context = ssl.create_default_context(cadata=root.certificate_pem.decode())
    # The ssl module loads a key pair from files only: they live for the length of the load.
    with client_files(root) as files:
        context.load_cert_chain(files / "tls.crt", files / "tls.key")
    return context


@contextlib.asynccontextmanager
async def superuser(
    host: str, port: int, root: x509.Certificate, database: str = "postgres"
) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the superuser to `database` on `host` (the primary Service's name),
    whose statements the server never writes to its log."""
    connection = await asyncpg.connect(
        host=host,
        port=port,
        user=SUPERUSER,
        database=database,
        ssl=client_tls(root),
        timeout=CONNECT_TIMEOUT,
        server_settings=UNLOGGED_STATEMENTS,
    )
    try:
        if connection.get_server_version().major >= SAMPLED_SLOW_STATEMENTS_SINCE:
            await connection.execute("SET log_min_duration_sample = -1")
        yield connection
    finally:
        await connection.close()
