"""Reading why an instance's PostgreSQL stops from its database container's log."""

from __future__ import annotations

from reconciler.postgrescluster.steps.postgres_startup import missing_library

# What Patroni passes through when the image lacks a preloaded library (PostgreSQL 17).
LOG = """\
2026-11-30 13:40:01,123 INFO: starting as a secondary
2026-11-30 13:40:01.200 UTC [51] FATAL:  the database system is starting up
2026-11-30 13:40:01.201 UTC [50] FATAL:  could not access file "pgaudit": No such file or directory
2026-11-30 13:40:01.202 UTC [50] LOG:  database system is shut down
"""


def test_the_missing_library_is_named() -> None:
    assert missing_library(LOG) == "pgaudit"


def test_other_fatal_lines_are_not_a_missing_library() -> None:
    assert missing_library("FATAL:  the database system is starting up\n") is None
    assert missing_library("") is None
