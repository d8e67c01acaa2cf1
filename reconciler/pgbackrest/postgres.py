"""pgBackRest's contributions to PostgreSQL's parameters."""

from __future__ import annotations

from reconciler.runtime.client import JSON

STANZA = "db"


def backups_enabled(spec: JSON) -> bool:
    """Whether the spec asks for pgBackRest (PGO 5.7+ makes backups optional)."""
    return bool((spec.get("backups") or {}).get("pgbackrest"))


def standby_repo(spec: JSON) -> str | None:
    """The repository a standby cluster replays WAL from (`spec.standby.repoName`, while
    `enabled`), else None."""
    standby = spec.get("standby") or {}
    return str(standby["repoName"]) if standby.get("enabled") and standby.get("repoName") else None


def restore_command(standby_repo: str | None = None) -> str:
    """PGO's `restore_command`: WAL from any repository, only from `standby_repo` when the
    cluster is a standby fed by one (the name is validated: `repo1`..`repo4`)."""
    command = f'pgbackrest --stanza={STANZA} archive-get %f "%p"'
    return f"{command} --repo={standby_repo.removeprefix('repo')}" if standby_repo else command


def archive_parameters(*, backups: bool, standby_repo: str | None = None) -> dict[str, str]:
    """WAL archiving to the repositories, as PGO sets it. Without backups, `archive_command`
    succeeds without keeping anything, so WAL never piles up behind an archiver that cannot
    succeed, and archive_mode stays on so that turning backups on needs no restart.
    `restore_command` is set either way (PGO's), for a replica that falls behind its primary."""
    command = f'pgbackrest --stanza={STANZA} archive-push "%p"' if backups else "true"
    return {
        "archive_mode": "on",
        "archive_command": command,
        "restore_command": restore_command(standby_repo),
    }
