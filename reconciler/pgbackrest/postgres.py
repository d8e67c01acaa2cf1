"""pgBackRest's contributions to PostgreSQL's parameters."""

from __future__ import annotations


def archive_parameters() -> dict[str, str]:
    """WAL archiving while no repository receives WAL: it succeeds without keeping anything
    (PGO's parameters with backups disabled), so WAL never piles up behind an archiver that
    cannot succeed. The operator does not run pgBackRest yet; `spec.backups` is reported as
    not supported, and the repository's `archive-push` comes with it."""
    return {"archive_mode": "on", "archive_command": "true"}
