"""PGO's `postgres-operator.crunchydata.com/v1beta1` API, one module per area."""

from reconciler.api.v1beta1.pgadmin import PGAdmin, PGAdminSpec, PGAdminStatus
from reconciler.api.v1beta1.pgupgrade import PGUpgrade, PGUpgradeSpec, PGUpgradeStatus
from reconciler.api.v1beta1.postgrescluster import PostgresCluster, PostgresClusterSpec
from reconciler.api.v1beta1.shared import API_VERSION, GROUP, VERSION
from reconciler.api.v1beta1.status import PostgresClusterStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "PGAdmin",
    "PGAdminSpec",
    "PGAdminStatus",
    "PGUpgrade",
    "PGUpgradeSpec",
    "PGUpgradeStatus",
    "PostgresCluster",
    "PostgresClusterSpec",
    "PostgresClusterStatus",
]
