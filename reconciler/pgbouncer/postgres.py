"""What pgBouncer needs inside PostgreSQL, as PGO sets it up: the `_crunchypgbouncer` role
(TLS and SCRAM only), and in every database (templates included, so new databases inherit it)
a `pgbouncer` schema holding `get_auth`, a SECURITY DEFINER function that returns the stored
verifier of ordinary login roles, for pgBouncer's `auth_query`.

Pure builders: statements with names and literals quoted here, run by the operator over its
certificate connection as the superuser.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler import naming
from reconciler.postgres.sql import identifier, literal, statements_revision

SCHEMA = "pgbouncer"


def hba(*, enabled: bool) -> list[str]:
    """pg_hba lines right after the operator's own: pgBouncer over TLS with SCRAM, nothing
    else for its role."""
    if not enabled:
        return []
    user = naming.PGBOUNCER_USER
    return [f'hostssl all "{user}" all "scram-sha-256"', f'host all "{user}" all "reject"']


# Only ordinary login roles are handed to pgBouncer: never a superuser (that would make the
# pgBouncer role one in effect), a replication role, itself, or an expired password.
_GET_AUTH_BODY = f"""
  SELECT rolname::TEXT, rolpassword::TEXT
  FROM pg_catalog.pg_authid
  WHERE pg_authid.rolname = $1
    AND pg_authid.rolcanlogin
    AND NOT pg_authid.rolsuper
    AND NOT pg_authid.rolreplication
    AND pg_authid.rolname <> {literal(naming.PGBOUNCER_USER)}
    AND (pg_authid.rolvaliduntil IS NULL OR pg_authid.rolvaliduntil >= CURRENT_TIMESTAMP)"""


def enable_statements(verifier: str) -> list[str]:
    """One transaction per database: the role (once), its one schema, `get_auth`, its
    privileges, and the role's login with its SCRAM verifier."""
    role, schema = identifier(naming.PGBOUNCER_USER), identifier(SCHEMA)
    user = literal(naming.PGBOUNCER_USER)
    function = f"{schema}.get_auth(username TEXT)"
    return [
        "SET LOCAL synchronous_commit = LOCAL",
        (
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {user}) "
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
        ),
        # Nothing but its own schema: revoke what may have been granted elsewhere (public).
        (
            "DO $$ DECLARE s name; BEGIN "
            "FOR s IN SELECT nspname FROM pg_catalog.pg_namespace "
            f"WHERE pg_catalog.has_schema_privilege({user}, oid, 'CREATE, USAGE') "
            f"AND nspname NOT IN ('pg_catalog', {literal(SCHEMA)}) LOOP "
            f"EXECUTE pg_catalog.format('REVOKE ALL PRIVILEGES ON SCHEMA %I FROM %I', s, {user});"
            " END LOOP; END $$"
        ),
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"REVOKE ALL PRIVILEGES ON SCHEMA {schema} FROM PUBLIC, {role}",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        (
            f"CREATE OR REPLACE FUNCTION {function} "
            f"RETURNS TABLE(username TEXT, password TEXT) AS {literal(_GET_AUTH_BODY)} "
            "LANGUAGE SQL STABLE SECURITY DEFINER"
        ),
        f"REVOKE ALL PRIVILEGES ON FUNCTION {function} FROM PUBLIC, {role}",
        f"GRANT EXECUTE ON FUNCTION {function} TO {role}",
        f"ALTER ROLE {role} SET search_path TO {literal(SCHEMA)}",
        f"ALTER ROLE {role} LOGIN PASSWORD {literal(verifier)}",
    ]


def disable_statements() -> list[str]:
    """One transaction per database: the schema and anything else the role owns there."""
    user = literal(naming.PGBOUNCER_USER)
    return [
        "SET LOCAL synchronous_commit = LOCAL",
        f"DROP SCHEMA IF EXISTS {identifier(SCHEMA)} CASCADE",
        (
            "DO $$ BEGIN "
            f"IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {user}) "
            f"THEN EXECUTE pg_catalog.format('DROP OWNED BY %I CASCADE', {user}); END IF; "
            "END $$"
        ),
    ]


def drop_role() -> str:
    """The role itself, once every database is rid of what it owned."""
    return f"DROP ROLE IF EXISTS {identifier(naming.PGBOUNCER_USER)}"


def revision(statements: Sequence[str]) -> str:
    """`status.proxy.pgBouncer.postgresRevision`: a digest of the SQL; it runs again only when
    that changes (a new verifier, pooling turned off or on)."""
    return statements_revision(statements)
