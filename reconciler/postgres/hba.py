"""pg_hba.conf rules in PGO's order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler import naming


def _quoted(names: Sequence[str]) -> str:
    return ",".join(f'"{name}"' for name in names) if names else "all"


def hba_line(rule: Mapping[str, Any]) -> str:
    """One pg_hba.conf line from an `authentication.rules` entry (raw `hba`, or its parts)."""
    if rule.get("hba"):
        return str(rule["hba"])
    parts = [
        str(rule["connection"]),
        _quoted(rule.get("databases") or []),
        _quoted(rule.get("users") or []),
    ]
    if rule["connection"] != "local":
        parts.append("all")
    parts.append(f'"{rule["method"]}"')
    options = rule.get("options") or {}
    parts += [f'{key}="{value}"' for key, value in sorted(options.items())]
    return " ".join(parts)


def mandatory_hba() -> list[str]:
    """Rules that come first: local superuser by peer, the replication user by certificate only,
    and the operator as superuser by certificate only.

    The operator's rule cannot name its address (it is a pod anywhere in the cluster), so it
    rests on the certificate: CN "postgres" signed by the namespace root, whose key only the
    operator holds; a password never works for "postgres" over the network (no rule allows it:
    the user rules come after this one and the first matching line decides).
    """
    user = naming.REPLICATION_USER
    return [
        'local all "postgres" "peer"',
        f'hostssl replication "{user}" all "cert"',
        f'hostssl "postgres" "{user}" all "cert"',
        f'host all "{user}" all "reject"',
        'hostssl all "postgres" all "cert"',
        'host all "postgres" all "reject"',
    ]


def pg_hba(
    rules: Sequence[Mapping[str, Any]],
    dynamic: Mapping[str, Any],
    contributed: Sequence[str] = (),
) -> list[str]:
    """pg_hba in PGO's order: mandatory, the subsystems' (`contributed`), the spec's `rules`,
    Patroni's, else TLS + SCRAM for all."""
    from_dynamic = [str(line) for line in (dynamic.get("postgresql") or {}).get("pg_hba") or []]
    lines = [hba_line(rule) for rule in rules] + from_dynamic
    return [*mandatory_hba(), *contributed, *(lines or ['hostssl all all all "scram-sha-256"'])]
