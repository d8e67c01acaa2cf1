"""The PostgresCluster API: pydantic models of PGO's v1beta1 CRDs, their CRD YAML, defaults
and validation.

The controller uses `parse_postgres_cluster` (or `InvalidSpec` on failure), `with_defaults`
and `invalid_spec_condition`; `reconciler crd` prints the CRDs generated from these models.
"""

from reconciler.api.defaults import with_defaults
from reconciler.api.v1beta1 import PGAdmin, PGUpgrade, PostgresCluster
from reconciler.api.validation import (
    InvalidSpec,
    invalid_spec_condition,
    parse_postgres_cluster,
)

__all__ = [
    "InvalidSpec",
    "PGAdmin",
    "PGUpgrade",
    "PostgresCluster",
    "invalid_spec_condition",
    "parse_postgres_cluster",
    "with_defaults",
]
