"""PostgreSQL's parameters and file layout, as PGO renders them.

Subsystems contribute parameters of their own (pgBackRest its archiving) through
`PostgresSettings`; this module knows none of their command lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TLS_DIRECTORY = "/pgconf/tls"
SOCKET_DIRECTORY = "/tmp/postgres"


def data_directory(postgres_version: int) -> str:
    """PGDATA inside the `postgres-data` volume."""
    return f"/pgdata/pg{postgres_version}"


def wal_directory(postgres_version: int, *, separate_volume: bool) -> str:
    """Where WAL lives: its own volume when the spec has `walVolumeClaimSpec`."""
    root = "/pgwal" if separate_volume else "/pgdata"
    return f"{root}/pg{postgres_version}_wal"


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """What the spec and the enabled subsystems say about parameters and client authentication."""

    port: int = 5432
    parameters: Mapping[str, Any] = field(default_factory=dict)  # spec.config.parameters
    authentication_rules: Sequence[Mapping[str, Any]] = ()  # spec.authentication.rules
    # Parameters that subsystems own (WAL archiving): above the spec, below the mandatory ones.
    contributed: Mapping[str, str] = field(default_factory=dict)
    # pg_hba lines that subsystems need (pgBouncer's role): after the mandatory ones, before
    # the spec's.
    contributed_hba: Sequence[str] = ()
    # Libraries that subsystems need preloaded (pgMonitor's pg_stat_statements), after pgaudit.
    preload_libraries: Sequence[str] = ()


def mandatory_parameters() -> dict[str, str]:
    """Parameters the operator depends on; nothing in the spec overrides them."""
    return {
        "ssl": "on",
        "ssl_ca_file": f"{TLS_DIRECTORY}/ca.crt",
        "ssl_cert_file": f"{TLS_DIRECTORY}/tls.crt",
        "ssl_key_file": f"{TLS_DIRECTORY}/tls.key",
        "unix_socket_directories": SOCKET_DIRECTORY,
        "wal_level": "logical",
    }


def default_parameters() -> dict[str, str]:
    """Parameters PGO sets unless the spec says otherwise."""
    return {
        "jit": "off",
        "password_encryption": "scram-sha-256",
        "archive_timeout": "60s",
        "huge_pages": "off",
    }


def postgres_parameters(settings: PostgresSettings, dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters by precedence: mandatory > contributed > spec.config > Patroni's dynamic
    configuration > defaults."""
    from_dynamic = (dynamic.get("postgresql") or {}).get("parameters") or {}
    merged: dict[str, Any] = {
        **default_parameters(),
        "shared_preload_libraries": "pgaudit",
        **from_dynamic,
        **settings.parameters,
        **settings.contributed,
        **mandatory_parameters(),
    }
    # pgaudit and the subsystems' libraries stay loaded even when the user adds libraries of
    # their own; theirs follow, each library once.
    libraries = [lib.strip() for lib in str(merged["shared_preload_libraries"]).split(",")]
    required = ["pgaudit", *settings.preload_libraries]
    if any(lib not in libraries for lib in required):
        others = [lib for lib in libraries if lib and lib not in required]
        merged["shared_preload_libraries"] = ",".join([*required, *others])
    return dict(sorted(merged.items()))
