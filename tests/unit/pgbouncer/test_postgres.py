"""What pgBouncer needs inside PostgreSQL: hba lines, the role, schema and function."""

from __future__ import annotations

from reconciler.pgbouncer import postgres


def test_hba_allows_the_role_over_tls_with_scram_only() -> None:
    assert postgres.hba(enabled=True) == [
        'hostssl all "_crunchypgbouncer" all "scram-sha-256"',
        'host all "_crunchypgbouncer" all "reject"',
    ]
    assert postgres.hba(enabled=False) == []


def test_enable_creates_the_role_schema_and_a_guarded_function() -> None:
    statements = postgres.enable_statements("SCRAM-SHA-256$4096:x'y")
    text = "\n".join(statements)
    assert 'CREATE ROLE "_crunchypgbouncer" NOLOGIN' in text
    assert 'CREATE SCHEMA IF NOT EXISTS "pgbouncer"' in text
    assert 'REVOKE ALL PRIVILEGES ON SCHEMA "pgbouncer" FROM PUBLIC, "_crunchypgbouncer"' in text
    function = next(s for s in statements if s.startswith("CREATE OR REPLACE FUNCTION"))
    assert '"pgbouncer".get_auth(username TEXT)' in function
    assert "SECURITY DEFINER" in function
    # Superusers, replication roles and pgBouncer's own role are never handed out; the
    # function's body is one literal, so its quotes are doubled.
    for guard in ("NOT pg_authid.rolsuper", "NOT pg_authid.rolreplication", "rolcanlogin"):
        assert guard in function
    assert "rolname <> ''_crunchypgbouncer''" in function
    assert statements[-1] == (
        "ALTER ROLE \"_crunchypgbouncer\" LOGIN PASSWORD 'SCRAM-SHA-256$4096:x''y'"
    )
    assert 'GRANT EXECUTE ON FUNCTION "pgbouncer".get_auth(username TEXT)' in text


def test_disable_drops_the_schema_and_what_the_role_owns() -> None:
    text = "\n".join(postgres.disable_statements())
    assert 'DROP SCHEMA IF EXISTS "pgbouncer" CASCADE' in text
    assert "DROP OWNED BY %I CASCADE" in text
    assert postgres.drop_role() == 'DROP ROLE IF EXISTS "_crunchypgbouncer"'


def test_revision_follows_the_sql() -> None:
    first = postgres.revision(postgres.enable_statements("a"))
    assert first == postgres.revision(postgres.enable_statements("a"))
    assert first != postgres.revision(postgres.enable_statements("b"))
    assert first != postgres.revision(postgres.disable_statements())
