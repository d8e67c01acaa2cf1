"""pgBackRest's contributions to PostgreSQL's parameters."""

from __future__ import annotations

from reconciler.runtime.client import JSON

STANZA = "db"


def backups_enabled(spec: JSON) -> bool:
    """Whether the spec asks for pgBackRest (PGO 5.7+ makes backups optional)."""
    return bool((spec.get("backups") or {}).get("pgbackrest"))


def archive_parameters(*, backups: bool) -> dict[str, str]:
    """WAL archiving to the repositories, as PGO sets it. Without backups, `archive_command`
    succeeds without keeping anything, so WAL never piles up behind an archiver that cannot
    succeed, and archive_mode stays on so that turning backups on needs no restart.
    `restore_command` is set either way (PGO's), for a replica that falls behind its primary."""
    command = f'pgbackrest --stanza={STANZA} archive-push "%p"' if backups else "true"
    return {
        "archive_mode": "on",
        "archive_command": command,
        "restore_command": f'pgbackrest --stanza={STANZA} archive-get %f "%p"',
    }
