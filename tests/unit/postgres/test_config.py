"""PostgreSQL's parameters: PGO's precedence, contributions, pgaudit."""

from __future__ import annotations

from reconciler.postgres.config import PostgresSettings, postgres_parameters, wal_directory


def test_parameters_follow_pgo_precedence() -> None:
    """mandatory > contributed > spec.config.parameters > dynamicConfiguration > defaults."""
    settings = PostgresSettings(
        parameters={"jit": "on", "work_mem": "8MB", "ssl": "off", "archive_command": "cp"},
        contributed={"archive_mode": "on", "archive_command": "true"},
    )
    dynamic = {
        "postgresql": {"parameters": {"work_mem": "4MB", "max_connections": 200, "jit": "x"}}
    }
    parameters = postgres_parameters(settings, dynamic)
    assert parameters["ssl"] == "on"
    assert parameters["work_mem"] == "8MB"
    assert parameters["jit"] == "on"
    assert parameters["max_connections"] == 200
    assert parameters["password_encryption"] == "scram-sha-256"
    assert parameters["wal_level"] == "logical"
    assert parameters["archive_command"] == "true"
    assert list(parameters) == sorted(parameters)


def test_pgaudit_stays_preloaded_next_to_user_libraries() -> None:
    """Libraries the user preloads are kept, and pgaudit is added to them."""
    settings = PostgresSettings(parameters={"shared_preload_libraries": "pg_stat_statements"})
    parameters = postgres_parameters(settings, {})
    assert parameters["shared_preload_libraries"] == "pgaudit,pg_stat_statements"


def test_wal_lives_on_its_own_volume_when_there_is_one() -> None:
    assert wal_directory(15, separate_volume=False) == "/pgdata/pg15_wal"
    assert wal_directory(15, separate_volume=True) == "/pgwal/pg15_wal"


def test_subsystem_libraries_are_preloaded_after_pgaudit_once() -> None:
    """pgMonitor's pg_stat_statements joins pgaudit; the user's own libraries follow."""
    settings = PostgresSettings(preload_libraries=("pg_stat_statements",))
    assert postgres_parameters(settings, {})["shared_preload_libraries"] == (
        "pgaudit,pg_stat_statements"
    )
    mine = PostgresSettings(
        parameters={"shared_preload_libraries": "auto_explain,pg_stat_statements"},
        preload_libraries=("pg_stat_statements",),
    )
    assert postgres_parameters(mine, {})["shared_preload_libraries"] == (
        "pgaudit,pg_stat_statements,auto_explain"
    )
