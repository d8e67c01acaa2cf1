"""Standby clusters (`spec.standby`): what makes a standby spec unusable, and how the standby
leader's replay is reported. Pure functions; `steps/patroni.py` asks Patroni, the controller
refuses an unusable spec."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from reconciler.runtime.client import JSON


def enabled(spec: Mapping[str, Any]) -> bool:
    """Whether the cluster is asked to be a standby."""
    return bool((spec.get("standby") or {}).get("enabled"))


def problem(spec: Mapping[str, Any]) -> str | None:
    """Why `spec.standby` cannot be acted on (the message names the fix), else None.

    PGO refuses a standby without a source with the Event `InvalidStandbyConfiguration` (else
    the cluster would start as a primary of its own); a `repoName` that no repository of the
    spec declares would leave pgBackRest without a repository to read, so it is refused too."""
    standby = spec.get("standby") or {}
    if not standby.get("enabled"):
        return None
    repo, host = standby.get("repoName"), standby.get("host")
    if not repo and not host:
        return (
            "spec.standby: Standby requires a host or repoName to be enabled: set "
            "spec.standby.repoName (a repository holding the primary cluster's WAL) or "
            "spec.standby.host (the primary cluster's address), or set enabled: false"
        )
    pgbackrest = (spec.get("backups") or {}).get("pgbackrest") or {}
    names = [str(r["name"]) for r in pgbackrest.get("repos") or []]
    if repo and repo not in names:
        declared = ", ".join(names) or "none"
        return (
            f'spec.standby.repoName "{repo}" is not a repository of '
            f"spec.backups.pgbackrest.repos (declared: {declared}): declare it there with the "
            "primary cluster's bucket and path, or name a declared one"
        )
    return None


def source(spec: Mapping[str, Any]) -> str:
    """Where the standby's WAL comes from, in words."""
    standby = spec.get("standby") or {}
    parts = []
    if standby.get("host"):
        parts.append(f"streaming from {standby['host']}:{standby.get('port') or 5432}")
    if standby.get("repoName"):
        parts.append(f"replaying from {standby['repoName']}")
    return " and ".join(parts)


def lsn(position: int | None) -> str:
    """A WAL position as PostgreSQL writes it (`0/3000060`)."""
    value = int(position or 0)
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def replay_message(member: str, status: Mapping[str, Any]) -> str:
    """What the standby leader `member` replayed, from Patroni's GET /patroni: positions and
    the commit time of the last replayed transaction (the lag, when the primary is busy). No
    clock reading: the message changes only when replay moves, so an idle standby costs no
    status write."""
    xlog = status.get("xlog") or {}
    message = (
        f"standby leader {member} on timeline {status.get('timeline', '?')}: "
        f"received WAL up to {lsn(xlog.get('received_location'))}, "
        f"replayed up to {lsn(xlog.get('replayed_location'))}"
    )
    replayed_at = xlog.get("replayed_timestamp")
    if replayed_at:
        message += f"; the last replayed transaction committed at {_utc(str(replayed_at))}"
    if xlog.get("paused"):
        message += "; replay is paused"
    return message


def _utc(text: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dcs_patch(desired: Mapping[str, Any], current: Mapping[str, Any]) -> JSON:
    """What removes `standby_cluster` from the DCS once the spec no longer asks for it: the
    promotion (Patroni promotes the standby leader when the section goes)."""
    if "standby_cluster" in desired or current.get("standby_cluster") is None:
        return {}
    return {"standby_cluster": None}
