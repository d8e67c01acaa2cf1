"""SQL that provisions what `spec.users` asks for, as PGO provisions it.

Pure builders: each returns statements with identifiers and literals quoted here (DDL cannot
take bind parameters), so that every odd name is tested without a database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Every database that accepts connections; template0 never changes.
DATABASES_QUERY = (
    "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn AND datname <> 'template0' "
    "ORDER BY datname"
)


def identifier(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """`value` as a quoted SQL string literal (standard_conforming_strings is on)."""
    return "'" + value.replace("'", "''") + "'"


def statements_revision(statements: Sequence[str]) -> str:
    """A digest of SQL statements, recorded in the status once they ran: they run again only
    when it changes (a new verifier, a feature turned off or on)."""
    return hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]


def role_statements(name: str, options: str, verifier: str) -> list[str]:
    """Create the role if missing (a user: LOGIN), then set its options and password.

    The password is the SCRAM verifier from the user's Secret: PostgreSQL stores it as given,
    so the plain password never reaches the server. Options are the spec's SQL fragment, which
    the CRD already refuses to contain PASSWORD.
    """
    role = identifier(name)
    create = (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {literal(name)}) "
        f"THEN CREATE ROLE {role} LOGIN; END IF; END $$"
    )
    alter = f"ALTER ROLE {role}"
    if options.strip():
        alter += f" WITH {options.strip()}"
    return [create, f"{alter} PASSWORD {literal(verifier)}"]


def database_exists(database: str) -> str:
    """A query returning a row when `database` exists (CREATE DATABASE has no IF NOT EXISTS and
    cannot run inside a function, so the caller checks first)."""
    return f"SELECT 1 FROM pg_catalog.pg_database WHERE datname = {literal(database)}"


def create_database(database: str) -> str:
    """CREATE DATABASE, owned by the superuser as in PGO; users get privileges by grant."""
    return f"CREATE DATABASE {identifier(database)}"


def grant_database(database: str, user: str) -> str:
    """Every privilege on the database to a user that lists it."""
    return f"GRANT ALL PRIVILEGES ON DATABASE {identifier(database)} TO {identifier(user)}"


def schema_statement(user: str) -> str:
    """The user's own schema (AutoCreateUserSchema), owned by the user; run in each database."""
    return f"CREATE SCHEMA IF NOT EXISTS {identifier(user)} AUTHORIZATION {identifier(user)}"


def users_revision(
    users: Iterable[Mapping[str, Any]], verifiers: Mapping[str, str], *, schemas: bool
) -> str:
    """A digest of everything the SQL depends on: re-run only when it changes."""
    document = {
        "users": [dict(u) for u in users],
        "verifiers": dict(sorted(verifiers.items())),
        "schemas": schemas,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def databases_of(users: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every database the users list, once each, in spec order."""
    return list(dict.fromkeys(str(d) for user in users for d in user.get("databases") or []))
