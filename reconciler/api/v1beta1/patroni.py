"""`spec.patroni`: the Patroni settings of the cluster."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from reconciler.api.base import PRESERVE_UNKNOWN_FIELDS, ApiModel, crd_default
from reconciler.api.kubernetes import Quantity
from reconciler.api.v1beta1.shared import Int32


class PatroniSwitchover(ApiModel):
    """A switchover or failover, run whenever the annotation
    `postgres-operator.crunchydata.com/trigger-switchover` changes while it is enabled."""

    enabled: bool
    """Whether a change of the annotation triggers the switchover."""
    target_instance: str | None = None
    """The instance (pod name prefix) to promote; any healthy replica when unset. Required for a
    failover."""
    type: Literal["Switchover", "Failover"] | None = Field(
        None, json_schema_extra=crd_default("Switchover")
    )
    """`Switchover` needs a healthy primary; `Failover` promotes the target even without one."""


class PatroniLogging(ApiModel):
    """Patroni log files in `/pgdata/patroni/log`."""

    storage_limit: Quantity
    """The disk space the log files may use."""
    level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"] | None = Field(
        None, json_schema_extra=crd_default("INFO")
    )
    """The lowest level of messages written to the files."""


class PatroniSpec(ApiModel):
    """Patroni runs and fails over the PostgreSQL instances."""

    dynamic_configuration: dict[str, Any] | None = Field(
        None, json_schema_extra=PRESERVE_UNKNOWN_FIELDS
    )
    """Patroni's dynamic configuration, merged into the one stored in Kubernetes; its
    `postgresql.parameters` and `postgresql.pg_hba` are honoured. See the Patroni
    documentation."""
    leader_lease_duration_seconds: Int32 | None = Field(
        None, ge=3, json_schema_extra=crd_default(30)
    )
    """How long the leader lock lasts without renewal; Patroni's `ttl`."""
    port: Int32 | None = Field(None, ge=1024, json_schema_extra=crd_default(8008))
    """The port of Patroni's REST API (HTTPS)."""
    sync_period_seconds: Int32 | None = Field(None, ge=1, json_schema_extra=crd_default(10))
    """How often Patroni runs its loop; Patroni's `loop_wait`."""
    switchover: PatroniSwitchover | None = None
    """A planned switchover or a forced failover."""
    logging: PatroniLogging | None = None
    """Patroni log files."""
