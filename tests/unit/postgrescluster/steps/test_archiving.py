"""PGBackRestArchiving: what the primary's archiver reports, turned into the condition."""

from __future__ import annotations

from reconciler.postgrescluster.steps.archiving import Archiver, condition

SEGMENT = 16 * 1024 * 1024


def archiver(**changes: object) -> Archiver:
    fields: dict[str, object] = {
        "last_archived_wal": "000000010000000000000004",
        "last_failed_wal": None,
        "failing": False,
        "waiting": 0,
        "wal_bytes": 3 * SEGMENT,
        "error": None,
    }
    fields.update(changes)
    return Archiver(**fields)  # type: ignore[arg-type]


def test_archiving_that_keeps_up_is_true() -> None:
    assert condition(archiver())[:2] == ("True", "WALArchived")


def test_a_failure_with_nothing_left_waiting_is_over() -> None:
    # The newest attempt failed, but every segment was archived since (by a retry).
    assert condition(archiver(failing=True, waiting=0))[0] == "True"


def test_a_failure_names_pgbackrests_error_and_the_size_of_pg_wal() -> None:
    error = "103\nunable to find a valid repository:\nrepo2: [HostConnectError] connection refused"
    status, reason, message = condition(
        archiver(
            failing=True,
            waiting=5,
            wal_bytes=40 * SEGMENT,
            last_failed_wal="000000010000000000000009",
            error=error,
        )
    )
    assert (status, reason) == ("False", "ArchiveCommandFailed")
    assert "[103] unable to find a valid repository: repo2: [HostConnectError]" in message
    assert "5 segment(s) wait in pg_wal, which holds 640 MiB" in message
    assert "the last archived segment is 000000010000000000000004" in message


def test_a_failure_without_an_error_file_points_at_the_log() -> None:
    status, _, message = condition(
        archiver(
            failing=True,
            waiting=1,
            last_archived_wal=None,
            last_failed_wal="000000010000000000000001",
        )
    )
    assert status == "False"
    assert "archive_command failed for 000000010000000000000001" in message
    assert "no segment was archived yet" in message


def test_a_stalled_push_without_any_failure_yet_says_so() -> None:
    status, _, message = condition(archiver(failing=True, waiting=2, last_failed_wal=None))
    assert status == "False"
    assert "make no progress (no error yet)" in message
