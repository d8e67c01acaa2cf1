"""pgBackRest's contributions to PostgreSQL."""

from __future__ import annotations

from reconciler.pgbackrest.postgres import archive_parameters


def test_without_a_repository_archiving_succeeds_without_keeping_wal() -> None:
    """WAL must not pile up behind an archive_command that can never succeed."""
    assert archive_parameters() == {"archive_mode": "on", "archive_command": "true"}
