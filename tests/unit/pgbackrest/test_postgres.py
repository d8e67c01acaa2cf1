"""pgBackRest's PostgreSQL parameters, as PGO sets them."""

from __future__ import annotations

from reconciler.pgbackrest.postgres import archive_parameters, backups_enabled, standby_repo

RESTORE = 'pgbackrest --stanza=db archive-get %f "%p"'


def test_without_backups_archiving_succeeds_and_keeps_nothing() -> None:
    assert archive_parameters(backups=False) == {
        "archive_mode": "on",
        "archive_command": "true",
        "restore_command": RESTORE,
    }


def test_with_backups_wal_goes_to_the_repositories() -> None:
    assert archive_parameters(backups=True) == {
        "archive_mode": "on",
        "archive_command": 'pgbackrest --stanza=db archive-push "%p"',
        "restore_command": RESTORE,
    }


def test_backups_are_enabled_by_a_pgbackrest_section() -> None:
    assert not backups_enabled({})
    assert not backups_enabled({"backups": {"pgbackrest": {}}})
    assert backups_enabled({"backups": {"pgbackrest": {"repos": [{"name": "repo1"}]}}})


def test_a_standby_fed_by_a_repository_reads_wal_from_that_one_only() -> None:
    spec = {"standby": {"enabled": True, "repoName": "repo2"}}
    assert standby_repo(spec) == "repo2"
    assert archive_parameters(backups=True, standby_repo=standby_repo(spec))["restore_command"] == (
        f"{RESTORE} --repo=2"
    )
    # Promoted (or streaming only): WAL from any repository again.
    assert standby_repo({"standby": {"enabled": False, "repoName": "repo2"}}) is None
    assert standby_repo({"standby": {"enabled": True, "host": "elsewhere"}}) is None
