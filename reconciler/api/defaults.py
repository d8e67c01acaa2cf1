"""PGO's in-memory defaults: filled in on every reconcile, never written to the API."""

from __future__ import annotations

from reconciler.api.v1beta1 import PostgresCluster
from reconciler.api.v1beta1.patroni import PatroniSpec
from reconciler.api.v1beta1.pgbouncer import PGBouncerPodSpec

DEFAULT_PORT = 5432
DEFAULT_REPLICAS = 1
DEFAULT_PATRONI_LEADER_LEASE_SECONDS = 30
DEFAULT_PATRONI_SYNC_PERIOD_SECONDS = 10
DEFAULT_PATRONI_PORT = 8008
DEFAULT_PGBOUNCER_PORT = 5432
DEFAULT_PGBOUNCER_REPLICAS = 1
DEFAULT_PGADMIN_REPLICAS = 1


def instance_set_name(index: int) -> str:
    """The name of an unnamed instance set: its position, two digits (`00`, `01`, ...)."""
    return f"{index:02d}"


def with_defaults(cluster: PostgresCluster) -> PostgresCluster:
    """A copy of `cluster` with every unset field that PGO defaults in memory filled in.

    The same values are CRD defaults, so a cluster stored under our CRD already has most of
    them; objects stored before a default existed (or created with a defaulted field removed by
    a later edit) get them here. The input is not modified.
    """
    spec = cluster.spec.model_copy(deep=True)
    for index, instance in enumerate(spec.instances):
        if not instance.name:
            instance.name = instance_set_name(index)
        if instance.replicas is None:
            instance.replicas = DEFAULT_REPLICAS
    if spec.port is None:
        spec.port = DEFAULT_PORT
    spec.patroni = spec.patroni or PatroniSpec.model_validate({})
    if spec.patroni.leader_lease_duration_seconds is None:
        spec.patroni.leader_lease_duration_seconds = DEFAULT_PATRONI_LEADER_LEASE_SECONDS
    if spec.patroni.sync_period_seconds is None:
        spec.patroni.sync_period_seconds = DEFAULT_PATRONI_SYNC_PERIOD_SECONDS
    if spec.patroni.port is None:
        spec.patroni.port = DEFAULT_PATRONI_PORT
    if spec.proxy is not None:
        pgbouncer: PGBouncerPodSpec = spec.proxy.pg_bouncer
        if pgbouncer.port is None:
            pgbouncer.port = DEFAULT_PGBOUNCER_PORT
        if pgbouncer.replicas is None:
            pgbouncer.replicas = DEFAULT_PGBOUNCER_REPLICAS
    if spec.user_interface is not None and spec.user_interface.pg_admin.replicas is None:
        spec.user_interface.pg_admin.replicas = DEFAULT_PGADMIN_REPLICAS
    return cluster.model_copy(update={"spec": spec}, deep=True)
