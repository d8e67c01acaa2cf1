"""What pgMonitor needs in PostgreSQL: pg_hba, preloaded libraries, the role's SQL."""

from __future__ import annotations

from reconciler.pgmonitor import postgres


def test_hba_limits_the_role_to_scram_over_loopback() -> None:
    assert postgres.hba(enabled=False) == []
    assert postgres.hba(enabled=True) == [
        'host all "ccp_monitoring" "127.0.0.0/8" "scram-sha-256"',
        'host all "ccp_monitoring" "::1/128" "scram-sha-256"',
        'host all "ccp_monitoring" all "reject"',
    ]


def test_pg_stat_statements_is_preloaded_while_monitoring_is_on() -> None:
    assert postgres.preload_libraries(enabled=True) == ("pg_stat_statements",)
    assert postgres.preload_libraries(enabled=False) == ()


def test_setup_creates_the_role_once_and_sets_its_verifier_last() -> None:
    statements = postgres.setup_statements("SCRAM-SHA-256$4096:it's")
    assert 'CREATE ROLE "ccp_monitoring" NOLOGIN' in statements[2]
    assert 'GRANT pg_monitor TO "ccp_monitoring"' in statements
    assert statements[-1] == (
        "ALTER ROLE \"ccp_monitoring\" LOGIN PASSWORD 'SCRAM-SHA-256$4096:it''s'"
    )
    functions = [s for s in statements if s.startswith("CREATE OR REPLACE FUNCTION")]
    assert len(functions) == 2
    for function in functions:
        # Callable by the role only, and not hijacked by what it puts on its search_path.
        assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in function
    grants = [s for s in statements if s.startswith("GRANT EXECUTE")]
    assert grants == [
        'GRANT EXECUTE ON FUNCTION "monitor".pgbackrest_backups() TO "ccp_monitoring"',
        'GRANT EXECUTE ON FUNCTION "monitor".data_disks() TO "ccp_monitoring"',
    ]


def test_every_database_gets_pg_stat_statements() -> None:
    assert "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" in (
        postgres.every_database_statements()
    )


def test_turning_off_takes_the_login_away() -> None:
    (statement,) = postgres.disable_statements()
    assert "ALTER ROLE %I NOLOGIN" in statement
