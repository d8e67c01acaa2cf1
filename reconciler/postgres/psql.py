"""Scripts run by psql itself, as PGO runs `spec.databaseInitSQL`: meta-commands (`\\c`,
`\\set ON_ERROR_STOP`) work, and psql's exit code decides success.

PGO execs `psql -Xw --file=-` in the primary's database container. The operator runs the same
program from its own process instead, over TLS verify-full with its short-lived superuser
certificate (the path every SQL of the operator takes), so it needs no `pods/exec` permission;
psql comes with its image (`postgresql-client`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from reconciler.pki import x509
from reconciler.postgres import connection

PSQL = "psql"
TIMEOUT = 600.0
"""How long a script may run before psql is stopped."""
EXIT_CONNECTION = 2
"""psql's exit code when the connection to the server failed or went bad."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How psql ended, and what it printed (stdout and stderr, interleaved)."""

    returncode: int
    output: str

    def errors(self, limit: int = 3) -> str:
        """psql's error lines (`ERROR:`, `FATAL:`), at most `limit`: what a Warning may quote.
        Context lines (`LINE 1: ...`, `DETAIL:`) are left out, as they can echo the script's
        own text, credentials included."""
        marks = ("ERROR:", "FATAL:", "psql: error:")
        lines = [line.strip() for line in self.output.splitlines() if any(m in line for m in marks)]
        return "; ".join(lines[:limit]) or f"psql exited with code {self.returncode}"


async def run_script(host: str, port: int, root: x509.Certificate, script: str) -> Outcome:
    """Run `script` with `psql -Xw --file=-` as the superuser in database `postgres` on `host`
    (the primary Service's name); raises FileNotFoundError when psql is not installed."""
    with connection.client_files(root) as files:
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGHOST": host,
            "PGPORT": str(port),
            "PGUSER": connection.SUPERUSER,
            "PGDATABASE": "postgres",
            "PGSSLMODE": "verify-full",
            "PGSSLCERT": str(files / "tls.crt"),
            "PGSSLKEY": str(files / "tls.key"),
            "PGSSLROOTCERT": str(files / "ca.crt"),
            "PGCONNECT_TIMEOUT": str(int(connection.CONNECT_TIMEOUT)),
            "PGAPPNAME": "postgres-operator",
        }
        process = await asyncio.create_subprocess_exec(
            PSQL,
            "-Xw",
            "--file=-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=environment,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(script.encode()), TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode is not None
    return Outcome(process.returncode, output.decode(errors="replace"))
