"""Where a new cluster's data comes from (`spec.dataSource`), and what that means for its
first start: no instance starts before the data is in place, and Patroni then bootstraps
from that data (its `existing` method, as PGO configures it) instead of running initdb."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from reconciler import naming
from reconciler.postgres import config as postgres
from reconciler.runtime import conditions
from reconciler.runtime.client import JSON


def restore_source(spec: Mapping[str, Any]) -> JSON | None:
    """The repository a new cluster restores from (`postgresCluster` wins over `pgbackrest`,
    as in PGO), as `{kind: section}`; None when none is named."""
    source = spec.get("dataSource") or {}
    if source.get("postgresCluster"):
        return {"postgresCluster": source["postgresCluster"]}
    if source.get("pgbackrest"):
        return {"pgbackrest": source["pgbackrest"]}
    return None


def _initialized(status: Mapping[str, Any]) -> bool:
    return conditions.is_true(status, naming.CONDITION_POSTGRES_DATA_INITIALIZED)


def _bootstrapped(status: Mapping[str, Any]) -> bool:
    return bool((status.get("patroni") or {}).get("systemIdentifier"))


def _requested(spec: Mapping[str, Any]) -> bool:
    """Whether the spec names data for a new cluster: a repository, or claims to adopt (a WAL
    claim alone too: it is refused, and nothing starts on an empty directory meanwhile)."""
    volumes = (spec.get("dataSource") or {}).get("volumes") or {}
    return restore_source(spec) is not None or bool(
        volumes.get("pgDataVolume") or volumes.get("pgWALVolume")
    )


def awaiting_data(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a new cluster waits for its data before any instance may start."""
    return _requested(spec) and not _bootstrapped(status) and not _initialized(status)


def initialized_by_bootstrap(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether a cluster with a data source bootstrapped without `PostgresDataInitialized`
    saying so (a cluster given a data source after its start, or the condition removed):
    PGO then records it as `ClusterAlreadyBootstrapped`."""
    return _requested(spec) and _bootstrapped(status) and not _initialized(status)


def from_existing_data(status: Mapping[str, Any]) -> bool:
    """Whether data was put in place (a restore, an adopted volume) that Patroni has yet to
    bootstrap the cluster from."""
    return _initialized(status) and not _bootstrapped(status)


def bootstrap_command(postgres_version: int) -> str:
    """Patroni's `existing` bootstrap: the data put aside in `<PGDATA>_bootstrap` moves into
    place, over the empty directory the instance's startup container made."""
    pgdata = postgres.data_directory(postgres_version)
    script = 'rmdir -- "$2" 2> /dev/null || :; mv -- "$1" "$2"'
    return shlex.join(["bash", "-ceu", "--", script, "bootstrap", f"{pgdata}_bootstrap", pgdata])
